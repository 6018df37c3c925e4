"""The atlas app over HTTP: upload checks, neighbours, filters, file-system and log hygiene."""

from __future__ import annotations

import http.client
import io
import json
import struct
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

import _fake_run
from skinmap.atlas.uploads import UploadRejected, check_image, sniff_format


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def post(url, data, headers=None):
    req = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR claims width x height (CRC fixed): a decompression bomb."""
    data = bytearray(_fake_run.png_bytes((10, 20, 30), size=(4, 4)))
    ihdr = 8 + 8  # signature + (length, type)
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def jpeg_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(buf, format="JPEG")
    return buf.getvalue()


# ---------------------------------------------------------------------------- content checks


def test_check_image_accepts_by_content_and_refuses_the_rest():
    assert check_image(jpeg_bytes()).format == "JPEG"
    assert check_image(_fake_run.png_bytes((1, 2, 3))).format == "PNG"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, format="WEBP")
    assert check_image(buf.getvalue()).format == "WEBP"
    assert sniff_format(b"GIF89a....") is None
    with pytest.raises(UploadRejected) as e:
        check_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>")  # a "picture" that is text
    assert e.value.status == 415
    with pytest.raises(UploadRejected) as e:
        check_image(png_with_header_size(60_000, 60_000), max_pixels=1_000_000)
    assert e.value.status == 413 and "decompression" in str(e.value)
    with pytest.raises(UploadRejected) as e:
        check_image(jpeg_bytes()[:-60])  # truncated
    assert e.value.status == 422
    with pytest.raises(UploadRejected) as e:
        check_image(b"\xff\xd8\xff" + b"\0" * 100, max_bytes=50)
    assert e.value.status == 413
    with pytest.raises(UploadRejected) as e:
        check_image(b"")
    assert e.value.status == 400


# ---------------------------------------------------------------------------- HTTP


def test_page_and_api_basics(live_server):
    base, app = live_server
    status, headers, body = get(base + "/")
    assert status == 200 and b"SkinMap atlas" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert b"http://" not in body and b"https://" not in body  # no CDN, nothing external
    _, _, js = get(base + "/app.js")
    assert b"http://" not in js and b"https://" not in js
    status, _, body = get(base + "/api/options")
    opts = json.loads(body)
    assert opts["n_cases"] == 120 and opts["can_upload"]
    assert {v for v, _ in opts["filters"]["dataset"]} == {"alpha", "beta", "gamma"}
    status, _, body = get(base + "/api/map")
    assert len(json.loads(body)["x"]) == 120


def test_upload_returns_the_planted_cluster_and_filters_apply(live_server):
    base, app = live_server
    status, res = post(base + "/api/upload?k=8", _fake_run.png_bytes(_fake_run.COLOURS[2]))
    assert status == 200, res
    assert len(res["results"]) == 8
    assert {r["diagnosis"] for r in res["results"]} == {"bcc"}
    sims = [r["similarity"] for r in res["results"]]
    assert sims == sorted(sims, reverse=True)
    assert res["query"]["x"] is not None
    qid = res["query"]["query_id"]
    status, _, body = get(f"{base}/api/neighbours?query={qid}&k=5&dataset=gamma&fst=1&fst=2&fst=3")
    filtered = json.loads(body)["results"]
    meta = app.metadata
    allowed = meta[(meta.dataset == "gamma") & meta.fst.isin([1, 2, 3])]
    # Brute force: the 5 most similar allowed cases.
    v = _fake_run.centroids()[2]
    sims = app.index.vectors[allowed.index] @ (v / np.linalg.norm(v))
    want = allowed.index[np.argsort(-sims)[:5]].tolist()
    assert [r["row"] for r in filtered] == want
    status, _, body = get(f"{base}/api/neighbours?uid=alpha/img0000&k=3")
    res = json.loads(body)
    assert res["query"]["kind"] == "catalog" and "alpha/img0000" not in [r["uid"] for r in res["results"]]


def test_bad_requests_are_refused_cleanly(live_server):
    base, app = live_server
    assert post(base + "/api/upload", b"hello, not an image")[0] == 415
    assert post(base + "/api/upload", png_with_header_size(50_000, 50_000))[0] == 413
    assert get(base + "/api/neighbours?query=deadbeef")[0] == 404
    assert get(base + "/api/neighbours?uid=nope/x")[0] == 404
    assert get(base + "/thumb/99999.jpg")[0] == 404
    assert get(base + "/thumb/../../etc/passwd")[0] == 404
    assert get(base + "/static/../app.py")[0] == 404
    # An oversized Content-Length is refused before the body is sent.
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.putrequest("POST", "/api/upload")
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()


def test_writes_stay_in_cache_and_no_addresses_logged(fake_run, tmp_path, capfd):
    import threading

    from skinmap.atlas.app import AtlasApp, make_server

    cache = tmp_path / "cache"
    before = {p for p in fake_run.rglob("*")}
    app = AtlasApp.from_run_dir(fake_run, cache_dir=cache, embed_fn=_fake_run.colour_embed_fn())
    server = make_server(app, "127.0.0.1", 0, quiet=False)  # logging on: check what it logs
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        assert post(base + "/api/upload", _fake_run.png_bytes(_fake_run.COLOURS[0]))[0] == 200
        assert get(base + "/thumb/3.jpg")[0] == 200
        assert post(base + "/api/upload", b"junk")[0] == 415
    finally:
        server.shutdown()
        server.server_close()
    assert {p for p in fake_run.rglob("*")} == before  # nothing new in the run directory
    written = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())
    assert written[0].startswith("thumbs/") and written[1].startswith("vectors/") and len(written) == 2
    err = capfd.readouterr().err
    assert "POST /api/upload" in err and "127.0.0.1" not in err


def test_bounded_concurrent_load_on_loopback(live_server):
    """200 requests from 8 threads; prints throughput and p95 latency (never asserts speed)."""
    base, app = live_server
    status, res = post(base + "/api/upload", _fake_run.png_bytes(_fake_run.COLOURS[1]))
    qid = res["query"]["query_id"]
    urls = [
        f"{base}/api/neighbours?query={qid}&k=10" + ("&dataset=beta" if i % 3 == 0 else "")
        for i in range(200)
    ]

    def timed(url):
        t0 = time.perf_counter()
        status, _, _ = get(url)
        return status, time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(timed, urls))
    wall = time.perf_counter() - t0
    statuses = [s for s, _ in results]
    lat = np.array([t for _, t in results])
    print(f"\nLOAD atlas: 200 requests, 8 threads: {200 / wall:.0f} req/s, "
          f"p50 {1000 * np.median(lat):.1f} ms, p95 {1000 * np.quantile(lat, 0.95):.1f} ms")
    assert statuses.count(200) == 200
