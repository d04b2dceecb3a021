"""Reference data for tests and benchmarks — clips, images, models, conformance vectors — never for the product.

One folder with the layout of ../shared, found as: `$LIVE3DPE_SHARED` → `../shared` beside the repository →
the test-data cache (`<user cache>/testdata`, see pipeline.assets.cache_dir), whose missing files are
downloaded from the public sources in MANIFEST.tsv (a copy of ../shared's), sha256-checked, with progress,
never left half-written. `$LIVE3DPE_TESTDATA_MIRROR=URL` replaces every source by URL/PATH.
"""
from __future__ import annotations

import os
import sys
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from pipeline.assets import cache_dir, download_verified

MANIFEST = Path(__file__).with_name("MANIFEST.tsv")
BESIDE_REPO = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE = "conformance/3dpe_v1"
NO_CONFORMANCE = ("conformance bundle not found at {folder}: it has no public download (it is made by running the "
                  "official 3DPE code); copy the project's shared/conformance/3dpe_v1 there, or set LIVE3DPE_SHARED "
                  "to a full shared folder, or LIVE3DPE_TESTDATA_MIRROR to a mirror that has it")


class TestDataError(RuntimeError):
    """Reference data that cannot be found or fetched (the message says what to do)."""


@dataclass(frozen=True)
class Entry:
    """One MANIFEST.tsv row: a file's path in the folder, its size, sha256 and public source (None: none)."""

    path: str
    size: int
    sha256: str
    source: str | None

    def url(self, mirror: str | None) -> str | None:
        return f"{mirror.rstrip('/')}/{self.path}" if mirror else self.source


def entries(manifest: Path = MANIFEST) -> list[Entry]:
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line.strip()]
    return [Entry(path, int(size), sha256, None if source.strip() in ("", "-") else source.strip())
            for path, size, sha256, source in rows]


def cache_folder() -> Path:
    return cache_dir() / "testdata"


def folder() -> Path:
    """The reference folder: $LIVE3DPE_SHARED, else ../shared beside the repository, else the cache."""
    if os.environ.get("LIVE3DPE_SHARED"):
        given = Path(os.environ["LIVE3DPE_SHARED"])
        if not given.is_dir():
            raise TestDataError(f"LIVE3DPE_SHARED={given} is not a folder")
        return given
    return BESIDE_REPO if BESIDE_REPO.is_dir() else cache_folder()


def fetch(paths: list[str] | None = None, into: Path | None = None, mirror: str | None = None) -> Path:
    """The reference folder with the files under `paths` (path prefixes; None: every file) in it.

    A shared folder ($LIVE3DPE_SHARED, ../shared) is used as it is; the cache (or `into`) gets its missing
    or wrong-sized files downloaded. Files without a public source come only from a mirror, and only when
    it has them; any other failure is a TestDataError that says what to do.
    """
    if into is None:
        into = folder()
        if into != cache_folder():
            return into
    mirror = os.environ.get("LIVE3DPE_TESTDATA_MIRROR") if mirror is None else mirror
    wanted = [e for e in entries() if paths is None or any(e.path == p or e.path.startswith(p.rstrip("/") + "/") for p in paths)]
    missing = [e for e in wanted if e.url(mirror) and not _present(into / e.path, e.size)]
    fetched = 0
    for n, entry in enumerate(missing, 1):
        try:
            download_verified(entry.url(mirror), into / entry.path, entry.sha256, f"test data {n}/{len(missing)} {entry.path}")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            if entry.source is None:                  # e.g. a mirror without the conformance bundle
                continue
            raise TestDataError(f"cannot fetch {entry.path} from {entry.url(mirror)} ({exc}). Offline: put the "
                                f"shared reference folder at {BESIDE_REPO} or set LIVE3DPE_SHARED, or serve a copy "
                                "and set LIVE3DPE_TESTDATA_MIRROR=URL") from None
        fetched += 1
    if fetched:
        print(f"test data: {fetched} file(s) fetched into {into}", file=sys.stderr)
    return into


def _present(file: Path, size: int) -> bool:
    return file.is_file() and file.stat().st_size == size


def path(relative: str) -> Path:
    """One reference file (e.g. "clips/d10.mp4"), fetched into the cache first when needed."""
    return fetch([relative]) / relative
