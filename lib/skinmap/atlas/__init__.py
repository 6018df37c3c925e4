"""The SkinMap retrieval atlas: a small local web app over the fused embedding space.

``python -m skinmap atlas`` runs :func:`skinmap.atlas.app.main`. :class:`~skinmap.atlas.app.AtlasApp`
holds the operations (upload, neighbours, thumbnails, map) and
:func:`~skinmap.atlas.app.make_server` wraps them in a standard-library HTTP server;
:mod:`skinmap.atlas.uploads` checks uploaded images.
"""

__all__ = ["AtlasApp", "make_server", "main"]


def __getattr__(name: str):
    # Lazy, so `python -m skinmap.atlas.app` does not import the module twice.
    if name in __all__:
        from skinmap.atlas import app

        return getattr(app, name)
    raise AttributeError(f"module 'skinmap.atlas' has no attribute {name!r}")
