"""Each bundle's model card (docs/README.md) states the recipe its own configs hold: the retraining command is
``medkit train bundles/<name>``, one table row per training stage of ``medkit.train_stages``, and the epochs, patch
size, learning rate, loss and input shape of each row are what that stage's configs resolve to."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import BUNDLES

EVERY_BUNDLE = ["pneumonia", "covid", "brain_mri_classification", "brain_mri_segmentation", "abdominal_trauma"]
HEADER = "| stage | configs | epochs | patch size | learning rate | loss | input |"
MAX_CARD_LINES = 150


def _section(card: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", card, flags=re.M | re.S)
    assert match, f"no '## {title}' section"
    return match.group(1)


def _card(bundle: str) -> str:
    with open(os.path.join(BUNDLES, bundle, "docs", "README.md")) as f:
        return f.read()


def _rows(section: str) -> list[dict]:
    lines = section.splitlines()
    start = lines.index(HEADER)
    keys = [k.strip() for k in HEADER.strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(keys, (v.strip() for v in line.strip().strip("|").split("|")))))
    return rows


def _resolved(bundle: str, configs: list[str]) -> dict:
    """What a stage's merged configs say, as ``monai.bundle run --config_file "[...]"`` reads them."""
    from monai.bundle import ConfigParser

    root = os.path.join(BUNDLES, bundle)
    parser = ConfigParser()
    parser.read_meta(os.path.join(root, "configs", "metadata.json"))
    parser.read_config([os.path.join(root, "configs", c) for c in configs])
    image = parser.get("_meta_#network_data_format#inputs#image")
    if "loss_kind" in parser.get():
        loss = parser.get("loss_kind")
    else:  # a loss class named in the config: MaskedDiceCELoss -> masked_dice_ce
        target = parser.get("loss#_target_").rsplit(".", 1)[-1].removesuffix("Loss")
        loss = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", target).lower()
    patch = parser.get("patch_size") if "patch_size" in parser.get() else None
    return {
        "epochs": str(parser.get("epochs")),
        "patch size": "x".join(str(s) for s in patch) if patch else "-",
        "learning rate": parser.get("learning_rate"),
        "loss": loss,
        "input": "x".join(str(s) for s in [image["num_channels"], *image["spatial_shape"]]),
    }


@pytest.mark.parametrize("bundle", EVERY_BUNDLE)
def test_card_recipe_is_what_the_configs_resolve_to(bundle):
    from medkit.bundle import train_stages

    section = _section(_card(bundle), "Reproducing the weights")
    command = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    assert f"medkit train bundles/{bundle} " in command
    rows = _rows(section)
    stages = train_stages(os.path.join(BUNDLES, bundle))
    assert [r["stage"] for r in rows] == [str(i + 1) for i in range(len(stages))]
    for row, configs in zip(rows, stages):
        assert re.findall(r"`([^`]+)`", row["configs"]) == configs
        stated = {**row, "learning rate": float(row["learning rate"])}
        resolved = _resolved(bundle, configs)
        assert {k: stated[k] for k in resolved} == resolved, f"{bundle} stage {row['stage']}"


@pytest.mark.parametrize("bundle", EVERY_BUNDLE)
def test_card_is_short_and_has_the_model_card_sections(bundle):
    card = _card(bundle)
    assert len(card.splitlines()) <= MAX_CARD_LINES
    for title in ("Inputs and outputs", "Data and split", "Performance", "Reproducing the weights", "Use"):
        _section(card, title)
    assert os.path.isfile(os.path.join(BUNDLES, bundle, "docs", "experiments.md"))
