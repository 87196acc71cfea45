"""Training on several processes: every bundle's multi_gpu_train.json overlay (the template's copy), the torchrun
command ``medkit train --nproc`` runs, and, in the ``multiprocess`` tier, real 2-process runs on the CPU (gloo): the
ranks train on different images, one checkpoint is written, and the validation metric reduced over the ranks is
what one process measures with that checkpoint; a two-"node" c10d run on 127.0.0.1 is also ``slow``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from medkit.bundle import create_workflow, train_stages
from medkit.bundle.templates import TEMPLATE_DIR, check_bundle, is_setting, template
from medkit.cli.main import cli
from medkit.data.synthetic import write_synthetic_chest_xray
from medkit.errors import MedkitError
from medkit.workflows.stages import MULTI_PROCESS_OVERLAY, torchrun_command
from tests.conftest import BUNDLES, REPO

EVERY_BUNDLE = sorted(
    d for d in os.listdir(BUNDLES) if os.path.isfile(os.path.join(BUNDLES, d, "configs", "train.json"))
)
PNEUMONIA = os.path.join(BUNDLES, "pneumonia")
#: tiny and quick: 2 ranks of 2-image batches, validation halves of 4 images
FAST = {"batch_size": 2, "val_batch_size": 2, "num_workers": 0, "epochs": 1}


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo on the loopback: no network needed
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("bundle", EVERY_BUNDLE)
def test_every_bundle_holds_the_templates_multi_gpu_overlay(bundle):
    with open(os.path.join(BUNDLES, bundle, "configs", MULTI_PROCESS_OVERLAY)) as f:
        text = f.read()
    with open(os.path.join(TEMPLATE_DIR, MULTI_PROCESS_OVERLAY)) as f:
        assert text == f.read()
    assert MULTI_PROCESS_OVERLAY not in {n for stage in train_stages(os.path.join(BUNDLES, bundle)) for n in stage}
    # it reads only ids train.json defines (a setting that differs per bundle is train.json's, not the overlay's)
    with open(os.path.join(BUNDLES, bundle, "configs", "train.json")) as f:
        assert "find_unused_parameters" in json.load(f)


def test_the_multi_gpu_overlay_is_the_deliberate_exception_to_settings_only_overlays(tmp_path):
    """It changes components (so a stage overlay could not be it), and it is checked byte for byte instead."""
    overlay = json.load(open(os.path.join(TEMPLATE_DIR, MULTI_PROCESS_OVERLAY)))
    settings = {k for k, v in template("classification", "train.json").items() if is_setting(v)}
    assert {"device", "network", "train#dataloader#sampler"} <= set(overlay) - settings
    bundle = tmp_path / "pneumonia"
    shutil.copytree(PNEUMONIA, bundle, ignore=shutil.ignore_patterns("*.pt"))
    assert check_bundle(str(bundle)) == []
    path = bundle / "configs" / MULTI_PROCESS_OVERLAY
    path.write_text(json.dumps({**overlay, "train#dataloader#shuffle": True}))
    assert any(f"differs from the template's {MULTI_PROCESS_OVERLAY}" in p for p in check_bundle(str(bundle)))
    path.unlink()
    assert any(MULTI_PROCESS_OVERLAY in p for p in check_bundle(str(bundle)))


def test_torchrun_command_one_node_and_several():
    one = torchrun_command(PNEUMONIA, {"epochs": 1}, nproc=2)
    assert one[1:6] == ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    assert one[one.index("-m", 2) + 1 :][:2] == ["medkit.workflows.stages", PNEUMONIA]
    assert json.loads(one[one.index("--overrides") + 1]) == {"epochs": 1}
    many = torchrun_command(PNEUMONIA, {}, nproc=4, nnodes=2, rdzv_endpoint="node1:29400", stages=[2], resume=True)
    for option, value in (("--nnodes", "2"), ("--rdzv_backend", "c10d"), ("--rdzv_endpoint", "node1:29400")):
        assert many[many.index(option) + 1] == value
    assert "--standalone" not in many and many[-3:] == ["--stage", "2", "--resume"]
    with pytest.raises(MedkitError, match="--rdzv-endpoint"):
        torchrun_command(PNEUMONIA, {}, nproc=1, nnodes=2)


def test_cli_refuses_several_nodes_without_an_endpoint_and_typos_before_any_process(synthetic_cxr, tmp_path):
    base = ["train", PNEUMONIA, "--data", synthetic_cxr, "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, [*base, "--nproc", "1", "--nnodes", "2"])
    assert result.exit_code == 1 and "needs --rdzv-endpoint HOST:PORT" in result.output, result.output
    result = CliRunner().invoke(cli, [*base, "--nproc", "2", "--set", "batch_sise=2"])
    assert result.exit_code == 1 and "batch_sise" in result.output and "Traceback" not in result.output


def test_the_overlay_outside_torchrun_and_torchrun_without_the_overlay_are_one_line_errors(monkeypatch):
    from medkit import distributed

    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(MedkitError, match="needs the processes torchrun starts"):
        distributed.setup()
    assert distributed.rank() == 0 and distributed.world_size() == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert distributed.rank() == 1
    with pytest.raises(MedkitError, match="without configs/multi_gpu_train.json"):
        distributed.check_launch(torch.nn.Linear(1, 1))


# ---- real processes (multiprocess tier: .ci/run runs it and prints its time) ----


@pytest.fixture(scope="module")
def cxr8(tmp_path_factory) -> str:
    """8 patients' worth of 32 px X-rays: a few two-image batches per rank."""
    return write_synthetic_chest_xray(tmp_path_factory.mktemp("cxr8"), n_patients=8, n_test_patients=1, size=32)


def _single_process_metric(data: str, model: str, tmp_path) -> dict:
    """The validation metrics one process measures with ``model`` (the bundle's own evaluator, no training)."""
    from medkit.networks import load_pretrained

    overrides = {**FAST, "dataset_dir": data, "ckpt_dir": str(tmp_path / "single"), "output_dir": str(tmp_path)}
    wf = create_workflow(PNEUMONIA, "train", overrides)
    load_pretrained(wf.parser.get_parsed_content("network"), model, strict=True)
    wf.parser.get_parsed_content("validate#early_stop").set_trainer(wf.parser.get_parsed_content("train#trainer"))
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    evaluator.run()
    return dict(evaluator.state.metrics)


@pytest.mark.multiprocess
def test_two_processes_through_monai_runner_split_the_data_and_agree_with_one(cxr8, tmp_path):
    """The README's command: torchrun -m monai.bundle run with train.json + multi_gpu_train.json (+ a probe)."""
    probe = tmp_path / "probe.json"
    seen = tmp_path / "seen"
    probe.write_text(
        json.dumps(
            {
                # uniform draws, which partition the data between the processes (the weighted draws of
                # debias_score, with replacement, do not: tests/data/test_debias.py)
                "debias_score": "",
                "run": [
                    "$@validate#early_stop.set_trainer(@train#trainer)",
                    "$import tests.workflows.ddp_probe as ddp_probe",
                    f"$ddp_probe.record_samples(@train#trainer, '{seen}')",
                    "$@train#trainer.run()",
                ],
            }
        )
    )
    configs = [os.path.join(PNEUMONIA, "configs", n) for n in ("train.json", MULTI_PROCESS_OVERLAY)] + [str(probe)]
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", json.dumps(configs), "--bundle_root", PNEUMONIA]
    cmd += ["--dataset_dir", cxr8, "--ckpt_dir", str(out / "models"), "--output_dir", str(out / "runs")]
    for key, value in FAST.items():
        cmd += [f"--{key}", str(value)]
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.load(open(seen / f"rank{r}.json")) for r in (0, 1)]
    overrides = {**FAST, "dataset_dir": cxr8, "ckpt_dir": str(tmp_path / "list")}
    datalist = create_workflow(PNEUMONIA, "train", overrides).parser.get_parsed_content("datalist")
    training = {d["image"] for d in datalist["training"]}
    assert ranks[0] and ranks[1] and set(ranks[0]) | set(ranks[1]) == training
    assert len(set(ranks[0]) & set(ranks[1])) <= len(training) % 2  # the share of one image padded to even division
    assert sorted(os.listdir(out / "models")) == ["checkpoint_last.pt", "model.pt"]  # one model, one resume state
    assert len({name.split(".")[-2] for name in os.listdir(out / "runs")}) == 1  # TensorBoard of one process only
    reduced = torch.load(out / "models" / "checkpoint_last.pt", weights_only=False)["metrics"]
    single = _single_process_metric(cxr8, str(out / "models" / "model.pt"), tmp_path)
    assert set(reduced) == set(single)
    for name in single:  # epochs=1: model.pt is the epoch the metrics were measured on
        assert reduced[name] == pytest.approx(single[name], abs=1e-6), name


@pytest.mark.multiprocess
def test_medkit_train_nproc_2(cxr8, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "medkit.cli.main", "train", PNEUMONIA, "--data", cxr8, "--out", str(out)]
    cmd += ["--nproc", "2", "--epochs", "2", "--set", "batch_size=2", "--set", "num_workers=0"]
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"model: {out / 'models' / 'model.pt'}" in done.stdout
    state = torch.load(out / "models" / "checkpoint_last.pt", weights_only=False)
    assert state["trainer"]["epoch"] == 2 and len(state["rng"]) == 2  # each rank's random states


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_nodes_meet_by_c10d_on_localhost(cxr8, tmp_path):
    """nnodes=2, one process each, c10d rendezvous on 127.0.0.1: the same command on both "nodes"."""
    endpoint = f"127.0.0.1:{_free_port()}"
    out = tmp_path / "run"  # a folder both nodes see, as a shared file system would be
    cmd = [sys.executable, "-m", "medkit.cli.main", "train", PNEUMONIA, "--data", cxr8, "--out", str(out), "--epochs"]
    cmd += ["1", "--nproc", "1", "--nnodes", "2", "--rdzv-endpoint", endpoint, "--set", "batch_size=2"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    nodes = [subprocess.Popen(cmd, cwd=REPO, env=_env(), **pipes) for _ in range(2)]
    outputs = [n.communicate(timeout=400)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert sorted(os.listdir(out / "models")) == ["checkpoint_last.pt", "model.pt"]
    assert len(torch.load(out / "models" / "checkpoint_last.pt", weights_only=False)["rng"]) == 2
