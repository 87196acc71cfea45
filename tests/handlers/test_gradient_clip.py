import torch
from monai.engines import SupervisedTrainer

from medkit.handlers import GradientClipHandler


def _trainer(handlers, lr=0.0):
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1)
    data = [{"image": torch.full((2, 4), 100.0), "label": torch.zeros(2, 1)}] * 3
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=data,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=lr),
        loss_function=torch.nn.MSELoss(),
        train_handlers=handlers,
    )
    return trainer, net


def _grad_norm(net):
    return torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in net.parameters()])).item()


def test_gradients_are_clipped_before_the_step():
    clip = GradientClipHandler(max_norm=0.5)
    trainer, net = _trainer([clip])
    trainer.run()
    # the gradients left after the last step are the clipped ones
    assert abs(_grad_norm(net) - 0.5) < 1e-4


def test_clipping_counts_steps_and_resets_each_epoch(caplog):
    clip = GradientClipHandler(max_norm=0.5)
    trainer, _ = _trainer([clip])
    with caplog.at_level("INFO", logger="medkit.handlers.gradient_clip"):
        trainer.run()
    assert "clipped to 0.5 in 3 of 3 steps" in caplog.text
    assert clip.clipped == 0 and clip.norms == []


def test_zero_or_none_disables_clipping():
    for off in (0, None):
        trainer, net = _trainer([GradientClipHandler(max_norm=off)])
        trainer.run()
        assert _grad_norm(net) > 100
