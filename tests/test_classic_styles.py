"""Classic engine, styles: presets on the head only, 3D shading that follows the view, text and image prompts."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from stages.edit.classic import PRESETS, ClassicEngine
from stages.edit.classic.shading import normals_from_depth
from test_classic_support import away_from_person, detect, observation, read_image
from threedpe.camera import apply_offsets

VIDEO_CALL_PRESETS = ("bronze statue", "golden statue", "marble", "pencil sketch", "cartoon", "oil painting")


@pytest.fixture(scope="module")
def engine():
    return ClassicEngine()


@pytest.fixture(scope="module")
def portrait(images):
    rgb = read_image(images / "s1.jpg")
    return rgb, observation(rgb)


def face_hull_mask(face, shape) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(face.landmarks[:, :2].astype(np.int32)), 1)
    return mask.astype(bool)


def outside_box(face, shape, scale: float) -> np.ndarray:
    x0, y0, x1, y1 = face.box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, scale * (x1 - x0) / 2, scale * (y1 - y0) / 2
    keep = np.ones(shape[:2], bool)
    keep[int(max(0, cy - hh)):int(cy + hh), int(max(0, cx - hw)):int(cx + hw)] = False
    return keep


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_the_video_call_presets_exist():
    assert set(VIDEO_CALL_PRESETS) <= set(PRESETS)


@pytest.fixture(scope="module")
def far(portrait):
    return away_from_person(*portrait)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_repaints_the_head_and_nothing_away_from_the_person(engine, portrait, far, name):
    rgb, face = portrait
    out = engine.render(engine.encode(face, rgb, engine.prepare(name)), face.camera)
    hull = face_hull_mask(face, rgb.shape)
    sculpted = PRESETS[name].look in ("metal", "stone")          # a new material; painterly looks keep colours
    assert np.abs(out.image.astype(int) - rgb)[hull].mean() > (30 if sculpted else 8)
    assert np.array_equal(out.image[far], rgb[far])
    assert out.mask[hull].mean() > 0.95 and out.mask[far].max() < 1e-3
    edge = out.mask[(out.mask > 0.05) & (out.mask < 0.95)]
    assert edge.size > 0.01 * hull.sum()                          # a soft edge, not a hard cut-out


def test_statue_light_stays_in_the_world_when_the_view_turns(engine, portrait):
    """The statue is lit in the head's world (painted in the source view): a point of the forehead keeps its shade
    whichever side the virtual camera looks from, while the face's lit side keeps its light."""
    rgb, face = portrait
    plain = engine.encode(face, rgb, engine.prepare(None))
    statue = engine.encode(face, rgb, engine.prepare("marble"))
    r = int(0.06 * (face.box[2] - face.box[0]))
    forehead = {}
    for yaw in (-20.0, 20.0):
        camera = apply_offsets(face.camera, yaw=yaw)
        x, y = detect(engine.render(plain, camera).image)[0][151, :2].astype(int)   # where the forehead went
        lum = cv2.cvtColor(engine.render(statue, camera).image, cv2.COLOR_RGB2GRAY).astype(float)
        forehead[yaw] = lum[y - r:y + r, x - r:x + r].mean()
    assert abs(forehead[20.0] - forehead[-20.0]) < 12


def test_normals_of_a_tilted_plane():
    xs = np.arange(20, dtype=np.float32)
    depth = np.tile(0.5 * xs, (10, 1))                           # farther to the right
    n = normals_from_depth(depth, (1.0, 1.0))[5, 10]
    assert n == pytest.approx(np.array([0.5, 0.0, -1.0]) / np.sqrt(1.25), abs=1e-3)


@pytest.mark.parametrize("text, preset", [
    ("bronze statue", "bronze statue"), ("a bronze statue of me", "bronze statue"),
    ("Bronz sculpture", "bronze statue"),
    ("gold", "golden statue"), ("golden statue", "golden statue"), ("greek marble bust", "marble"),
    ("charcoal drawing", "pencil sketch"), ("anime", "cartoon"), ("van gogh", "oil painting"),
    ("oil paintng", "oil painting"), ("clay figure", "terracotta")])
def test_text_maps_to_the_closest_preset(engine, text, preset):
    style = engine.prepare(text)
    assert style.data is PRESETS[preset] and style.key == f"preset:{preset}"


@pytest.mark.parametrize("prompt", [None, "none", " None ", ""])
def test_none_is_a_pure_virtual_camera(engine, prompt):
    assert engine.prepare(prompt).kind == "none"


@pytest.mark.parametrize("text", ["quantum chromodynamics", "zzz", "!!!"])
def test_unknown_text_lists_the_presets(engine, text):
    with pytest.raises(ValueError) as err:
        engine.prepare(text)
    assert "bronze statue" in str(err.value) and "pencil sketch" in str(err.value)


def test_prepare_caches_by_key(engine, images):
    assert engine.prepare("bronze statue") is engine.prepare("Bronze Statue ")
    path = str(images / "s6.jpg")
    assert engine.prepare(path) is engine.prepare(f"image:{path}")
    assert engine.prepare(read_image(images / "s6.jpg", max_side=10_000)).key == engine.prepare(path).key


def test_missing_image_prompt_is_a_clear_error(engine, tmp_path):
    with pytest.raises(ValueError, match="not found"):
        engine.prepare(str(tmp_path / "nope.jpg"))
    with pytest.raises(ValueError, match="RGB uint8"):
        engine.prepare(np.zeros((8, 8), np.float32))


@pytest.mark.parametrize("prompt_name", ["s7.jpg", "eg3d_crops/prompt_3.png", "eg3d_crops/prompt_9.png"])
def test_image_prompt_gives_the_head_the_prompts_skin_and_hair_colours(engine, portrait, images, prompt_name):
    """The face takes the colour of the prompt's skin, the hair the colour of the prompt's hair (a 3D-cartoon boy,
    a pop-art portrait with blue hair on an orange face, a gothic portrait), clearly, not as a faint tint."""
    from quality.regions import frame_regions
    from stages.edit.classic.prompt_parts import PromptPartsFinder
    from stages.person_mask import PersonSegmenter

    rgb, face = portrait
    prompt = read_image(images / prompt_name, max_side=10_000)
    parts = PromptPartsFinder()(prompt)
    assert parts is not None
    out = engine.render(engine.encode(face, rgb, engine.prepare(images / prompt_name)), face.camera)
    lab = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2LAB).astype(float)  # noqa: E731
    hull = face_hull_mask(face, rgb.shape)
    with PersonSegmenter() as segmenter:
        hair = frame_regions(face, segmenter.segment(rgb)).hair          # the hair above the face
    for region, target in ((hull, lab(prompt)[parts.skin].mean(0)), (hair, lab(prompt)[parts.hair].mean(0))):
        before = np.linalg.norm(lab(rgb)[region].mean(0) - target)
        after = np.linalg.norm(lab(out.image)[region].mean(0) - target)
        assert after < 0.5 * before or after < 8.0
    assert np.abs(out.image.astype(int) - rgb)[hull | hair].mean() > 15
    assert out.mask[hull].mean() > 0.95


def test_image_prompt_without_a_face_transfers_its_palette(engine, portrait, images):
    """A prompt with no face (the dog): its subject's palette as a whole."""
    rgb, face = portrait
    out = engine.render(engine.encode(face, rgb, engine.prepare(images / "s25.jpg")), face.camera)
    assert np.abs(out.image.astype(int) - rgb)[face_hull_mask(face, rgb.shape)].mean() > 10


def local_contrast(rgb: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Std of the high-pass luminance (σ 3 px) in a box: how legible the features there are."""
    lum = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    x0, y0, x1, y1 = box
    return float((lum - cv2.GaussianBlur(lum, (0, 0), 3.0))[y0:y1, x0:x1].std())


def eye_box(face) -> tuple[int, int, int, int]:
    """Both eyes and brows (landmarks 70, 300 are the outer brows; 33, 263 the outer eye corners)."""
    pts = face.landmarks[[33, 133, 263, 362, 70, 300, 159, 386, 145, 374], :2]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    pad = 0.15 * (x1 - x0)
    return int(x0 - pad), int(y0 - pad), int(x1 + pad), int(y1 + pad)


@pytest.mark.parametrize("name", ["marble", "terracotta", "bronze statue"])
def test_statue_keeps_the_eyes_and_brows_legible(engine, portrait, name):
    rgb, face = portrait
    out = engine.render(engine.encode(face, rgb, engine.prepare(name)), face.camera).image
    assert local_contrast(out, eye_box(face)) > 0.5 * local_contrast(rgb, eye_box(face))


@pytest.mark.parametrize("name", ["bronze statue", "golden statue", "marble", "terracotta"])
def test_statue_covers_the_hair(engine, portrait, name):
    """The band of hair above the forehead is the statue's material too: painted, and of the face's colour."""
    rgb, face = portrait
    out = engine.render(engine.encode(face, rgb, engine.prepare(name)), face.camera)
    x0, y0, x1, y1 = face.box
    h = y1 - y0
    band = (slice(int(y0 - 0.12 * h), int(y0 - 0.02 * h)), slice(int(x0 + 0.25 * (x1 - x0)), int(x1 - 0.25 * (x1 - x0))))
    assert out.mask[band].mean() > 0.8
    lab = cv2.cvtColor(out.image, cv2.COLOR_RGB2LAB).astype(float)
    hair_colour = lab[band].reshape(-1, 3).mean(0)[1:]
    face_colour = lab[face_hull_mask(face, rgb.shape)].mean(0)[1:]
    assert np.linalg.norm(hair_colour - face_colour) < 10


def test_oil_painting_is_not_flat_patches(engine, portrait):
    """Brush texture, not blotches: the painted face keeps fine local variation almost everywhere."""
    rgb, face = portrait
    out = engine.render(engine.encode(face, rgb, engine.prepare("oil painting")), face.camera).image
    lum = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32)
    texture = np.abs(lum - cv2.blur(lum, (5, 5)))
    assert np.median(texture[face_hull_mask(face, rgb.shape)]) > 1.0


@pytest.mark.parametrize("yaw", [0.0, 20.0])
def test_statue_stays_off_the_backdrop_beside_the_head(engine, clips, yaw):
    """s18: a light wall beside shoulder-length hair. The statue must not paint it (once a ghost head, stretched
    by the view change): beside the face the styled view matches the unstyled one."""
    from test_classic_support import read_frames

    rgb = read_frames(clips / "s18.mp4", [30])[0]
    face = observation(rgb)
    camera = apply_offsets(face.camera, yaw=yaw)
    styled = engine.render(engine.encode(face, rgb, engine.prepare("golden statue")), camera).image
    plain = engine.render(engine.encode(face, rgb, engine.prepare(None)), camera).image
    x0, y0, x1, y1 = face.box
    side = slice(int(y0), int((y0 + y1) / 2)), slice(int(x1 + 0.15 * (x1 - x0)), int(x1 + 0.45 * (x1 - x0)))
    assert np.abs(styled[side].astype(int) - plain[side]).mean() < 4.0
