"""The front ends over a built run: the retrieval atlas web app and cohort assessment.

One module per concern:

* :mod:`~skinmap.atlas.app` -- :class:`AtlasApp`, the atlas' operations (upload, neighbours,
  thumbnails, map), independent of HTTP;
* :mod:`~skinmap.atlas.routes` -- those operations as HTTP routes (a Starlette application:
  security headers, address-free request log, upload limits);
* :mod:`~skinmap.atlas.server` -- serving the routes with uvicorn, loopback by default:
  :func:`make_server`, :func:`serve`;
* :mod:`~skinmap.atlas.search` -- :class:`AtlasIndex`, the faiss index built once at start-up
  (exact when small, IVF when large) with the benchmark's group exclusions, the quality chapter's
  flags and the out-of-distribution threshold;
* :mod:`~skinmap.atlas.uploads` -- checks of an uploaded image (content type, bombs, integrity);
* :mod:`~skinmap.atlas.store` -- the app's content-addressed cache folder (its only writes);
* :mod:`~skinmap.atlas.inference` -- the bounded single-flight queue in front of the embedder;
* :mod:`~skinmap.atlas.assess` -- :func:`assess`, what a proposed cohort would add (paper §9),
  reading its input with :mod:`~skinmap.atlas.cohort` and reporting with
  :mod:`~skinmap.atlas.report` (files, terminal summary) and :mod:`~skinmap.atlas.report_html`.

Argument parsing for ``python -m skinmap atlas`` and ``python -m skinmap assess`` lives in
:mod:`skinmap.cli`. These modules read the run directory through :mod:`skinmap.runs` only and may
import ``book/`` (they are front ends, not library layers).
"""

__all__ = ["AtlasApp", "make_server", "serve", "assess", "AssessConfig", "AssessmentReport", "load_cohort"]

_HOME = {
    "AtlasApp": "app",
    "make_server": "server",
    "serve": "server",
    "AssessConfig": "assess",
    "AssessmentReport": "report",
    "load_cohort": "cohort",
}


def __getattr__(name: str):
    # Lazy: the web stack (starlette, uvicorn) loads only when the app is used, and
    # ``from skinmap.atlas import assess`` still names the submodule.
    import importlib

    if name in _HOME:
        return getattr(importlib.import_module(f"skinmap.atlas.{_HOME[name]}"), name)
    if name == "assess":
        return importlib.import_module("skinmap.atlas.assess")
    raise AttributeError(f"module 'skinmap.atlas' has no attribute {name!r}")
