"""Checkpoint loading: round trip, official/Live3D-LT layouts, strictness, corrupted files, pickle refusal, missing file."""
from __future__ import annotations

import argparse
import fractions

import pytest
import torch

from pipeline.errors import UserError
from threedpe import checkpoint as ckpt
from threedpe.encoder import unused_resnet_keys
from threedpe.model import RANDOM_LABEL, ThreeDPE


@pytest.fixture(scope="module")
def model():
    return ThreeDPE.random(seed=3)


@pytest.fixture(scope="module")
def official(model):
    """Official-layout state dicts (shared tensors, no copies): ours + the never-run layer3/4."""
    enc = dict(model.encoder.state_dict())
    enc.update({f"encoder.{k}": torch.full(s, 0.01) for k, s in unused_resnet_keys().items()})
    return enc, dict(model.renderer.state_dict())


def test_save_load_round_trip(model, tmp_path):
    path = tmp_path / "ours.pt"
    model.save(path)
    torch.load(path, weights_only=True)                                  # our format never needs unpickling
    loaded = ThreeDPE.load(path)
    assert loaded.is_random and loaded.label == RANDOM_LABEL
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_official_layout_with_extra_keys_loads_strictly(official, tmp_path):
    enc, ren = official
    path = tmp_path / "3dpe.pt"
    torch.save({"encoder_state_dict": enc, "renderer_state_dict": ren, "step": 60000,
                "opts": argparse.Namespace(lr=1e-4)}, path)                 # Namespace: safe, allowed
    loaded = ThreeDPE.load(path)
    assert not loaded.is_random and loaded.prompt_trained and loaded.label == ""
    assert torch.equal(loaded.encoder.Final_encoder.block.attn.sr.weight, enc["Final_encoder.block.attn.sr.weight"])


@pytest.mark.parametrize("mutate, message", [
    (lambda e: e.__setitem__("F_encoder.net.2.weight", torch.zeros(128, 128, 1, 1)),
     r"'F_encoder.net.2.weight' has shape \[128, 128, 1, 1\], expected \[128, 128, 3, 3\]"),
    (lambda e: e.__setitem__("encoder.layer4.2.conv2.weight", torch.zeros(3)), "'encoder.layer4.2.conv2.weight' has shape"),
    (lambda e: e.pop("Final_encoder.pathembed.norm.bias"), "missing key 'Final_encoder.pathembed.norm.bias'"),
    (lambda e: e.pop("encoder.layer3.0.downsample.0.bias"), "missing key 'encoder.layer3.0.downsample.0.bias'"),
    (lambda e: e.__setitem__("encoder.bn1.weight", torch.ones(64)), "unexpected key 'encoder.bn1.weight'"),
    (lambda e: e.__setitem__("decoder.1.bias", torch.full((256,), float("nan"))), "'decoder.1.bias' contains NaN"),
    (lambda e: e.__setitem__("decoder.1.bias", torch.zeros(256, dtype=torch.int64)), "'decoder.1.bias' is not a floating"),
])
def test_bad_state_dict_names_the_first_bad_key(official, mutate, message):
    enc = dict(official[0])
    mutate(enc)
    with pytest.raises(ckpt.CheckpointError, match=message):
        ThreeDPE.from_state_dicts(enc, official[1])


def test_bad_renderer_key_is_named(official):
    ren = dict(official[1])
    ren["decoder.net.0.weight"] = torch.zeros(64, 33)
    with pytest.raises(ckpt.CheckpointError, match=r"renderer_state_dict: 'decoder.net.0.weight' has shape"):
        ThreeDPE.from_state_dicts(official[0], ren)


def test_live3d_lt_checkpoint_is_refused_unless_allowed(official, tmp_path):
    enc = {k: v for k, v in official[0].items() if not k.startswith("Ref_encoder.")}
    path = tmp_path / "encoder_render_LT_90000.pt"
    torch.save({"encoder_state_dict": enc, "renderer_state_dict": official[1], "step": 90000}, path)
    with pytest.raises(UserError, match="Live3D-LT.*--allow-untrained-prompt"):
        ThreeDPE.load(path)
    model = ThreeDPE.load(path, allow_untrained_prompt=True)
    assert not model.prompt_trained and "NOT AN EDIT" in model.label


def test_file_needing_pickle_is_refused_without_trust(official, tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"encoder_state_dict": {}, "renderer_state_dict": {}, "opts": fractions.Fraction(1, 3)}, path)
    with pytest.raises(ckpt.CheckpointError, match="--trust-pickle"):
        ckpt.read_checkpoint(path)
    assert ckpt.read_checkpoint(path, trust_pickle=True)["opts"] == fractions.Fraction(1, 3)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all" * 10, "truncated"])
def test_corrupted_file_gives_a_clear_error(content, tmp_path):
    path = tmp_path / "broken.pt"
    if content == "truncated":
        torch.save({"encoder_state_dict": {"a": torch.zeros(1000)}, "renderer_state_dict": {}}, path)
        content = path.read_bytes()[:600]
    path.write_bytes(content)
    with pytest.raises(ckpt.CheckpointError, match="corrupted or not a PyTorch checkpoint"):
        ckpt.read_checkpoint(path)


def test_not_a_3dpe_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ckpt.CheckpointError, match="no 'encoder_state_dict'"):
        ckpt.split_checkpoint(ckpt.read_checkpoint(path), path)


def test_missing_weights_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVE3DPE_CACHE", str(tmp_path))
    with pytest.raises(UserError) as err:
        ckpt.resolve_weights(env={})
    text = str(err.value)
    for needle in (ckpt.OFFICIAL_URL, "pretrained_models/3dpe.pt", "--weights", "LIVE3DPE_WEIGHTS",
                   str(tmp_path / "weights" / "3dpe.pt"), "non-commercial", "CC-BY-NC"):
        assert needle in text
    with pytest.raises(UserError, match="no such file: nowhere.pt"):
        ckpt.resolve_weights("nowhere.pt", env={})
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "3dpe.pt").write_bytes(b"x")
    assert ckpt.resolve_weights(env={}) == tmp_path / "weights" / "3dpe.pt"
    assert ckpt.resolve_weights(env={"LIVE3DPE_WEIGHTS": str(tmp_path / "weights" / "3dpe.pt")}).is_file()


def test_load_without_a_path_uses_the_default_location(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVE3DPE_CACHE", str(tmp_path))
    monkeypatch.delenv("LIVE3DPE_WEIGHTS", raising=False)
    with pytest.raises(UserError, match="drive.google.com"):
        ThreeDPE.load()
