"""Backend selection errors are clear one-liners before any minute-long export; engine flags reach the config."""
from __future__ import annotations

import argparse
import importlib.util

import pytest

from pipeline.errors import UserError
from stages.chain import add_edit_arguments, engine_config_from_args
from threedpe.backends import create_network
from threedpe.backends.onnx_export import read_manifest


def test_a_folder_without_an_export_says_so(tmp_path):
    with pytest.raises(UserError, match="not an ONNX export"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "live3dpe-onnx-v1"}')
    with pytest.raises(UserError, match="prompt_encoder.onnx is missing"):
        read_manifest(tmp_path)


def test_backend_choices_fail_early_and_clearly():
    model = object()                                       # never touched: each check comes before the export
    with pytest.raises(UserError, match="unknown backend"):
        create_network(model, "openvino")
    with pytest.raises(UserError, match="float32 only"):
        create_network(model, "onnxruntime", precision="fp16")
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(UserError, match="pip install tensorrt"):
            create_network(model, "tensorrt")
    assert create_network(model, "torch") is model


def test_engine_flags_reach_the_engine_config():
    parser = argparse.ArgumentParser()
    add_edit_arguments(parser)
    config = engine_config_from_args(parser.parse_args(
        ["--random-weights", "--backend", "onnxruntime", "--accel", "eager", "--max-batch", "4", "--onnx-dir", "x"]))
    assert (config.name, config.backend, config.max_batch, config.onnx_dir) == ("3dpe", "onnxruntime", 4, "x")
    with pytest.raises(UserError, match="--max-batch"):
        engine_config_from_args(parser.parse_args(["--random-weights", "--max-batch", "0"]))


def test_an_export_never_replaces_a_folder_that_is_not_one(tmp_path):
    from threedpe.backends.onnx_export import export_onnx

    (tmp_path / "notes.txt").write_text("mine")
    model = type("Model", (), {"renderer": object()})()
    with pytest.raises(UserError, match="not empty"):
        export_onnx(model, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
