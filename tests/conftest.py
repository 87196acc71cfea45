"""Shared fixtures: tiny synthetic data sets, the real data location, bundle paths."""

from __future__ import annotations

import os

import pytest
import torch

from medkit.data.synthetic import write_synthetic_chest_xray, write_synthetic_covid_radiography, write_synthetic_lgg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLES = os.path.join(REPO, "bundles")
#: devices a device-sensitive test runs on: the CPU always, the GPU where there is one (skipped elsewhere)
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


@pytest.fixture(scope="session")
def synthetic_cxr(tmp_path_factory) -> str:
    """A tiny Kermany look-alike: ``train`` and ``test`` with NORMAL/PNEUMONIA, 48 px images."""
    return write_synthetic_chest_xray(tmp_path_factory.mktemp("cxr"), n_patients=10, n_test_patients=3, size=48)


@pytest.fixture(scope="session")
def synthetic_covid(tmp_path_factory) -> str:
    """A tiny COVID-19 Radiography Database look-alike without Lung_Opacity, as in ../shared/data."""
    return write_synthetic_covid_radiography(tmp_path_factory.mktemp("covid"), n_per_class=12, size=48)


@pytest.fixture(scope="session")
def synthetic_lgg(tmp_path_factory) -> str:
    """A tiny kaggle_3m look-alike: 6 patients of 8 slices (64 px), deflate TIFFs with 0/255 masks."""
    return write_synthetic_lgg(tmp_path_factory.mktemp("lgg"), n_patients=6, n_slices=8, size=64)


@pytest.fixture(scope="session")
def medkit_data() -> str:
    """The real data folder from ``MEDKIT_DATA``; tests using it are skipped when it is not set."""
    root = os.environ.get("MEDKIT_DATA", "")
    if not root or not os.path.isdir(root):
        pytest.skip("MEDKIT_DATA is not set to the real data folder")
    return root


@pytest.fixture(scope="session")
def pneumonia_bundle() -> str:
    return os.path.join(BUNDLES, "pneumonia")
