"""Command-line flags of the edit chain → EditSettings / EngineConfig, and engine creation errors."""
from __future__ import annotations

import argparse

import pytest

from pipeline.errors import UserError
from stages.chain import add_edit_arguments, create_engine, engine_config_from_args, settings_from_args


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_edit_arguments(parser)
    return parser.parse_args(list(argv))


def test_settings_from_flags():
    s = settings_from_args(parse("--style", "bronze statue", "--yaw", "20", "--pitch", "-5", "--mode", "crop",
                                 "--on-face-lost", "blur", "--hold", "1", "--grid-yaws=-20,0,20", "--look-at-lens"))
    assert (s.style, s.yaw, s.pitch, s.mode, s.on_face_lost, s.hold_seconds) == ("bronze statue", 20, -5, "crop", "blur", 1)
    assert s.grid_yaws == (-20.0, 0.0, 20.0) and s.look_at_lens


def test_image_path_style_becomes_an_image_prompt(images):
    assert settings_from_args(parse("--style", str(images / "s6.jpg"))).style == f"image:{images / 's6.jpg'}"


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="zoom"):
        settings_from_args(parse("--zoom", "9"))
    with pytest.raises(UserError, match="triplane-ema"):
        engine_config_from_args(parse("--triplane-ema", "1.5"))


def test_engine_choice():
    assert engine_config_from_args(parse()).name == "classic"
    assert engine_config_from_args(parse("--weights", "x.pt")).name == "3dpe"
    cfg = engine_config_from_args(parse("--random-weights", "--device", "cpu"))
    assert cfg.name == "3dpe" and cfg.random_weights and cfg.device == "cpu"


def test_engine_creation_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no weights"):
        create_engine(engine_config_from_args(parse("--engine", "classic", "--weights", "x.pt")))
    monkeypatch.delenv("LIVE3DPE_WEIGHTS", raising=False)
    monkeypatch.setenv("LIVE3DPE_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="3DPE weights not found .*nothing at the default location.*non-commercial"):
        create_engine(engine_config_from_args(parse("--engine", "3dpe")))


def test_3dpe_engine_finds_weights_through_the_environment(tmp_path, monkeypatch):
    """No --weights: $LIVE3DPE_WEIGHTS is used (here a file that is not a checkpoint, so loading says so)."""
    bogus = tmp_path / "3dpe.pt"
    bogus.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("LIVE3DPE_WEIGHTS", str(bogus))
    with pytest.raises(UserError, match="3dpe.pt"):
        create_engine(engine_config_from_args(parse("--engine", "3dpe", "--device", "cpu")))
