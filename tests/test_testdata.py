"""The test-data fetcher: shared folder → cache → download (sha256-checked, nothing half-written), against
a real HTTP server on 127.0.0.1 serving copies of reference files (one corrupted)."""
from __future__ import annotations

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import testdata
from pipeline.assets import sha256_of

GOOD = ["images/s12.jpg", "models/face_detection_yunet_2023mar_int8bq.onnx"]
CORRUPTED = "images/s42.jpg"


@pytest.fixture
def mirror(shared, tmp_path):
    """A local mirror: GOOD copied as they are, CORRUPTED with one byte changed, no conformance bundle."""
    served = tmp_path / "served"
    for name in GOOD + [CORRUPTED]:
        (served / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / name, served / name)
    data = bytearray((served / CORRUPTED).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (served / CORRUPTED).write_bytes(bytes(data))
    requests = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    server.shutdown()
    server.server_close()


def test_files_come_from_the_mirror_verified_and_only_once(mirror, shared, tmp_path):
    url, requests = mirror
    cache = tmp_path / "cache"
    assert testdata.fetch(GOOD, into=cache, mirror=url) == cache
    for name in GOOD:
        assert sha256_of(cache / name) == sha256_of(shared / name)
    assert sorted(requests) == sorted(f"/{name}" for name in GOOD)
    testdata.fetch(GOOD, into=cache, mirror=url)                   # present: nothing downloaded again
    assert len(requests) == len(GOOD)
    (cache / GOOD[0]).write_bytes(b"truncated")                     # a wrong size counts as missing
    testdata.fetch(GOOD, into=cache, mirror=url)
    assert len(requests) == len(GOOD) + 1 and sha256_of(cache / GOOD[0]) == sha256_of(shared / GOOD[0])


def test_a_corrupted_download_is_refused_and_nothing_is_left(mirror, tmp_path):
    url, _ = mirror
    cache = tmp_path / "cache"
    with pytest.raises(testdata.TestDataError, match="sha256 mismatch.*LIVE3DPE_TESTDATA_MIRROR"):
        testdata.fetch([CORRUPTED], into=cache, mirror=url)
    assert not list(cache.rglob("*.jpg")) and not list(cache.rglob("*.part"))


def test_a_file_the_mirror_lacks_fails_unless_it_has_no_public_source(mirror, tmp_path):
    url, _ = mirror
    cache = tmp_path / "cache"
    with pytest.raises(testdata.TestDataError, match="clips/d10.mp4.*404"):
        testdata.fetch(["clips/d10.mp4"], into=cache, mirror=url)
    testdata.fetch([testdata.CONFORMANCE], into=cache, mirror=url)  # no public source: left out, tests skip
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_the_mirror_comes_from_the_environment_and_replaces_every_source(mirror, tmp_path, monkeypatch):
    url, requests = mirror
    monkeypatch.setenv("LIVE3DPE_TESTDATA_MIRROR", url)
    testdata.fetch(GOOD[:1], into=tmp_path / "cache")
    assert requests == [f"/{GOOD[0]}"] and (tmp_path / "cache" / GOOD[0]).is_file()


def test_lookup_order_shared_env_then_beside_the_repo_then_the_cache(tmp_path, monkeypatch, shared):
    monkeypatch.setenv("LIVE3DPE_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.setenv("LIVE3DPE_SHARED", str(shared))
    assert testdata.folder() == shared and testdata.fetch() == shared        # a shared folder is used as it is
    monkeypatch.setenv("LIVE3DPE_SHARED", str(tmp_path / "nowhere"))
    with pytest.raises(testdata.TestDataError, match="not a folder"):
        testdata.folder()
    monkeypatch.delenv("LIVE3DPE_SHARED")
    beside = tmp_path / "shared"
    beside.mkdir()
    monkeypatch.setattr(testdata, "BESIDE_REPO", beside)
    assert testdata.folder() == beside
    monkeypatch.setattr(testdata, "BESIDE_REPO", tmp_path / "no-shared-here")
    assert testdata.folder() == tmp_path / "user-cache" / "testdata"


def test_the_manifest_is_the_shared_folders_and_lists_every_reference_file(shared):
    if (shared / "MANIFEST.tsv").is_file():
        assert testdata.MANIFEST.read_text() == (shared / "MANIFEST.tsv").read_text()
    listed = testdata.entries()
    assert {e.path.split("/")[0] for e in listed} >= {"clips", "images", "models", "conformance"}
    assert all(e.source and e.source.startswith("https://") for e in listed if not e.path.startswith("conformance/"))
    for entry in listed:
        if (shared / entry.path).is_file():
            assert (shared / entry.path).stat().st_size == entry.size, entry.path
