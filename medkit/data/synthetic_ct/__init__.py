"""A synthetic look-alike of the RSNA 2023 Abdominal Trauma Detection data: abdominal CT series as DICOM, and tables.

The real set is ``train_images/<patient_id>/<series_id>/<instance_number>.dcm`` (axial CT slices, one or two
series per patient), ``train.csv`` (one-hot labels per patient: bowel and active extravasation healthy/injury;
kidney, liver and spleen healthy/low/high; ``any_injury``) and ``train_series_meta.csv`` (``aortic_hu`` and
``incomplete_organ`` per series). :func:`write_synthetic_rsna` writes the same layout with synthetic images for
the labels of real or made-up patients; :func:`synthetic_ct_volume` makes one volume and can also return the
organ and lesion masks it drew; :func:`read_rsna_labels` reads and checks a ``train.csv``.

Volumes are int16 Hounsfield units indexed ``(x, y, z)``: ``x`` runs along an image row from the patient's right
to left (the DICOM column index, so the liver is at low ``x`` as in radiological display), ``y`` from anterior to
posterior (the DICOM row index; the patient lies supine) and ``z`` from inferior to superior (the slice index;
``InstanceNumber`` and ``ImagePositionPatient[2]`` grow with it).

Modules, one job each: ``geometry`` (the voxel grid and the shapes drawn on it), ``anatomy`` (tissues and the
healthy body), ``injuries`` (what the labels add), ``volume`` (one volume from a patient's labels), ``series``
(one series as DICOM slices and a NIfTI label map) and ``writer`` (the data set in the competition's layout).
"""

from __future__ import annotations

from medkit.data.rsna import read_rsna_labels as read_rsna_labels
from medkit.data.synthetic_ct.series import segmentation_label_map as segmentation_label_map
from medkit.data.synthetic_ct.volume import RSNA_GRADES, RSNA_TARGETS, synthetic_ct_volume
from medkit.data.synthetic_ct.writer import DEMO_INJURIES, patient_rng, write_synthetic_rsna, write_synthetic_rsna_demo

__all__ = [
    "RSNA_TARGETS",
    "RSNA_GRADES",
    "synthetic_ct_volume",
    "patient_rng",
    "write_synthetic_rsna",
    "write_synthetic_rsna_demo",
    "DEMO_INJURIES",
]
