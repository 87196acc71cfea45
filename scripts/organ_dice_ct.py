"""Organ segmentation of a real CT by the abdominal_trauma bundle's network, against reference organ masks.

The bundle's network segments organs on its 6 mm grid (learnt from the synthetic set's
masks). This measures how that transfers to a real CT: the CT and a label map built from per-organ NIfTI
masks (TotalSegmentator's ``<organ>.nii.gz`` layout) go through the bundle's own preprocessing (the masks by
nearest neighbour), and Dice per organ is computed on the network's input grid (a segmentation on a coarser
grid is upsampled).

Usage:
  python scripts/organ_dice_ct.py --ct ../shared/data/abdominal_ct/totalsegmentator_example/example_ct_sm.nii.gz \\
      --masks ../shared/data/abdominal_ct/totalsegmentator_example/example_seg_fast --out organ_dice.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import nibabel as nib
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.join(os.path.dirname(HERE), "bundles", "abdominal_trauma")
#: medkit label -> mask files (TotalSegmentator names) that make it up
ORGAN_FILES = {
    "liver": ("liver",),
    "spleen": ("spleen",),
    "kidney_left": ("kidney_left",),
    "kidney_right": ("kidney_right",),
    "bowel": ("small_bowel", "colon", "duodenum"),
}


def label_map(masks_dir: str, reference: nib.Nifti1Image) -> nib.Nifti1Image:
    """One ``SEGMENTATION_LABELS`` map from per-organ masks on ``reference``'s grid."""
    from medkit.data.rsna import SEGMENTATION_LABELS

    out = np.zeros(reference.shape, dtype=np.uint8)
    for name, files in ORGAN_FILES.items():
        for f in files:
            path = os.path.join(masks_dir, f"{f}.nii.gz")
            if not os.path.isfile(path):
                sys.exit(f"{path}: no such mask")
            mask = nib.load(path)
            if mask.shape != reference.shape or not np.allclose(mask.affine, reference.affine, atol=1e-3):
                sys.exit(f"{path}: not on the grid of the CT")
            out[np.asarray(mask.dataobj) > 0] = SEGMENTATION_LABELS[name]
    return nib.Nifti1Image(out, reference.affine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ct", required=True, help="NIfTI CT in HU")
    parser.add_argument("--masks", required=True, help="folder of <organ>.nii.gz masks on the CT's grid")
    parser.add_argument("--bundle", default=BUNDLE)
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    args = parser.parse_args(argv)

    from monai.transforms import Compose

    from medkit.bundle import meta_component
    from medkit.data.rsna import SEGMENTATION_LABELS
    from medkit.networks import load_pretrained

    torch.set_num_threads(2)
    ct = nib.load(args.ct)
    with tempfile.TemporaryDirectory() as tmp:
        seg_path = os.path.join(tmp, "labels.nii.gz")
        nib.save(label_map(args.masks, ct), seg_path)
        item = Compose(meta_component(args.bundle, "preprocessing", seg_key="seg"))({"image": args.ct, "seg": seg_path})
    net = load_pretrained(meta_component(args.bundle, "network_def"), os.path.join(args.bundle, "models", "model.pt"))
    with torch.no_grad():
        seg = net.eval().segment(item["image"][None])
    seg = torch.nn.functional.interpolate(seg, size=item["image"].shape[1:], mode="trilinear", align_corners=False)
    pred, truth = seg.argmax(1)[0], item["seg"][0].long()
    result = {"ct": args.ct, "grid": list(truth.shape), "dice": {}, "voxels_reference": {}, "voxels_predicted": {}}
    for name in ORGAN_FILES:
        label = SEGMENTATION_LABELS[name]
        p, t = pred == label, truth == label
        denom = int(p.sum() + t.sum())
        result["dice"][name] = round(2 * int((p & t).sum()) / denom, 3) if denom else None
        result["voxels_reference"][name], result["voxels_predicted"][name] = int(t.sum()), int(p.sum())
    print(json.dumps(result, indent=1))
    if args.out:
        from medkit.io.atomic import write_json_atomic

        write_json_atomic(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
