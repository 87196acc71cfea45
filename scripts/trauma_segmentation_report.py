"""What the abdominal_trauma network segments on a split of a data set with masks (the synthetic RSNA set).

For each patient series of the split (the bundle's own patient split of DATA_ROOT), the EvidenceClassifier's
segmentation (``net.segment``, on the preprocessed input's grid) is compared with the series' mask, preprocessed
the same way. Reports Dice per label over the split, and for each injury label how well its largest predicted
probability in a volume separates the injured patients from the others (ROC AUC against the patient's target
label; high grade against the rest too).

Usage:
  python scripts/trauma_segmentation_report.py --data synth_seg --split validation --out seg_report.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.join(os.path.dirname(HERE), "bundles", "abdominal_trauma")
#: injury label -> the target whose label it should reveal
INJURY_TARGETS = {
    "liver_injury": "liver",
    "spleen_injury": "spleen",
    "kidney_injury": "kidney",
    "bowel_injury": "bowel",
    "extravasation": "extravasation",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="RSNA-layout folder with segmentations/")
    parser.add_argument("--split", default="validation", choices=("training", "validation", "test"))
    parser.add_argument("--bundle", default=BUNDLE)
    parser.add_argument("--checkpoint", default=None, help="weights (default: the bundle's models/model.pt)")
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    args = parser.parse_args(argv)

    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose
    from sklearn.metrics import roc_auc_score

    from medkit.bundle import load_metadata, meta_component
    from medkit.data import make_datalist
    from medkit.data.rsna import SEGMENTATION_LABELS
    from medkit.metrics.rsna import TARGET_NAMES
    from medkit.networks import load_pretrained

    torch.set_num_threads(2)
    meta = load_metadata(args.bundle)
    items = make_datalist(dataset_dir=args.data, **meta["medkit"]["data"])[args.split]
    items = [i for i in items if "seg" in i]
    if not items:
        sys.exit(f"{args.data}: no series of the {args.split} split has a segmentation")
    weights = args.checkpoint or os.path.join(args.bundle, "models", "model.pt")
    net = load_pretrained(meta_component(args.bundle, "network_def"), weights).eval()
    pre = Compose(meta_component(args.bundle, "preprocessing", seg_key="seg"))
    n = net.seg_classes
    inter, total = np.zeros(n), np.zeros(n)
    largest, labels = [], []
    with torch.no_grad():
        for batch in DataLoader(Dataset(items, pre), batch_size=8, num_workers=0):
            seg = net.segment(batch["image"])
            probs = torch.softmax(seg, 1)
            truth = batch["seg"][:, 0].long().clamp(min=0)
            if truth.shape != probs.shape[:1] + probs.shape[2:]:
                sys.exit(f"segmentation of size {tuple(probs.shape[2:])} for masks of size {tuple(truth.shape[1:])}")
            pred = probs.argmax(1)
            for label in range(1, n):
                inter[label] += int(((pred == label) & (truth == label)).sum())
                total[label] += int((pred == label).sum() + (truth == label).sum())
            largest.append(probs[:, 1:].amax(dim=(2, 3, 4)).numpy())
            labels.append(np.asarray(batch["label"]))
    largest, labels = np.concatenate(largest), np.concatenate(labels)
    names = {v: k for k, v in SEGMENTATION_LABELS.items()}
    report: dict = {"split": args.split, "n_series": len(items), "dice": {}, "auc_largest_probability": {}}
    for label in range(1, n):
        report["dice"][names[label]] = round(2 * inter[label] / total[label], 3) if total[label] else None
    for name, target in INJURY_TARGETS.items():
        y = labels[:, TARGET_NAMES.index(target)]
        score = largest[:, SEGMENTATION_LABELS[name] - 1]
        entry = {"n_injured": int((y > 0).sum())}
        for key, positive in (("any_grade", y > 0), ("high_grade", y == 2)):
            if 0 < positive.sum() < len(positive):
                entry[key] = round(float(roc_auc_score(positive, score)), 3)
        report["auc_largest_probability"][name] = entry
    print(json.dumps(report, indent=1))
    if args.out:
        from medkit.io.atomic import write_json_atomic

        write_json_atomic(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
