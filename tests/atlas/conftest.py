"""Fixtures for the atlas tests: a fake run directory and a live server on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _fake_run  # noqa: E402


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> Path:
    return _fake_run.make_fake_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def atlas_app(fake_run, tmp_path_factory):
    from skinmap.atlas.app import AtlasApp

    app = AtlasApp.from_run_dir(
        fake_run, cache_dir=tmp_path_factory.mktemp("cache"), embed_fn=_fake_run.colour_embed_fn(),
        max_upload_bytes=200_000, max_pixels=1_000_000,
    )
    yield app
    app.close()


@pytest.fixture(scope="module")
def live_server(atlas_app):
    """(base_url, app) of a server on an ephemeral loopback port, stopped after the module."""
    from skinmap.atlas.server import make_server

    server = make_server(atlas_app, "127.0.0.1", 0, quiet=True).start()
    yield server.url, atlas_app
    server.stop()
