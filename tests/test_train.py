"""`live3dpe train` on CPU with random weights in a reduced configuration (64² crops, 16² rays with 4+4
samples, no superresolution, perceptual features from the first MAE block): the real trainer code path.

Data-parallel: two gloo ranks under torchrun. With gradients synchronised (the wrapper's forward) both
ranks hold identical parameters after a step; calling the wrapped module's forward, as the official
trainer does, they do not — the trainer's cross-rank digest check tells the two apart. Checkpoints are
in the official key layout (loadable as weights) and a run resumes from one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from cli.main import main as cli_main
from threedpe.model import ThreeDPE

pytestmark = pytest.mark.slow
REDUCED = ["--random-weights", "--batch", "1", "--resolution", "64", "--neural-resolution", "16", "--samples", "4",
           "--no-superresolution", "--perceptual-layers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def triplets(images, tmp_path_factory):
    """Four official crops as inputs, their style prompts as pseudo-labels."""
    folder = tmp_path_factory.mktemp("triplets")
    for i in range(1, 5):
        (folder / f"p{i}_input.png").symlink_to(images / "eg3d_crops" / f"input_{i}.png")
        (folder / f"p{i}_target.png").symlink_to(images / "eg3d_crops" / f"prompt_{i}.png")
    return folder


def torchrun(triplets, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "cli",
           "train", "--data", str(triplets), "--out", str(out), "--steps", "1", *REDUCED, *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()], done.stdout


def test_ranks_synchronise_through_ddp_and_drift_apart_like_the_official_trainer(triplets, tmp_path):
    log, stdout = torchrun(triplets, tmp_path / "synced")
    assert log[-1]["ranks_in_sync"] is True and "training on 2 rank(s)" in stdout
    assert (tmp_path / "synced" / "iteration_1.pt").is_file()

    log, stdout = torchrun(triplets, tmp_path / "official", "--reproduce-unsynced-ddp")
    assert log[-1]["ranks_in_sync"] is False and "NOT synchronised" in stdout
    (tmp_path / "official" / "iteration_1.pt").unlink()                 # 1.6 GB: not kept around

    # the synchronised checkpoint: official layout, loadable as weights, and a run resumes from it
    checkpoint = tmp_path / "synced" / "iteration_1.pt"
    raw = torch.load(checkpoint, weights_only=True)
    assert {"encoder_state_dict", "renderer_state_dict", "step", "encoder_optimizer", "opts"} <= set(raw)
    assert "encoder.layer4.2.conv2.weight" in raw["encoder_state_dict"] and raw["step"] == 1
    base, trained = ThreeDPE.random(0), ThreeDPE.load(checkpoint)
    assert trained.prompt_trained and trained.is_random             # a 3dpe.pt-style file, still labelled random
    before, after = base.encoder.state_dict(), trained.encoder.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("Final_encoder.", "Ref_encoder.")) for k in changed)
    del raw, trained
    assert cli_main(["train", "--data", str(triplets), "--out", str(tmp_path / "synced"), "--steps", "2",
                     "--resume", str(checkpoint), *REDUCED]) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "synced" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2] and (tmp_path / "synced" / "iteration_2.pt").is_file()
    assert (tmp_path / "synced" / "loss.png").stat().st_size > 0
    for path in (tmp_path / "synced").glob("iteration_*.pt"):
        path.unlink()


def test_resume_from_other_base_weights_is_refused(triplets, tmp_path, capsys):
    torch.save({"encoder_state_dict": {}, "renderer_state_dict": {}, "step": 3, "encoder_optimizer": {},
                "opts": {"base_fingerprint": "something else", "base": "elsewhere.pt"}}, tmp_path / "other.pt")
    assert cli_main(["train", "--data", str(triplets), "--out", str(tmp_path / "out"), "--steps", "4",
                     "--resume", str(tmp_path / "other.pt"), *REDUCED]) == 2
    assert "trained from other base weights (elsewhere.pt)" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--resume", "--mae-weights", "--teacher"])
def test_a_missing_file_for_a_training_flag_is_named_by_that_flag(triplets, tmp_path, capsys, flag):
    assert cli_main(["train", "--data", str(triplets), "--out", str(tmp_path / "out"), "--steps", "1",
                     flag, str(tmp_path / "missing.pt"), *REDUCED]) == 2
    err = capsys.readouterr().err
    assert f"{flag}: no such file" in err and "3DPE weights not found" not in err and "Traceback" not in err
