"""Whole photos (`blendgan stylize`, `BlendGAN.stylize_photo`, blendgan.photo): every face found, stylized and
pasted back where it was, the rest of the photo untouched.

Geometry is checked without dlib (landmarks moved by a known similarity transform); the round trip, the
several-faces photo and the command use dlib's real detector and landmark model on the bundled photos."""

import functools

import cv2
import numpy as np
import pytest
from PIL import Image

from blendgan import photo
from blendgan.align import align_landmarks, align_landmarks_placed, ffhq_quad
from blendgan.cli import main
from blendgan.io import images

from helpers import ROOT

PHOTOS = ROOT / "test_imgs" / "photos"
STYLES = ROOT / "test_imgs" / "style_imgs"
STYLE = STYLES / "cartoon_astronaut.jpg"
SIZE = 64

try:
    import dlib  # noqa: F401

    from blendgan.align import find_predictor

    find_predictor()
except Exception as err:  # noqa: BLE001 - the optional extra is missing: those tests skip
    _MISSING = str(err)
else:
    _MISSING = None
needs_dlib = pytest.mark.skipif(_MISSING is not None, reason=f"alignment extra missing: {_MISSING}")


@functools.cache
def face_aligner():
    """Built on first use, in a test (conftest's session copy of dlib's models then serves it and the commands)."""
    from blendgan.align import FaceAligner

    return FaceAligner()


def read(name):
    return cv2.imread(str(PHOTOS / f"{name}.jpg"), cv2.IMREAD_COLOR)


def psnr(a, b):
    d = a.astype(np.float64) - b.astype(np.float64)
    return 10 * np.log10(255.0**2 / np.mean(d**2))


def similarity(angle_deg, scale, tx, ty):
    """2x3 matrix of p -> scale * R(angle) p + t in continuous coordinates, and its pixel-index form."""
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.array([tx, ty])
    index_form = np.concatenate([r, (t + r @ [0.5, 0.5] - 0.5)[:, None]], axis=1)
    return r, t, index_form


def synthetic_face_landmarks(side=256):
    """68 landmarks of a face in a side x side FFHQ crop (a plausible upright face)."""
    lm = np.zeros((68, 2))
    c = side / 2
    jaw_angle = np.linspace(np.pi * 0.95, np.pi * 0.05, 17)
    lm[0:17] = np.stack([c - 0.36 * side * np.cos(jaw_angle), 0.45 * side + 0.30 * side * np.sin(jaw_angle)], 1)
    lm[17:27] = np.stack([np.linspace(0.3, 0.7, 10) * side, np.full(10, 0.40 * side)], 1)
    lm[27:36] = [c, 0.55 * side]
    lm[36:42] = np.stack([0.38 * side + np.linspace(-0.04, 0.04, 6) * side, np.full(6, 0.47 * side)], 1)
    lm[42:48] = np.stack([0.62 * side + np.linspace(-0.04, 0.04, 6) * side, np.full(6, 0.47 * side)], 1)
    lm[48:68] = [c, 0.68 * side]
    lm[48], lm[54] = [0.42 * side, 0.68 * side], [0.58 * side, 0.68 * side]
    return lm


# --------------------------------------------------------------------------- geometry (no dlib)


@pytest.mark.parametrize(
    "angle, scale, tx, ty, canvas, output",
    [
        (17.0, 1.7, 180.3, 95.6, (900, 700), 256),  # plain crop
        (-8.0, 5.3, 300.0, 250.0, (2200, 1900), 256),  # large face: the alignment shrinks the photo first
        (25.0, 1.2, -60.0, 40.0, (500, 420), 256),  # face cut by the canvas edge: reflect padding
    ],
)
def test_placement_recovers_a_known_similarity_transform(angle, scale, tx, ty, canvas, output):
    face = cv2.resize(cv2.imread(str(ROOT / "test_imgs" / "face_imgs" / "grace_hopper.jpg")), (256, 256))
    r, t, index_form = similarity(angle, scale, tx, ty)
    photo_img = cv2.warpAffine(face, index_form, canvas, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    lm = synthetic_face_landmarks()
    moved = (lm + 0.5) @ r.T + t - 0.5  # the same landmarks in the canvas' pixel indices
    quad, _ = ffhq_quad(lm)
    known = (quad + 0.5) @ r.T + t  # where the crop's corners must land (continuous convention)

    crop, placement = align_landmarks_placed(photo_img, moved, output)
    assert np.abs(placement.corners - known).max() < 1.0, placement.corners - known
    # the placement's pixel mapping agrees with the crop's pixels: sample the photo where it says
    back = cv2.warpAffine(
        photo_img, placement.crop_to_photo(output), (output, output), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )
    x0, y0, x1, y1 = (int(np.ceil(v)) for v in placement.content)
    inside = np.zeros(photo_img.shape[:2], np.uint8)
    inside[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] = 1  # photo content, away from the padding's blurred band
    valid = cv2.warpAffine(
        inside, placement.crop_to_photo(output), (output, output), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    ).astype(bool)
    edge = output // 8
    valid[:edge], valid[-edge:], valid[:, :edge], valid[:, -edge:] = False, False, False, False
    assert valid.mean() > 0.08
    assert psnr(back[valid], crop[valid]) > 30
    # and the crop itself is the one align_landmarks makes
    assert np.array_equal(crop, align_landmarks(photo_img, moved, output))


def test_content_rectangle_excludes_the_padded_border():
    """A face at the canvas edge is reflect-padded; the mask never takes pixels there or in the blurred band."""
    face = cv2.resize(cv2.imread(str(ROOT / "test_imgs" / "face_imgs" / "grace_hopper.jpg")), (256, 256))
    r, t, index_form = similarity(0.0, 1.5, -120.0, 10.0)
    canvas = cv2.warpAffine(face, index_form, (600, 500), borderMode=cv2.BORDER_REFLECT)
    lm = (synthetic_face_landmarks() + 0.5) @ r.T + t - 0.5
    _, placement = align_landmarks_placed(canvas, lm, 256)
    assert placement.corners[:, 0].min() < 0  # the crop reaches beyond the left edge
    assert placement.content[0] > 0  # the blurred band next to it is not content
    mask = photo.head_mask(photo.landmarks_in_crop(lm, placement, photo.MASK_SIZE))
    out = canvas.copy()
    photo.paste_face(out, np.full((256, 256, 3), 255, np.uint8), mask, placement)
    changed = np.any(out != canvas, axis=2)
    first = int(np.floor(placement.content[0]))
    assert changed.any() and not changed[:, :first].any()


def test_head_mask_shape():
    lm = synthetic_face_landmarks(photo.MASK_SIZE)
    mask = photo.head_mask(lm)
    assert mask.dtype == np.float32 and mask.shape == (photo.MASK_SIZE,) * 2
    assert mask.min() >= 0 and mask.max() <= 1
    nose, chin = lm[30].round().astype(int), lm[8].round().astype(int)
    assert mask[nose[1], nose[0]] == 1 and mask[chin[1] - 2, chin[0]] == 1
    assert mask[0].max() == 0 and mask[:, 0].max() == 0 and mask[-1].max() == 0  # 0 at the square's edge
    # the fade is smooth: over about a tenth of the side, no hard step
    assert np.abs(np.diff(mask, axis=1)).max() < 0.15  # a hard edge would step by 1


def test_select_faces():
    from blendgan.align import Face

    faces = [Face((0, 0, s, s), 1.0, np.zeros((68, 2))) for s in (50, 200, 120)]
    assert photo.select_faces(faces, "all") == faces
    assert photo.select_faces(faces, "largest") == [faces[1]]
    assert photo.select_faces(faces, 2) == [faces[1], faces[2]]  # detector order kept


# --------------------------------------------------------------------------- round trip (dlib)


def identity_records(picture):
    records = photo.find_faces(face_aligner(), picture)
    for item in records:
        if item.aligned is not None:
            item.stylized = item.aligned  # the identity "stylizer": the aligned crop itself
            item.mask = photo.head_mask(photo.landmarks_in_crop(item.face.landmarks, item.placement, photo.MASK_SIZE))
    return records


def union_mask(picture, records):
    full = np.zeros(picture.shape[:2], np.float32)
    for item in records:
        if item.mask is not None:
            (x0, y0, x1, y1), w = photo.photo_mask(item.mask, item.placement)
            full[y0:y1, x0:x1] = np.maximum(full[y0:y1, x0:x1], w)
    return full


@needs_dlib
@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_identity_stylizer_round_trip(name):
    """Pasting back the aligned crop itself gives the photo: outside the masks byte for byte, inside within
    the loss of two resamplings (measured 45.8 dB grace_hopper, 41.4 dB astronaut)."""
    picture = read(name)
    records = identity_records(picture)
    assert sum(r.stylized is not None for r in records) == 1  # one real face; the suit patch scores too low
    out = photo.composite(picture, records)
    weight = union_mask(picture, records)
    assert np.array_equal(out[weight == 0], picture[weight == 0])
    assert (weight > 0).mean() > 0.05
    assert psnr(out[weight > 0], picture[weight > 0]) >= 38


def two_face_canvas():
    a, b = read("astronaut"), read("grace_hopper")
    canvas = np.full((640, a.shape[1] + b.shape[1] + 40, 3), 127, np.uint8)
    canvas[20 : 20 + a.shape[0], : a.shape[1]] = a
    canvas[20 : 20 + b.shape[0], a.shape[1] + 40 :] = b
    return canvas, a.shape[1]


@needs_dlib
def test_several_faces_each_inside_its_own_mask(recipe_models):
    from blendgan.pipeline import BlendGAN

    canvas, split = two_face_canvas()
    g, psp = recipe_models(SIZE, tiny=True)
    import copy

    bg = BlendGAN(copy.deepcopy(g), copy.deepcopy(psp), device="cpu")
    result, records = bg.stylize_photo(images.bgr_to_rgb_array(canvas), STYLE)
    out = result[:, :, ::-1]
    done = [r for r in records if r.stylized is not None]
    assert len(done) == 2 and {r.face.box[0] < split for r in done} == {True, False}
    assert out.shape == canvas.shape
    changed = np.any(out != canvas, axis=2)
    for r in done:  # each face changed pixels inside its own mask only, on its own side
        own = np.zeros(canvas.shape[:2], np.float32)
        (x0, y0, x1, y1), w = photo.photo_mask(r.mask, r.placement)
        own[y0:y1, x0:x1] = w
        side = slice(0, split) if r.face.box[0] < split else slice(split, None)
        assert changed[:, side][own[:, side] > 0.5].mean() > 0.5
    assert not changed[union_mask(canvas, records) == 0].any()
    assert not changed[600:, :].any() and not changed[:, split : split + 40].any()  # far from both faces


# --------------------------------------------------------------------------- the command (dlib + recipe weights)


def run(args, tiny_weights, tmp_path):
    return main(
        [
            "stylize",
            *map(str, args),
            "--ckpt",
            str(tiny_weights["blendgan"]),
            "--psp_encoder_ckpt",
            str(tiny_weights["psp_encoder"]),
            "--outdir",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )


@needs_dlib
def test_command_writes_whole_photos_in_their_own_format(tiny_weights, tmp_path, recipe_models):
    src = tmp_path / "in"
    src.mkdir()
    picture = read("grace_hopper")
    cv2.imwrite(str(src / "hopper.png"), picture)
    (src / "astro.jpg").write_bytes((PHOTOS / "astronaut.jpg").read_bytes())
    assert run([src, "--style_img", STYLE, "--save_crops", "--panel"], tiny_weights, tmp_path) == 0
    out = tmp_path / "out"
    png = out / "hopper_v_cartoon_astronaut.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = cv2.imread(str(png))
    assert result.shape == picture.shape
    jpg = out / "astro_v_cartoon_astronaut.jpg"
    assert jpg.read_bytes()[:3] == b"\xff\xd8\xff" and cv2.imread(str(jpg)).shape == (512, 512, 3)
    assert (out / "hopper_v_cartoon_astronaut_face0_aligned.png").exists()
    assert cv2.imread(str(out / "hopper_v_cartoon_astronaut_face0_stylized.png")).shape == (SIZE, SIZE, 3)
    assert cv2.imread(str(out / "hopper_v_cartoon_astronaut_panel.jpg")).shape == (600, 1024, 3)

    # the command's photo is the Python API's photo (PNG: lossless)
    import copy

    from blendgan.pipeline import BlendGAN

    g, psp = recipe_models(SIZE, tiny=True)
    bg = BlendGAN(copy.deepcopy(g), copy.deepcopy(psp), device="cpu")
    api, _ = bg.stylize_photo(src / "hopper.png", STYLE)
    assert np.array_equal(api[:, :, ::-1], result)
    # --skip_existing keeps it
    before = png.stat().st_mtime_ns
    assert run([src / "hopper.png", "--style_img", STYLE, "--skip_existing"], tiny_weights, tmp_path) == 0
    assert png.stat().st_mtime_ns == before


@needs_dlib
def test_odd_photos_exif_16bit_cmyk(tiny_weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rgb = Image.open(PHOTOS / "grace_hopper.jpg").convert("RGB")
    rotated = rgb.transpose(Image.Transpose.ROTATE_90)  # stored sideways, EXIF says rotate back
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated.save(src / "exif.jpg", exif=exif, quality=95)
    grey16 = np.asarray(rgb.convert("L")).astype(np.uint16) * 257
    cv2.imwrite(str(src / "deep.png"), grey16)
    rgb.convert("CMYK").save(src / "cmyk.jpg", quality=95)
    assert run([src, "--style_img", STYLE], tiny_weights, tmp_path) == 0
    out = tmp_path / "out"
    for name, ext in (("exif", ".jpg"), ("deep", ".png"), ("cmyk", ".jpg")):
        result = cv2.imread(str(out / f"{name}_v_cartoon_astronaut{ext}"))
        assert result.shape == (600, 512, 3), name  # upright, at the photo's own size


@needs_dlib
def test_bad_inputs_are_reported_and_the_others_finish(tiny_weights, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "good.jpg").write_bytes((PHOTOS / "grace_hopper.jpg").read_bytes())
    (src / "text.jpg").write_text("not an image")
    (src / "cut.jpg").write_bytes((PHOTOS / "astronaut.jpg").read_bytes()[:5000])
    cv2.imwrite(str(src / "blank.png"), np.full((300, 400, 3), 90, np.uint8))
    cv2.imwrite(str(src / "tiny.png"), cv2.resize(read("grace_hopper"), (140, 164), interpolation=cv2.INTER_AREA))
    (src / "notes.txt").write_text("ignored")
    assert run([src, "--style_img", STYLE], tiny_weights, tmp_path) == 1
    err = capsys.readouterr().err
    out = tmp_path / "out"
    assert (out / "good_v_cartoon_astronaut.jpg").exists()
    assert sorted(p.name for p in out.iterdir()) == ["good_v_cartoon_astronaut.jpg"]
    assert "text.jpg: not a readable image" in err
    assert "cut.jpg: truncated JPEG" in err
    assert "blank.png: no face found" in err and "--keep_faceless" in err
    assert "tiny.png: skipped a face" in err and "--min_face" in err
    assert "Traceback" not in err
    # --keep_faceless writes the faceless photo unchanged
    assert run([src / "blank.png", "--style_img", STYLE, "--keep_faceless"], tiny_weights, tmp_path) == 0
    assert np.array_equal(cv2.imread(str(out / "blank_v_cartoon_astronaut.png")), np.full((300, 400, 3), 90, np.uint8))
    # a missing style is one line, exit 2
    assert run([src / "good.jpg", "--style_img", tmp_path / "missing.jpg"], tiny_weights, tmp_path) == 2
    assert "missing.jpg" in capsys.readouterr().err


def test_resolution_for_a_face_is_the_block_that_covers_it():
    assert photo.resolution_for(40, 1024) == 64  # at least the floor
    assert photo.resolution_for(64, 1024) == 64
    assert photo.resolution_for(65, 1024) == 128
    assert photo.resolution_for(300, 1024) == 512
    assert photo.resolution_for(3000, 1024) == 1024  # never above the generator
    assert photo.resolution_for(100, 64) == 64


@needs_dlib
def test_max_resolution_auto_is_the_full_generator_for_faces_it_covers_and_a_lower_block_draws_less(
    tiny_weights, tmp_path
):
    """The 64 px test generator is smaller than the photo's face, so `auto` keeps it whole: the same bytes as
    without the flag. A lower block (32 px) gives another stylized face, drawn with fewer layers."""
    src = tmp_path / "hopper.png"
    picture = read("grace_hopper")
    cv2.imwrite(str(src), picture)
    outputs = {}
    for flag in ([], ["--max_resolution", "auto"], ["--max_resolution", "32"]):
        where = tmp_path / ("run" + "_".join(flag))
        assert run([src, "--style_img", STYLE, *flag], tiny_weights, where) == 0
        outputs[" ".join(flag)] = (where / "out" / "hopper_v_cartoon_astronaut.png").read_bytes()
    assert outputs["--max_resolution auto"] == outputs[""]
    lower = cv2.imdecode(np.frombuffer(outputs["--max_resolution 32"], np.uint8), cv2.IMREAD_COLOR)
    full = cv2.imdecode(np.frombuffer(outputs[""], np.uint8), cv2.IMREAD_COLOR)
    assert not np.array_equal(lower, full) and np.any(lower != picture)


@pytest.mark.parametrize(
    "scale, tx, ty, canvas, output",
    [
        (1.0, 40.0, 30.0, (640, 480), 256),  # inside the photo: cropped, no padding
        (1.5, -120.0, 10.0, (600, 500), 256),  # beyond the left edge: padded
        (6.0, -300.0, -300.0, (1800, 1600), 64),  # a large face for a small crop: shrunk first
        (1.5, 0.0, 0.0, (256, 256), 1024),  # a face larger than the photo: no crop step, padded
    ],
)
def test_crop_placement_without_pixels_is_the_aligners_placement(scale, tx, ty, canvas, output):
    """`crop_placement` (geometry only, for faces whose crop is not encoded) gives exactly the placement that
    aligning the pixels gives, through every step: shrink, crop, pad."""
    from blendgan.align import crop_placement

    r, t, _ = similarity(7.0, scale, tx, ty)
    lm = (synthetic_face_landmarks() + 0.5) @ r.T + t - 0.5
    image = np.zeros((canvas[1], canvas[0], 3), np.uint8)
    _, placement = align_landmarks_placed(image, lm, output)
    geometry = crop_placement(canvas, lm, output)
    assert np.array_equal(geometry.corners, placement.corners)
    assert geometry.content == placement.content and geometry.photo_size == placement.photo_size
