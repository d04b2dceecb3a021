"""Training data: pairs folders and manifests (clear errors), the official EG3D crops taken as they are, other
portraits cropped and posed by the real face stage with the target given the input's crop; the perceptual
distances (MAE features; LPIPS-alex from user weights, here a synthetic file of the torchvision layout)."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from threedpe.encoder import MAEEncoder
from training.data import Aligner, SampleFiles, find_pairs, read_manifest
from training.perceptual import AlexNetLPIPS, MAEPerceptual, build_perceptual


def write(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_pairs_folder_names_and_its_errors(tmp_path):
    img = np.zeros((32, 32, 3), np.uint8)
    for name in ("a_input.png", "a_target.png", "b_input.jpg", "b_target.png", "b_prompt.png"):
        write(tmp_path / name, img)
    (tmp_path / "notes.txt").write_text("ignored")
    pairs = find_pairs(tmp_path)
    assert [(p.name, p.prompt is not None) for p in pairs] == [("a", False), ("b", True)]

    write(tmp_path / "c_input.png", img)
    with pytest.raises(UserError, match="'c' has no target image.*c_target.png"):
        find_pairs(tmp_path)
    (tmp_path / "c_input.png").unlink()
    write(tmp_path / "c_inpt.png", img)
    with pytest.raises(UserError, match="name it NAME_input, NAME_target or NAME_prompt"):
        find_pairs(tmp_path)
    (tmp_path / "c_inpt.png").unlink()
    (tmp_path / "c_input.txt").write_text("x")
    with pytest.raises(UserError, match="is not an image file"):
        find_pairs(tmp_path)
    (tmp_path / "c_input.txt").unlink()
    write(tmp_path / "a_input.jpg", img)
    with pytest.raises(UserError, match="two input images for 'a'"):
        find_pairs(tmp_path)
    with pytest.raises(UserError, match="no such folder"):
        find_pairs(tmp_path / "missing")
    with pytest.raises(UserError, match="has no pairs"):
        find_pairs((tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_manifest_lines_and_their_errors(tmp_path):
    good = {"input": "i.png", "target": "t.png", "camera": [0.0] * 25}
    (tmp_path / "m.jsonl").write_text(json.dumps(good) + "\n\n" + json.dumps({"input": "/abs/i.png", "target": "t.png"}))
    first, second = read_manifest(tmp_path / "m.jsonl")
    assert first.input == tmp_path / "i.png" and len(first.camera) == 25 and second.input.as_posix() == "/abs/i.png"
    for line, message in (("{", "not JSON"), ('{"input": "i.png"}', "needs"),
                          ('{"input": "i", "target": "t", "camera": [1, 2]}', "25-number")):
        (tmp_path / "bad.jsonl").write_text(line)
        with pytest.raises(UserError, match=rf"bad.jsonl:1: .*{message}"):
            read_manifest(tmp_path / "bad.jsonl")


@pytest.fixture(scope="module")
def aligner():
    a = Aligner()
    yield a
    a.close()


def test_an_official_crop_is_used_as_it_is_and_posed(aligner, images):
    crops = images / "eg3d_crops"
    sample = aligner(SampleFiles("1", crops / "input_1.png", crops / "prompt_1.png"))
    assert np.array_equal(sample.input, cv2.cvtColor(cv2.imread(str(crops / "input_1.png")), cv2.COLOR_BGR2RGB))
    assert sample.target.shape == (512, 512, 3) and sample.camera.shape == (25,)
    assert abs(float(np.linalg.norm(sample.camera[[3, 7, 11]])) - 2.7) < 1e-3         # on the EG3D orbit


def test_a_photo_is_cropped_and_its_target_gets_the_same_crop(aligner, images, tmp_path):
    photo = cv2.cvtColor(cv2.imread(str(images / "s1.jpg")), cv2.COLOR_BGR2RGB)
    edited = write(tmp_path / "s1_target.png", 255 - photo)                       # any per-pixel edit
    sample = aligner(SampleFiles("s1", images / "s1.jpg", edited))
    assert sample.input.shape == (512, 512, 3)
    inside = np.s_[64:448, 64:448]                                                  # away from the crop's border
    diff = np.abs(sample.target[inside].astype(int) - (255 - sample.input[inside].astype(int)))
    assert diff.mean() < 3.0


def test_alignment_errors_name_the_file(aligner, images, tmp_path):
    with pytest.raises(UserError, match="no face found in .*s25.jpg"):
        aligner(SampleFiles("dog", images / "s25.jpg", images / "s25.jpg"))
    wide = write(tmp_path / "wide.png", np.zeros((100, 300, 3), np.uint8))
    with pytest.raises(UserError, match="the target must be the same portrait"):
        aligner(SampleFiles("x", images / "eg3d_crops" / "input_1.png", wide))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(UserError, match="cannot read .*broken.png"):
        aligner(SampleFiles("x", broken, broken))
    with pytest.raises(UserError, match="aligned 512² crop"):
        aligner(SampleFiles("x", images / "s1.jpg", images / "s1.jpg", camera=tuple([0.0] * 25)))


def test_mae_perceptual_distance_is_zero_for_equal_images_and_differentiable():
    torch.manual_seed(0)
    distance = MAEPerceptual(MAEEncoder(depth=2), layers=(0, 1))
    a = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    b = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(distance(b, b), torch.zeros(2), atol=1e-6)
    d = distance(a, b)
    assert d.shape == (2,) and (d > 0).all()
    d.sum().backward()
    assert a.grad.abs().sum() > 0
    assert torch.allclose(distance(a, distance.features(b)), d)                    # cached target features


def test_lpips_alex_from_user_weights_and_bad_files(tmp_path):
    torch.manual_seed(0)
    net = AlexNetLPIPS()
    backbone = {f"features.{k}": torch.randn_like(v) * 0.05 for k, v in net.backbone.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)                            # ignored, as in torchvision files
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))},
               tmp_path / "alex.pth")
    lpips = build_perceptual(None, str(tmp_path / "alexnet.pth"), str(tmp_path / "alex.pth"))
    a, b = torch.rand(1, 3, 96, 96) * 2 - 1, torch.rand(1, 3, 96, 96) * 2 - 1
    assert float(lpips(a, a)) == 0.0 and float(lpips(a, b)) > 0
    shutil.copy(tmp_path / "alex.pth", tmp_path / "not_alexnet.pth")
    with pytest.raises(UserError, match="not a torchvision AlexNet"):
        build_perceptual(None, str(tmp_path / "not_alexnet.pth"))
    with pytest.raises(UserError, match="not an LPIPS v0.1 alex.pth"):
        build_perceptual(None, str(tmp_path / "alexnet.pth"), str(tmp_path / "alexnet.pth"))
    with pytest.raises(UserError, match="--lpips-heads needs --perceptual-weights"):
        build_perceptual(None, None, str(tmp_path / "alex.pth"))
