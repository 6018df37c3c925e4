"""Fixtures of the data-layer tests: one small synthetic atlas per session (fast: n=300, 32 px)."""

from __future__ import annotations

import pytest

from skinmap.data.catalog import build_catalog
from skinmap.data.synthetic import generate_synthetic_atlas

SMALL = dict(seed=7, n_images=300, image_size=32)


@pytest.fixture(scope="session")
def small_atlas(tmp_path_factory):
    root = tmp_path_factory.mktemp("atlas")
    return generate_synthetic_atlas(root, **SMALL)


@pytest.fixture(scope="session")
def small_catalog(small_atlas):
    return build_catalog(small_atlas.root)
