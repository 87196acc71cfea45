"""Post-processing options measured on a segmenter cross-validation's held-out folds, with no training.

Each option is the implementation the bundles run: flip test-time augmentation is ``FlipTTAInferer`` around the
bundle's sliding window, hole filling the segmentation post-processing's (``fill_holes``), the largest 3D component
``medkit.transforms.largest_component`` as the writers apply it (last, weighted by the classifier's probability of
each slice in the two-stage pipeline), and the gate ``GatedInferer``'s decision on the held-out classifier
probabilities of a classifier cross-validation over the same folds.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from medkit.errors import MedkitError

if TYPE_CHECKING:
    from medkit.workflows.crossval import CrossvalSettings

__all__ = ["fold_masks", "study_options"]


def fold_masks(settings: CrossvalSettings, fold: int) -> dict[str, dict]:
    """Per held-out case of ``fold``, slices in order: ``"masks"`` keyed by ``(tta, fill_holes)`` (slices, rows,
    columns; the fold model's logits through ``FlipTTAInferer`` or the plain sliding window, then the bundle's
    post-processing with or without ``fill_holes``), ``"truth"`` and the slices' ``"paths"``."""
    import torch

    from medkit.bundle import create_workflow
    from medkit.inferers import FlipTTAInferer
    from medkit.transforms.segmentation import segmentation_postprocessing

    fold_dir = os.path.join(settings.out, f"fold_{fold}")
    overrides = {
        **settings.overrides,
        "datalist_file": os.path.join(fold_dir, "datalist.json"),
        "split": "test",
        "classifier_bundle": "",
        "output_dir": os.path.join(fold_dir, "study"),
    }
    wf = create_workflow(settings.bundle, "evaluate", overrides, ignore_unknown=True)
    network = wf.parser.get_parsed_content("network")
    state = torch.load(os.path.join(fold_dir, "models", "model.pt"), map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state))
    network.eval()
    tta = FlipTTAInferer(wf.parser.get_parsed_content("sliding_window"))
    post = {filled: segmentation_postprocessing(fill_holes=filled) for filled in (False, True)}
    device = next(network.parameters()).device  # the bundle's device: the GPU when there is one
    slices: dict[str, list] = defaultdict(list)
    with torch.no_grad():
        for item in wf.parser.get_parsed_content("dataset"):
            views = list(tta.views(torch.as_tensor(item["image"])[None].to(device), network))
            logits = {False: views[0][0].cpu(), True: tta.average(views)[0].cpu()}  # (1, rows, columns)
            masks = {
                (t, filled): np.asarray(post[filled]({"pred": logits[t]})["pred"][0]) > 0
                for t, filled in itertools.product((False, True), (False, True))
            }
            truth = np.asarray(item["label"])[0] > 0.5
            slices[str(item["case"])].append((int(item["slice"]), masks, truth, str(item["image_path"])))
    cases = {}
    for case, rows in slices.items():
        rows.sort(key=lambda r: r[0])
        cases[case] = {
            "masks": {key: np.stack([r[1][key] for r in rows]) for key in rows[0][1]},
            "truth": np.stack([r[2] for r in rows]),
            "paths": [r[3] for r in rows],
        }
    return cases


def study_options(settings: CrossvalSettings) -> dict:
    """Per-patient Dice and slice detection of the pooled held-out folds under each combination of the options:
    ``tta``, ``gated`` (with ``settings.gate``: slices the held-out classifier does not pass get an empty mask),
    ``fill_holes`` and ``largest_3d`` (applied last, as the writers do: with ``gated`` a component's pixels count
    by their slice's classifier score; ``..._unweighted``: the same with pixels counted alike); ``plain`` is none
    of them.

    Raises:
        MedkitError: the bundle is not a segmentation bundle.
    """
    from medkit.bundle import task_type
    from medkit.metrics.segmentation import segmentation_report, slice_record
    from medkit.transforms.segmentation import classifier_weights, largest_component
    from medkit.workflows.crossval_report import REPORTED, held_out_gate

    if task_type(settings.bundle) != "segmentation":
        raise MedkitError(f"{settings.bundle}: the study measures segmentation post-processing (not a segmenter)")
    decision, gate = held_out_gate(settings.gate, settings.folds) if settings.gate else ({}, {})
    options = [(False, True), (False, True) if settings.gate else (False,), (False, True), (False, True)]
    records: dict[str, list] = defaultdict(list)
    for k in range(settings.folds):
        for case, c in fold_masks(settings, k).items():
            if settings.gate:  # the held-out classifier's score of each slice and whether it passes the gate
                scores = [decision[p][0] for p in c["paths"]]
                passed = np.array([decision[p][1] for p in c["paths"]])
            for tta, gated, largest, filled in itertools.product(*options):
                mask = c["masks"][tta, filled]
                if gated:
                    mask = mask & passed[:, None, None]
                variants = {"": mask}
                if largest:  # as the writers do: two-stage weighs each slice's pixels by its classifier score
                    variants = {"": largest_component(mask, classifier_weights(scores) if gated else None)}
                    if gated:  # and the same component chosen by pixel count alone (releases up to 0.4.0)
                        variants["_unweighted"] = largest_component(mask)
                named = (("tta", tta), ("gated", gated), ("largest_3d", largest), ("fill_holes", filled))
                name = "+".join(n for n, on in named if on) or "plain"
                for suffix, m in variants.items():
                    records[name + suffix] += [slice_record(m[i], c["truth"][i], case) for i in range(len(m))]
        print(f"fold {k} studied", flush=True)
    result = {}
    for name, recs in records.items():
        r = segmentation_report(recs)
        result[name] = {key: r[key] for key in REPORTED}
        result[name]["dice_patient_median"] = float(np.median(list(r["per_case"].values())))
        result[name]["per_case"] = {case: round(v, 4) for case, v in r["per_case"].items()}
    if settings.gate:
        result["gate"] = {"classifier_cv": settings.gate, **gate}
    return result
