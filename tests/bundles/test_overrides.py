"""Overrides are checked before any work: an id no config defines (a typo that would run with the default) and a
value outside its range are one-line errors."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from medkit.bundle import create_workflow
from medkit.cli.main import cli
from medkit.errors import MedkitError
from tests.conftest import BUNDLES

PNEUMONIA = os.path.join(BUNDLES, "pneumonia")


@pytest.mark.parametrize(
    "workflow, overrides, message",
    [
        (
            "train",
            {"learnin_rate": 0.1},
            r"learnin_rate: no such config id in .*\(train.json\) \(did you mean learning_rate\?\)",
        ),
        ("train", {"train#dataloader#batchsize": 4}, "train#dataloader#batchsize: no such config id"),
        ("infer", {"_meta_#medkit#preprocesing#equalize": True}, "_meta_#medkit#preprocesing#equalize: no such"),
        ("infer", {"threshold": 2}, r"threshold=2: out of range, expected a value in \[0.0, 1.0\]"),
        ("infer", {"threshold": -1}, "threshold=-1: out of range"),
        ("train", {"learning_rate": 0}, r"learning_rate=0: out of range, expected a value in \(0.0, inf\)"),
        ("train", {"epochs": "many"}, "epochs='many': expected a number"),
    ],
)
def test_bad_overrides_are_refused_before_any_work(workflow, overrides, message):
    with pytest.raises(MedkitError, match=message):
        create_workflow(PNEUMONIA, workflow, overrides)


def test_known_ids_and_expressions_pass(tmp_path):
    wf = create_workflow(PNEUMONIA, "infer", {"threshold": 0.3, "batch_size": "$2 * 4", "output_dir": str(tmp_path)})
    assert wf.parser.get_parsed_content("threshold") == 0.3 and wf.parser.get_parsed_content("batch_size") == 8
    wf = create_workflow(PNEUMONIA, "infer", {"no_such_id": 1, "output_dir": str(tmp_path)}, ignore_unknown=True)
    assert "no_such_id" not in wf.parser.get()


def test_the_cli_says_it_in_one_line(tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(b"not read: the override is refused first")
    result = CliRunner().invoke(
        cli, ["infer", PNEUMONIA, str(image), "--out", str(tmp_path / "o"), "--set", "threshold=2"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "Error: threshold=2: out of range, expected a value in [0.0, 1.0]"
    assert not (tmp_path / "o").exists()
