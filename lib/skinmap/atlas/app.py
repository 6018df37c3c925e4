"""The retrieval atlas web app: ``python -m skinmap atlas`` (paper §9, "digital atlas").

Upload a picture (or name a catalog id) and see its nearest cases in the fused space with
thumbnails, diagnosis, dataset and metadata, filter them by body site, FST, modality and dataset,
and see where the picture falls on the atlas' 2-D map.

Server: the standard library's ``ThreadingHTTPServer`` (no framework needed for six routes),
bound to 127.0.0.1 unless told otherwise. Hardening, each with the reason:

* uploads are raw request bodies with a mandatory ``Content-Length`` at most ``max_upload_bytes``
  (refused with 413 before a byte is read), checked by content and for decompression bombs by
  :func:`skinmap.atlas.uploads.check_image`;
* the only files written are under ``cache_dir``, under names the server derives itself
  (SHA-256 of the upload, integer row numbers): never a client-supplied name or path. An upload
  is written only for as long as the embedder needs a path, then deleted; its vector is kept;
* thumbnails are served by catalog *row number* only, so no request can name a file;
* no client address is stored or logged (``log_message`` and ``address_string`` are replaced);
* responses carry a strict Content-Security-Policy (same origin only; the page loads no CDN),
  ``nosniff`` and ``no-referrer``; idle sockets time out.

Position of an upload on the map: the map is a UMAP of the atlas without a stored transform, so a
new point is placed at the similarity-weighted mean map position of its k nearest atlas cases
(the usual k-NN out-of-sample placement); a catalog case uses its own map position.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import ipaddress
import json
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
from PIL import Image

from skinmap.analysis.retrieval import FILTERABLE, CaseIndex, load_atlas
from skinmap.atlas.uploads import UploadRejected, check_image
from skinmap.io import write_bytes, write_npy

__all__ = ["AtlasApp", "make_server", "build_parser", "main"]

EmbedFn = Callable[[list[str]], np.ndarray]
SHOWN_COLUMNS = (
    "uid", "dataset", "diagnosis", "icd10_code", "body_site", "fst", "age", "sex", "modality", "release_year",
)
_QUERY_ID = re.compile(r"^[0-9a-f]{64}$")
_THUMB = re.compile(r"^/thumb/([0-9]{1,9})\.jpg$")
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


def _json_value(v):
    if v is None or v is pd.NA or (isinstance(v, float) and not np.isfinite(v)):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


class AtlasApp:
    """The atlas' state and operations, independent of HTTP (so tests can call it directly).

    ``vectors``/``metadata``: the atlas (fused space, one metadata row per vector with ``uid`` and
    ideally ``path`` for thumbnails). ``map2d``: ``uid, x, y``. ``embed_fn(paths) -> (n, d)``
    embeds new images into the same space (``None``: uploads answer 503).
    """

    def __init__(
        self,
        vectors: np.ndarray,
        metadata: pd.DataFrame,
        *,
        cache_dir: str | Path,
        map2d: pd.DataFrame | None = None,
        embed_fn: EmbedFn | None = None,
        max_upload_bytes: int = 10 * 2**20,
        max_pixels: int = 40_000_000,
        k_default: int = 12,
        k_max: int = 100,
        thumb_size: int = 160,
        max_map_points: int = 20_000,
        vector_memory: int = 256,
    ):
        self.index = CaseIndex(vectors, metadata)
        self.metadata = self.index.metadata
        self.cache_dir = Path(cache_dir).resolve()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.embed_fn = embed_fn
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_pixels = int(max_pixels)
        self.k_default, self.k_max = int(k_default), int(k_max)
        self.thumb_size = int(thumb_size)
        self._embed_lock = threading.Lock()  # embedders (torch/onnx sessions) are not re-entrant
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vectors_lock = threading.Lock()
        self._vector_memory = vector_memory
        self.xy = np.full((len(self.metadata), 2), np.nan)
        if map2d is not None and len(map2d):
            pos = map2d.set_index(map2d["uid"].astype(str))[["x", "y"]]
            self.xy = pos.reindex(self.metadata["uid"].astype(str)).to_numpy(dtype=np.float64)
        rng = np.random.default_rng(0)
        has_xy = np.flatnonzero(np.isfinite(self.xy).all(axis=1))
        self.map_rows = np.sort(rng.choice(has_xy, size=min(max_map_points, has_xy.size), replace=False))
        self.shown = [c for c in SHOWN_COLUMNS if c in self.metadata]

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, cache_dir: str | Path | None = None,
                     embed_fn: EmbedFn | None = None, **kwargs) -> AtlasApp:
        """Load ``embedding/fused.npy``, ids, ``data/catalog.parquet`` and ``embedding/map2d.parquet``."""
        run_dir = Path(run_dir)
        vectors, metadata = load_atlas(run_dir)
        map_path = run_dir / "embedding" / "map2d.parquet"
        map2d = pd.read_parquet(map_path) if map_path.is_file() else None
        cache_dir = Path(cache_dir) if cache_dir is not None else run_dir / "atlas" / "app_cache"
        if embed_fn is None:
            embed_fn = default_embed_fn(run_dir, cache_dir)
        return cls(vectors, metadata, cache_dir=cache_dir, map2d=map2d, embed_fn=embed_fn, **kwargs)

    # ---------------------------------------------------------------- cache helpers

    def _inside_cache(self, *parts: str) -> Path:
        path = self.cache_dir.joinpath(*parts).resolve()
        if self.cache_dir not in path.parents:
            raise ValueError("refusing to touch a path outside the cache directory")
        return path

    def _remember(self, query_id: str, vector: np.ndarray) -> None:
        with self._vectors_lock:
            self._vectors[query_id] = vector
            self._vectors.move_to_end(query_id)
            while len(self._vectors) > self._vector_memory:
                self._vectors.popitem(last=False)

    def _recall(self, query_id: str) -> np.ndarray:
        if not _QUERY_ID.match(query_id or ""):
            raise KeyError("malformed query id")
        with self._vectors_lock:
            if query_id in self._vectors:
                return self._vectors[query_id]
        path = self._inside_cache("vectors", f"{query_id}.npy")
        if not path.is_file():
            raise KeyError("unknown query id (upload the image again)")
        vector = np.load(path, allow_pickle=False)
        self._remember(query_id, vector)
        return vector

    # ---------------------------------------------------------------- operations

    def options(self) -> dict:
        """Filter choices (distinct values with counts) and atlas facts for the page."""
        out = {"n_cases": len(self.metadata), "k_default": self.k_default, "k_max": self.k_max,
               "can_upload": self.embed_fn is not None, "max_upload_bytes": self.max_upload_bytes,
               "filters": {}}
        for col in FILTERABLE:
            if col in self.metadata:
                counts = self.metadata[col].astype("string").value_counts(dropna=True).sort_index()
                out["filters"][col] = [[str(v), int(n)] for v, n in counts.items()]
        return out

    def map_points(self) -> dict:
        rows = self.map_rows
        ds = self.metadata["dataset"].astype("string").fillna("?") if "dataset" in self.metadata else pd.Series(["?"] * len(self.metadata))
        codes, names = pd.factorize(ds.iloc[rows])
        return {"x": np.round(self.xy[rows, 0], 4).tolist(), "y": np.round(self.xy[rows, 1], 4).tolist(),
                "group": codes.tolist(), "groups": [str(n) for n in names], "n_total": len(self.metadata)}

    def upload(self, data: bytes) -> str:
        """Validate and embed an upload; return its query id (SHA-256 of the bytes)."""
        check = check_image(data, max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels)
        query_id = hashlib.sha256(data).hexdigest()
        try:
            self._recall(query_id)
            return query_id  # already embedded
        except KeyError:
            pass
        if self.embed_fn is None:
            raise UploadRejected(503, "this atlas has no embedding model; query by catalog id instead")
        tmp = self._inside_cache("uploads", f"{query_id}{check.suffix}")
        write_bytes(data, tmp)
        try:
            with self._embed_lock:
                vector = np.asarray(self.embed_fn([str(tmp)]), dtype=np.float32).reshape(1, -1)[0]
        finally:
            tmp.unlink(missing_ok=True)  # keep the vector, not the picture
        if vector.shape[0] != self.index.vectors.shape[1]:
            raise UploadRejected(500, "the embedder returned a vector of the wrong dimension")
        if not np.isfinite(vector).all():  # the pipeline marks images it cannot use with NaN
            raise UploadRejected(422, "the embedding model could not use this image")
        write_npy(vector, self._inside_cache("vectors", f"{query_id}.npy"))
        self._remember(query_id, vector)
        return query_id

    def neighbours(self, *, query_id: str | None = None, uid: str | None = None,
                   filters: Mapping[str, Sequence[str]] | None = None, k: int | None = None) -> dict:
        """Nearest cases of an uploaded query or a catalog case, with metadata and map positions."""
        k = max(1, min(int(k or self.k_default), self.k_max))
        filters = {c: v for c, v in (filters or {}).items() if c in FILTERABLE and c in self.metadata}
        if uid is not None:
            row = self.index.row_of(uid)
            vector = self.index.vectors[row]
            hits = self.index.search(vector, k, filters=filters, exclude_rows=[row])
            position = self.xy[row]
            query = {"kind": "catalog", "uid": str(uid)}
        elif query_id is not None:
            vector = self._recall(query_id)
            hits = self.index.search(vector, k, filters=filters)
            near = self.index.search(vector, self.k_default)  # unfiltered: placement on the map
            position = self._place(near["row"].to_numpy(), near["similarity"].to_numpy())
            query = {"kind": "upload", "query_id": query_id}
        else:
            raise KeyError("give a query id or a catalog uid")
        results = []
        for rec in hits.itertuples(index=False):
            row = int(rec.row)
            item = {"rank": int(rec.rank), "row": row, "similarity": round(float(rec.similarity), 5),
                    "thumb": f"/thumb/{row}.jpg", "x": _json_value(self.xy[row, 0]), "y": _json_value(self.xy[row, 1])}
            item.update({c: _json_value(getattr(rec, c)) for c in self.shown})
            results.append(item)
        query["x"], query["y"] = _json_value(position[0]), _json_value(position[1])
        return {"query": query, "k": k, "filters": filters, "results": results}

    def _place(self, rows: np.ndarray, sims: np.ndarray) -> np.ndarray:
        xy = self.xy[rows]
        ok = np.isfinite(xy).all(axis=1)
        if not ok.any():
            return np.array([np.nan, np.nan])
        w = np.clip(sims[ok], 1e-6, None)
        return (xy[ok] * w[:, None]).sum(axis=0) / w.sum()

    def thumbnail(self, row: int) -> bytes:
        """JPEG thumbnail of a catalog case, cached under ``cache_dir/thumbs``; KeyError if none."""
        if not 0 <= row < len(self.metadata):
            raise KeyError("no such case")
        cached = self._inside_cache("thumbs", f"{row}.jpg")
        if cached.is_file():
            return cached.read_bytes()
        path = self.metadata["path"].iloc[row] if "path" in self.metadata else None
        if path is None or pd.isna(path) or not Path(path).is_file():
            raise KeyError("this case has no image")
        try:
            with Image.open(path) as img:
                if img.width * img.height > self.max_pixels:
                    raise KeyError("catalog image too large for a thumbnail")
                img = img.convert("RGB")
                img.thumbnail((self.thumb_size, self.thumb_size))
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=85)
        except (OSError, ValueError) as exc:
            raise KeyError(f"unreadable catalog image ({type(exc).__name__})") from None
        data = buf.getvalue()
        write_bytes(data, cached)
        return data


def default_embed_fn(run_dir: Path, cache_dir: Path) -> EmbedFn | None:
    """The run's embedding pipeline as an ``embed_fn`` (``None`` when it is not installed).

    Its feature cache goes under the app's own ``cache_dir`` (never into the run directory).
    """
    try:
        from skinmap.embed import pipeline
    except ImportError:
        return None
    # Loaded once and reused for every upload (loading the members takes seconds).
    return pipeline.FusedEmbedder(Path(run_dir) / "embedding", Path(cache_dir) / "embed")


# --------------------------------------------------------------------------- HTTP


class AtlasHandler(BaseHTTPRequestHandler):
    """Routes: GET / (page), /app.js, /style.css, /api/options, /api/map, /api/neighbours,
    /thumb/<row>.jpg, /healthz; POST /api/upload (raw image body)."""

    server_version = "SkinMapAtlas/1"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle/slow clients cannot hold a thread forever
    app: AtlasApp  # set on the subclass made by make_server
    quiet = False

    # No client addresses anywhere: not in logs, not in error pages.
    def address_string(self) -> str:  # noqa: D401
        return "-"

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        if not self.quiet:
            sys.stderr.write("[atlas] " + (format % args) + "\n")

    # ---------------------------------------------------------------- responses

    def _send(self, status: int, body: bytes, content_type: str, *, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj, default=_json_value).encode("utf-8"), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _params(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return parts.path, parse_qs(parts.query, keep_blank_values=False, max_num_fields=64)

    @staticmethod
    def _filters(params: Mapping[str, list[str]]) -> dict[str, list[str]]:
        return {c: params[c] for c in FILTERABLE if c in params}

    # ---------------------------------------------------------------- routes

    def do_GET(self) -> None:  # noqa: N802
        try:
            path, params = self._params()
        except ValueError:
            return self._error(400, "malformed query string")
        try:
            if path in STATIC:
                name, ctype = STATIC[path]
                body = resources.files("skinmap.atlas").joinpath("static", name).read_bytes()
                return self._send(200, body, ctype, cache="no-cache")
            if path == "/healthz":
                return self._json(200, {"ok": True})
            if path == "/api/options":
                return self._json(200, self.app.options())
            if path == "/api/map":
                return self._json(200, self.app.map_points())
            if path == "/api/neighbours":
                k = params.get("k", [None])[0]
                result = self.app.neighbours(
                    query_id=params.get("query", [None])[0], uid=params.get("uid", [None])[0],
                    filters=self._filters(params), k=int(k) if k else None)
                return self._json(200, result)
            match = _THUMB.match(path)
            if match:
                return self._send(200, self.app.thumbnail(int(match.group(1))), "image/jpeg",
                                  cache="public, max-age=86400")
            return self._error(404, "not found")
        except KeyError as exc:
            return self._error(404, str(exc.args[0]) if exc.args else "not found")
        except ValueError as exc:
            return self._error(400, str(exc))

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        try:
            path, params = self._params()
        except ValueError:
            return self._error(400, "malformed query string")
        if path != "/api/upload":
            return self._error(404, "not found")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return self._error(411, "send the image with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            return self._error(411, "Content-Length required")
        if length > self.app.max_upload_bytes:
            self.close_connection = True  # do not read (or wait for) the oversized body
            return self._error(413, f"upload is {length} bytes; the limit is {self.app.max_upload_bytes}")
        if length < 0:
            self.close_connection = True
            return self._error(400, "negative Content-Length")
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            return self._error(400, "upload ended early")
        try:
            query_id = self.app.upload(data)
            k = params.get("k", [None])[0]
            result = self.app.neighbours(query_id=query_id, filters=self._filters(params), k=int(k) if k else None)
        except UploadRejected as exc:
            return self._error(exc.status, str(exc))
        except (KeyError, ValueError) as exc:
            return self._error(400, str(exc))
        return self._json(200, result)


class AtlasServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_server(app: AtlasApp, host: str = "127.0.0.1", port: int = 8765, *, quiet: bool = False) -> AtlasServer:
    """An HTTP server for ``app`` (port 0 picks a free port: read ``server.server_address``)."""
    handler = type("BoundAtlasHandler", (AtlasHandler,), {"app": app, "quiet": quiet})
    return AtlasServer((host, port), handler)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _preload(embedder) -> None:
    try:
        embedder.load()
    except Exception as exc:  # uploads will report the problem; serving by catalog id still works
        print(f"warning: could not load the embedding models ({type(exc).__name__}: {exc})", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m skinmap atlas",
                                description="Serve the SkinMap retrieval atlas (upload an image, see similar cases).")
    p.add_argument("--profile", default="demo", help="profile whose run directory to serve (default demo)")
    p.add_argument("--run-dir", help="run directory (default <project>/runs/<profile>)")
    p.add_argument("--project", help="project root (default: found from the current folder)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    p.add_argument("--cache-dir", help="the only folder the app writes to (default <run-dir>/atlas/app_cache)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted upload in MiB (default 10)")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="largest accepted image in pixels")
    p.add_argument("--k", type=int, default=12, help="neighbours shown by default")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: ``python -m skinmap atlas [options]``; serves until interrupted."""
    from skinmap.assess import _find_project_root

    args = build_parser().parse_args(list(argv) if argv is not None else None)
    if args.run_dir:
        run_dir = Path(args.run_dir).resolve()
    else:
        root = Path(args.project).resolve() if args.project else _find_project_root()
        if root is None:
            print("error: not inside a SkinMap project; pass --run-dir", file=sys.stderr)
            return 2
        run_dir = root / "runs" / args.profile
    if not _is_loopback(args.host):
        print(f"warning: binding to {args.host} exposes the atlas beyond this machine", file=sys.stderr)
    # Pillow's own bomb guard as a second line behind check_image's explicit pixel count.
    Image.MAX_IMAGE_PIXELS = args.max_pixels
    try:
        app = AtlasApp.from_run_dir(run_dir, cache_dir=args.cache_dir, k_default=args.k,
                                    max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = make_server(app, args.host, args.port, quiet=args.quiet)
    host, port = server.server_address[:2]
    print(f"SkinMap atlas: {len(app.metadata)} cases from {run_dir}")
    if app.embed_fn is None:
        print("note: no embedding pipeline installed; uploads are disabled, catalog-id queries work")
    if hasattr(app.embed_fn, "load"):
        # Load the embedding models while the first visitor reads the page, not on first upload.
        threading.Thread(target=_preload, args=(app.embed_fn,), daemon=True).start()
    print(f"Serving on http://{host}:{port}/  (Ctrl-C to stop; cache in {app.cache_dir})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
