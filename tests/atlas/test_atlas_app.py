"""The atlas app over HTTP: upload checks, neighbours, filters, file-system and log hygiene."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
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
        check_image(_fake_run.png_with_header_size(60_000, 60_000), max_pixels=1_000_000)
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
    assert post(base + "/api/upload", _fake_run.png_with_header_size(50_000, 50_000))[0] == 413
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
    from skinmap.atlas.app import AtlasApp
    from skinmap.atlas.server import make_server

    cache = tmp_path / "cache"
    before = {p for p in fake_run.rglob("*")}
    app = AtlasApp.from_run_dir(fake_run, cache_dir=cache, embed_fn=_fake_run.colour_embed_fn())
    server = make_server(app, "127.0.0.1", 0, quiet=False).start()  # logging on: check what it logs
    base = server.url
    try:
        assert post(base + "/api/upload", _fake_run.png_bytes(_fake_run.COLOURS[0]))[0] == 200
        assert get(base + "/thumb/3.jpg")[0] == 200
        assert post(base + "/api/upload", b"junk")[0] == 415
        # A client path with a terminal escape and a newline: logged escaped, never raw.
        assert get(base + "/%1b[31mred%0aFORGED-LINE")[0] == 404
        # A client that sends half its body and hangs up, and one whose request line holds a raw
        # control character (refused by the HTTP parser): neither may log the peer's address.
        with socket.create_connection(server.server_address, timeout=5) as sock:
            sock.sendall(b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"\x89PNG" * 10)
        with socket.create_connection(server.server_address, timeout=5) as sock:
            sock.sendall(b"GET /\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 400")
        assert get(base + "/healthz")[0] == 200  # the server is still fine
    finally:
        server.stop()
        app.close()
    assert {p for p in fake_run.rglob("*")} == before  # nothing new in the run directory
    written = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())
    assert written[0].startswith("thumbs/") and written[1].startswith("vectors/") and len(written) == 2
    err = capfd.readouterr().err
    assert "POST /api/upload" in err and "127.0.0.1" not in err
    assert "\x1b" not in err and "\n" + "FORGED-LINE" not in err
    assert "/\\x1b[31mred\\x0aFORGED-LINE 404" in err


def upload_timed(url, data):
    t0 = time.perf_counter()
    req = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, headers, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, e.headers, e.read()
    return status, headers, json.loads(body or b"{}"), time.perf_counter() - t0


class CountingEmbedder:
    """The colour embedder, slowed down and counting its calls; checks its file is intact."""

    def __init__(self, delay=0.0, gate=None):
        self.inner = _fake_run.colour_embed_fn()
        self.delay, self.gate = delay, gate
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, paths):
        with self.lock:
            self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(20), "test gate never opened"
        time.sleep(self.delay)
        return self.inner(paths)  # opens the file: fails if another request deleted it


@pytest.mark.parametrize("n_distinct", [1, 4])
def test_concurrent_uploads_all_succeed_with_one_inference_per_image(fake_run, tmp_path, n_distinct):
    """200 uploads from 16 threads (issue 14: 6 of 8 got 422 from a shared temp file)."""
    from skinmap.atlas.app import AtlasApp
    from skinmap.atlas.server import make_server

    embed = CountingEmbedder(delay=0.05)
    cache = tmp_path / "cache"
    app = AtlasApp.from_run_dir(fake_run, cache_dir=cache, embed_fn=embed, max_pending=8)
    images = [_fake_run.png_bytes(_fake_run.COLOURS[i]) for i in range(n_distinct)]
    payloads = [images[i % n_distinct] for i in range(200)]
    with make_server(app, "127.0.0.1", 0, quiet=True) as server:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda d: upload_timed(server.url + "/api/upload?k=3", d), payloads))
        wall = time.perf_counter() - t0
    app.close()
    statuses = [r[0] for r in results]
    lat = np.array([r[3] for r in results])
    print(f"\nLOAD atlas uploads: 200 uploads of {n_distinct} image(s), 16 threads: {200 / wall:.0f} req/s, "
          f"p50 {1000 * np.median(lat):.1f} ms, p95 {1000 * np.quantile(lat, 0.95):.1f} ms, "
          f"embedder calls {embed.calls}")
    assert statuses.count(200) == 200, sorted(set(statuses))
    want = [hashlib.sha256(d).hexdigest() for d in payloads]
    assert [r[2]["query"]["query_id"] for r in results] == want  # content-addressed ids
    assert embed.calls == n_distinct  # identical uploads shared one inference
    diagnoses = [{c["diagnosis"] for c in r[2]["results"]} for r in results]
    assert diagnoses == [{_fake_run.DIAGNOSES[i % n_distinct]} for i in range(200)]
    files = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())
    assert files == sorted(f"vectors/{hashlib.sha256(d).hexdigest()}.npy" for d in images)  # no leftovers


def test_full_inference_queue_answers_503_with_retry_after(fake_run, tmp_path):
    from skinmap.atlas.app import AtlasApp
    from skinmap.atlas.server import make_server

    gate = threading.Event()
    embed = CountingEmbedder(gate=gate)
    app = AtlasApp.from_run_dir(fake_run, cache_dir=tmp_path / "cache", embed_fn=embed, max_pending=2)
    a, b, c = (_fake_run.png_bytes(_fake_run.COLOURS[i]) for i in range(3))
    with make_server(app, "127.0.0.1", 0, quiet=True) as server, ThreadPoolExecutor(max_workers=4) as pool:
        url = server.url + "/api/upload"
        waiting = [pool.submit(upload_timed, url, a), pool.submit(upload_timed, url, b)]
        deadline = time.monotonic() + 10
        while app.queue.pending < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.queue.pending == 2
        same_as_a = pool.submit(upload_timed, url, a)  # joins a's job: not refused
        status, headers, body, took = upload_timed(url, c)
        print(f"\nLOAD atlas queue full: 503 in {1000 * took:.1f} ms, Retry-After {headers.get('Retry-After')} s")
        assert status == 503 and "queue is full" in body["error"]
        assert int(headers["Retry-After"]) >= 1
        assert not same_as_a.done()
        gate.set()
        assert [f.result(timeout=20)[0] for f in (*waiting, same_as_a)] == [200, 200, 200]
        assert upload_timed(url, c)[0] == 200  # room again
    app.close()
    assert embed.calls == 3  # a, b, c: the second upload of a shared a's inference


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


def test_an_internal_error_is_one_escaped_log_line_not_a_traceback(atlas_app, capfd, monkeypatch):
    from skinmap.atlas.server import make_server

    def broken():
        raise RuntimeError("boom\x1b[2J\nFORGED")

    monkeypatch.setattr(atlas_app, "options", broken)
    with make_server(atlas_app, "127.0.0.1", 0, quiet=False) as server:
        status, headers, _ = get(server.url + "/api/options")
        assert get(server.url + "/healthz")[0] == 200
    assert status == 500 and "default-src 'self'" in headers["Content-Security-Policy"]
    err = capfd.readouterr().err
    assert "Traceback" not in err and "\x1b" not in err and "\nFORGED" not in err
    assert "[atlas] error GET /api/options: RuntimeError: boom\\x1b[2J\\x0aFORGED" in err
