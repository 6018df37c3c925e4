"""The atlas' HTTP routes: a Starlette application over :class:`~skinmap.atlas.app.AtlasApp`.

Routes: ``GET /`` (the page), ``/app.js``, ``/style.css``, ``/api/options``, ``/api/map``,
``/api/neighbours``, ``/thumb/<row>.jpg``, ``/healthz``; ``POST /api/upload`` (the raw image as
the request body). Hardening, each with its reason:

* an upload needs a ``Content-Length`` of at most ``max_upload_bytes``: a larger one is refused
  with 413 before a byte of the body is read; the body must arrive within ``body_timeout``
  seconds (a slow client cannot hold a request open); then the bytes are checked by content and
  for decompression bombs (:func:`skinmap.atlas.uploads.check_image`);
* the embedding queue is bounded: when it is full an upload gets ``503`` with ``Retry-After``
  at once rather than an unbounded wait (:mod:`skinmap.atlas.inference`);
* the only files written are under the app's cache folder, under names derived by the server
  (:mod:`skinmap.atlas.store`); thumbnails are served by catalog *row number* only, so no
  request can name a file;
* no client address is read or logged: the request log has method, path, status and time only,
  with control characters of the path escaped (no terminal escape injection, no forged log
  lines), and every exception is answered (500) and logged here as one line, so the server never
  prints a traceback naming a peer;
* responses carry a strict Content-Security-Policy (same origin only; the page loads no CDN),
  ``nosniff`` and ``no-referrer``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from concurrent.futures import Future
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from skinmap.analysis.retrieval import FILTERABLE
from skinmap.atlas.app import AtlasApp, json_value
from skinmap.atlas.uploads import UploadRejected

__all__ = ["SECURITY_HEADERS", "printable", "create_asgi_app"]

logger = logging.getLogger("skinmap.atlas")

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_THUMB = re.compile(r"^([0-9]{1,9})\.jpg$")
_MAX_QUERY_FIELDS = 64


def printable(text: str, limit: int = 300) -> str:
    """``text`` with backslashes and non-printable characters escaped, cut at ``limit``.

    Request paths come from the client: unescaped, a ``\\x1b[...`` sequence would drive the
    operator's terminal and a newline would forge a log line.
    """
    out = []
    for ch in text[:limit]:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out) + ("..." if len(text) > limit else "")


# --------------------------------------------------------------------------- responses


def _json(status: int, obj, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(obj, default=json_value, ensure_ascii=False).encode("utf-8")
    return Response(body, status, headers={"Cache-Control": "no-store", **(headers or {})},
                    media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": message}, headers)


def _query(request: Request) -> dict[str, list[str]]:
    items = request.query_params.multi_items()
    if len(items) > _MAX_QUERY_FIELDS:
        raise ValueError("too many query parameters")
    params: dict[str, list[str]] = {}
    for key, value in items:
        if value != "":
            params.setdefault(key, []).append(value)
    return params


def _k(params: dict[str, list[str]]) -> int | None:
    k = params.get("k", [None])[0]
    return int(k) if k else None


def _filters(params: dict[str, list[str]]) -> dict[str, list[str]]:
    return {c: params[c] for c in FILTERABLE if c in params}


def _include_flagged(params: dict[str, list[str]]) -> bool | None:
    """``flagged=1`` shows images the quality chapter flags, ``flagged=0`` hides them; absent: the default."""
    value = params.get("flagged", [None])[0]
    if value is None:
        return None
    if value not in ("0", "1"):
        raise ValueError("flagged must be 0 or 1")
    return value == "1"


async def _result_of(future: Future):
    """Await a job's future without letting a cancelled request cancel the shared job.

    (``asyncio.wrap_future`` would cancel the underlying job when the awaiting task is
    cancelled; here other uploads of the same image may be waiting on it.)
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def wake(_):
        try:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass

    future.add_done_callback(wake)
    await done
    return future.result()


# --------------------------------------------------------------------------- the ASGI app


class _Hygiene:
    """ASGI middleware: security headers on every response, an address-free request log, and
    every exception answered (500) and logged in one line here instead of by the server."""

    def __init__(self, app, *, log_requests: bool):
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = {"status": None}

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # noqa: BLE001 - the last line of defence; logged below
            logger.error("error %s %s: %s: %s", scope.get("method"), printable(scope.get("path", "")),
                         type(exc).__name__, printable(str(exc)))
            if state["status"] is None:
                await _error(500, "internal error")(scope, receive, send_with_headers)
        finally:
            if self.log_requests:
                query = scope.get("query_string", b"").decode("latin-1")
                target = scope.get("path", "") + (f"?{query}" if query else "")
                logger.info("%s %s %s %.1f ms", scope.get("method"), printable(target), state["status"] or "-",
                            1000 * (time.perf_counter() - start))


def create_asgi_app(app: AtlasApp, *, log_requests: bool = True, body_timeout: float = 30.0):
    """The Starlette application serving ``app`` (wrapped in the hygiene middleware)."""
    static = {path: (resources.files("skinmap.atlas").joinpath("static", name).read_bytes(), ctype)
              for path, (name, ctype) in STATIC.items()}

    async def page(request: Request) -> Response:
        body, ctype = static[request.url.path]
        return Response(body, headers={"Cache-Control": "no-cache"}, media_type=ctype)

    async def healthz(request: Request) -> Response:
        return _json(200, {"ok": True})

    async def options(request: Request) -> Response:
        return _json(200, await run_in_threadpool(app.options))

    async def map_points(request: Request) -> Response:
        return _json(200, await run_in_threadpool(app.map_points))

    async def neighbours(request: Request) -> Response:
        try:
            params = _query(request)
            result = await run_in_threadpool(
                lambda: app.neighbours(query_id=params.get("query", [None])[0], uid=params.get("uid", [None])[0],
                                       filters=_filters(params), k=_k(params),
                                       include_flagged=_include_flagged(params)))
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "not found")
        except ValueError as exc:
            return _error(400, str(exc))
        return _json(200, result)

    async def thumbnail(request: Request) -> Response:
        match = _THUMB.match(request.path_params["name"])
        if not match:
            return _error(404, "not found")
        try:
            data = await run_in_threadpool(app.thumbnail, int(match.group(1)))
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "not found")
        return Response(data, headers={"Cache-Control": "public, max-age=86400"}, media_type="image/jpeg")

    async def read_body(request: Request) -> bytes | Response:
        close = {"Connection": "close"}  # do not read (or wait for) a body we refuse
        if request.headers.get("transfer-encoding"):
            return _error(411, "send the image with a Content-Length, not chunked", close)
        try:
            length = int(request.headers.get("content-length", ""))
        except ValueError:
            return _error(411, "Content-Length required", close)
        if length < 0:
            return _error(400, "negative Content-Length", close)
        if length > app.max_upload_bytes:
            return _error(413, f"upload is {length} bytes; the limit is {app.max_upload_bytes}", close)
        async def collect() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                chunks.append(chunk)
                size += len(chunk)
                if size > length:
                    break
            return b"".join(chunks)

        try:
            data = await asyncio.wait_for(collect(), body_timeout)
        except asyncio.TimeoutError:
            return _error(408, f"the upload did not arrive within {body_timeout:g} s", close)
        if len(data) > length:
            return _error(400, "body longer than its Content-Length", close)
        if len(data) < length:
            return _error(400, "upload ended early", close)
        return data

    async def upload(request: Request) -> Response:
        try:
            params = _query(request)
        except ValueError as exc:
            return _error(400, str(exc))
        data = await read_body(request)
        if isinstance(data, Response):
            return data
        try:
            query_id, pending = await run_in_threadpool(app.submit_upload, data)
            if pending is not None:
                await _result_of(pending)
            result = await run_in_threadpool(
                lambda: app.neighbours(query_id=query_id, filters=_filters(params), k=_k(params),
                                       include_flagged=_include_flagged(params)))
        except UploadRejected as exc:
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
            return _error(exc.status, str(exc), headers)
        except (KeyError, ValueError) as exc:
            return _error(400, str(exc.args[0]) if exc.args else "bad request")
        return _json(200, result)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return _error(status, "not found" if status == 404 else "method not allowed")

    routes = [Route(path, page, methods=["GET"]) for path in STATIC]
    routes += [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/options", options, methods=["GET"]),
        Route("/api/map", map_points, methods=["GET"]),
        Route("/api/neighbours", neighbours, methods=["GET"]),
        Route("/thumb/{name}", thumbnail, methods=["GET"]),
        Route("/api/upload", upload, methods=["POST"]),
    ]
    starlette = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    return _Hygiene(starlette, log_requests=log_requests)
