"""Serving the atlas: uvicorn on a socket bound at construction, 127.0.0.1 by default.

The routes and their hardening are in :mod:`skinmap.atlas.routes`. Here: uvicorn's access log
(which prints the client address) is off and forwarded-for headers are not trusted, its
``Server`` header is off, idle keep-alive connections close after 5 s, and the request log goes
to standard error as ``[atlas] METHOD path status time`` (nothing when ``quiet``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
import time
from pathlib import Path

from skinmap.atlas.app import AtlasApp
from skinmap.atlas.routes import create_asgi_app, logger

__all__ = ["AtlasServer", "make_server", "serve", "is_loopback"]


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (so test capture and redirection work)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never break a request
            self.handleError(record)


def _install_log_handler() -> None:
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[atlas] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class AtlasServer:
    """uvicorn serving an :class:`AtlasApp` on a socket bound at construction.

    Binding happens here, so a busy port fails at once and ``port=0`` has its real port in
    :attr:`server_address` before serving. :meth:`serve_forever` blocks (Ctrl-C stops it when run
    in the main thread); :meth:`start` / :meth:`stop` run it on a background thread (tests).
    """

    def __init__(self, app: AtlasApp, host: str = "127.0.0.1", port: int = 8765, *, quiet: bool = False,
                 body_timeout: float = 30.0):
        import uvicorn

        _install_log_handler()
        self.app = app
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=128)
        config = uvicorn.Config(
            create_asgi_app(app, log_requests=not quiet, body_timeout=body_timeout),
            log_config=None,          # keep the host program's logging as it is
            access_log=False,         # uvicorn's access log prints the client address
            server_header=False,
            proxy_headers=False,      # never take a client address from X-Forwarded-For
            lifespan="off",
            timeout_keep_alive=5,     # idle keep-alive connections do not hold the server
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def server_address(self) -> tuple[str, int]:
        return self.socket.getsockname()[:2]

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def serve_forever(self) -> None:
        self._server.run(sockets=[self.socket])

    def start(self, timeout: float = 10.0) -> AtlasServer:
        """Serve on a daemon thread; return once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve_forever, name="atlas-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the atlas server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (open requests get ``timeout_graceful_shutdown``) and close the socket."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.socket.close()

    def __enter__(self) -> AtlasServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def make_server(app: AtlasApp, host: str = "127.0.0.1", port: int = 8765, *, quiet: bool = False) -> AtlasServer:
    """An :class:`AtlasServer` for ``app`` (``port=0`` picks a free port)."""
    return AtlasServer(app, host, port, quiet=quiet)


def serve(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8765, cache_dir: str | Path | None = None,
          max_upload_bytes: int = 10 * 2**20, max_pixels: int = 40_000_000, k_default: int = 12,
          max_pending: int = 8, quiet: bool = False, index_config=None) -> int:
    """Load the run's atlas and serve it until interrupted (the ``atlas`` command); exit code.

    ``index_config`` (:class:`~skinmap.atlas.search.AtlasIndexConfig`) sets the IVF threshold,
    the out-of-distribution percentile and whether flagged images are hidden by default.
    """
    from PIL import Image

    if not is_loopback(host):
        print(f"warning: binding to {host} exposes the atlas beyond this machine", file=sys.stderr)
    # Pillow's own bomb guard as a second line behind check_image's explicit pixel count.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        app = AtlasApp.from_run_dir(run_dir, cache_dir=cache_dir, k_default=k_default, max_pending=max_pending,
                                    max_upload_bytes=max_upload_bytes, max_pixels=max_pixels,
                                    index_config=index_config)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        server = make_server(app, host, port, quiet=quiet)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    idx = app.index
    kind = "synthetic atlas (generated images: not for clinical reference)" if app.synthetic else "atlas"
    print(f"SkinMap {kind}, profile {app.profile or 'unknown'}: {len(app.metadata)} cases from {run_dir}")
    print(f"index: {idx.kind}" + (f" ({idx.nlist} cells, {idx.nprobe} probed)" if idx.kind == "ivf" else "")
          + f"; out-of-distribution below similarity {idx.ood_threshold:.3f} (percentile "
          f"{idx.config.ood_percentile:g} of {idx.nn_similarities.size} atlas nearest neighbours); "
          f"{int(idx.flagged.sum())} images flagged by the quality chapter"
          + (" hidden by default" if idx.config.exclude_flagged else " shown with a badge"))
    if app.embed_fn is None:
        print("note: no embedding pipeline installed; uploads are disabled, catalog-id queries work")
    if hasattr(app.embed_fn, "load"):
        # Load the embedding models while the first visitor reads the page, not on first upload.
        threading.Thread(target=_preload, args=(app.embed_fn,), daemon=True).start()
    print(f"Serving on {server.url}/  (Ctrl-C to stop; cache in {app.cache_dir})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.socket.close()
        app.close()
    return 0


def _preload(embedder) -> None:
    try:
        embedder.load()
    except Exception as exc:  # noqa: BLE001 - uploads will report it; catalog-id queries still work
        print(f"warning: could not load the embedding models ({type(exc).__name__}: {exc})", file=sys.stderr)
