"""Classification bundles share one set of workflow configs: what differs lives in metadata.json.

Every bundle must stay self-contained (shared as a folder or zip, copied by MONAI Label), so the files
are copies; this test keeps them from drifting apart. Only the training knobs listed in TUNABLE may
differ between bundles' train.json files.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import BUNDLES

CLASSIFIERS = ["pneumonia", "covid"]
TUNABLE = {"epochs", "batch_size", "learning_rate", "weight_decay", "early_stop_patience", "loss_kind", "focal_gamma",
           "class_weighting"}  # fmt: skip


def _load(bundle: str, name: str) -> dict:
    with open(os.path.join(BUNDLES, bundle, "configs", name)) as f:
        return json.load(f)


@pytest.mark.parametrize("name", ["train.json", "evaluate.json", "inference.json"])
@pytest.mark.parametrize("bundle", CLASSIFIERS[1:])
def test_workflow_configs_match_the_reference(bundle, name):
    ref, other = _load(CLASSIFIERS[0], name), _load(bundle, name)
    assert set(ref) == set(other)
    differing = {k for k in ref if ref[k] != other[k]}
    assert differing <= TUNABLE, f"{bundle}/{name} differs from {CLASSIFIERS[0]} in {sorted(differing - TUNABLE)}"


@pytest.mark.parametrize("bundle", CLASSIFIERS[1:])
def test_logging_conf_matches(bundle):
    read = lambda b: open(os.path.join(BUNDLES, b, "configs", "logging.conf")).read()  # noqa: E731
    assert read(bundle) == read(CLASSIFIERS[0])


@pytest.mark.parametrize("bundle", CLASSIFIERS)
def test_label_map_matches_output_channels(bundle):
    meta = _load(bundle, "metadata.json")
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert len(pred["channel_def"]) == pred["num_channels"]
    assert meta["medkit"]["network_def"]["out_channels"] == "@_meta_#network_data_format#outputs#pred#num_channels"
    assert meta["medkit"]["task_type"] == "classification"
