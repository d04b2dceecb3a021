"""Model lookup: explicit path → env var → user cache → download with a sha256 check; clear errors offline."""
from __future__ import annotations

import pytest

from pipeline.assets import FACE_LANDMARKER, ModelAsset, sha256_of
from pipeline.errors import UserError


def asset_for(source, env_var="LIVE3DPE_TEST_MODEL", sha256=None, url=True) -> ModelAsset:
    return ModelAsset(filename="model.bin", env_var=env_var, url=source.as_uri() if url else None,
                      sha256=sha256 if sha256 is not None else sha256_of(source), description="test model",
                      flag="--test-model")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVE3DPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LIVE3DPE_TEST_MODEL", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def published(tmp_path):
    source = tmp_path / "published.bin"
    source.write_bytes(b"weights" * 1000)
    return source


def test_explicit_path_then_env_then_cache(cache, published, tmp_path, monkeypatch):
    asset = asset_for(published)
    assert asset.resolve(published) == published
    with pytest.raises(UserError, match="given path.*no such file"):
        asset.resolve(tmp_path / "missing.bin")
    monkeypatch.setenv("LIVE3DPE_TEST_MODEL", str(published))
    assert asset.resolve() == published
    monkeypatch.setenv("LIVE3DPE_TEST_MODEL", str(tmp_path / "nowhere.bin"))
    with pytest.raises(UserError, match=r"\$LIVE3DPE_TEST_MODEL.*no such file"):
        asset.resolve()


def test_download_is_verified_and_cached(cache, published):
    asset = asset_for(published)
    path = asset.resolve()
    assert path == cache / "model.bin" and path.read_bytes() == published.read_bytes()
    published.unlink()                                   # now served from the cache, no download
    assert asset.resolve() == path


def test_a_download_with_the_wrong_sha256_is_refused_and_not_kept(cache, published):
    asset = asset_for(published, sha256="0" * 64)
    with pytest.raises(UserError, match="sha256 mismatch"):
        asset.resolve()
    assert not (cache / "model.bin").exists() and not list(cache.glob("*.part"))


def test_offline_says_where_to_put_the_file(cache, tmp_path):
    gone = tmp_path / "not-served.bin"
    asset = asset_for(gone, sha256="0" * 64)
    with pytest.raises(UserError) as info:
        asset.resolve()
    message = str(info.value)
    assert "download failed" in message and str(cache / "model.bin") in message
    assert not list(cache.glob("*.part"))
    assert "LIVE3DPE_TEST_MODEL" in message and "--test-model PATH" in message
    with pytest.raises(UserError, match="downloading is off"):
        asset.resolve(download=False)


def test_the_face_landmarker_in_shared_is_the_official_file(shared):
    assert sha256_of(shared / "models" / FACE_LANDMARKER.filename) == FACE_LANDMARKER.sha256
