"""A test-only addition to a training run on several processes: each rank records the images it trained on."""

from __future__ import annotations

import json
import os

from ignite.engine import Events


def record_samples(trainer, folder: str) -> None:
    """Append each training batch's image paths to ``<folder>/rank<R>.json`` (R: this process's rank)."""
    from medkit import distributed

    seen: list[str] = []

    def _record(engine) -> None:
        batch = engine.state.batch
        paths = batch.get("image_path") or batch["image"].meta.get("filename_or_obj")
        if paths is None:
            raise KeyError(f"no image paths in the batch (keys {sorted(batch)})")
        seen.extend(str(p) for p in paths)

    def _write(engine) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"rank{distributed.rank()}.json"), "w") as f:
            json.dump(seen, f)

    trainer.add_event_handler(Events.ITERATION_STARTED, _record)
    trainer.add_event_handler(Events.COMPLETED, _write)
