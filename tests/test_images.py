"""blendgan.io.images: listing, reading like cv2.imread, tensor conversions, atomic writes."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from blendgan.errors import InputImageError, UsageError
from blendgan.io import images

RNG = np.random.default_rng(1234)
F32 = np.float32


def rand_rgb(h=40, w=60):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- independent formulas


def ref_cv2ten(img_bgr):
    """cv2ten written out per channel in float64: (u/255 - 0.5)/0.5 == 2u/255 - 1."""
    rgb = img_bgr[:, :, [2, 1, 0]].astype(np.float64)
    return np.stack([(rgb[:, :, c] / 255.0 - 0.5) / 0.5 for c in range(3)]).astype(F32)[None]


def ref_ten2cv(x_chw):
    """ten2cv in NumPy float32, same op order: x*0.5 + 0.5, *255, clip, truncate, HWC, RGB->BGR."""
    y = (x_chw.astype(F32) * F32(0.5) + F32(0.5)) * F32(255)
    y = np.minimum(np.maximum(y, F32(0)), F32(255))
    return np.trunc(y).astype(np.uint8).transpose(1, 2, 0)[:, :, [2, 1, 0]]


def ref_video(x_chw):
    """gen_video's variant in NumPy float32: clip(x*0.5 + 0.5, 0, 1), *255, truncate, HWC RGB."""
    y = np.clip(x_chw.astype(F32) * F32(0.5) + F32(0.5), F32(0), F32(1)) * F32(255)
    return np.trunc(y).astype(np.uint8).transpose(1, 2, 0)


def edge_values():
    """Float32 values at and around every grey-level boundary k/255*2-1, plus out-of-range ones."""
    k = np.arange(256, dtype=np.float64)
    centres = (k / 255.0 * 2 - 1).astype(F32)
    halves = ((k + 0.5) / 255.0 * 2 - 1).astype(F32)
    vals = [
        centres,
        halves,
        np.nextafter(centres, F32(-9)),
        np.nextafter(centres, F32(9)),
        np.nextafter(halves, F32(-9)),
        np.nextafter(halves, F32(9)),
        np.array([-1, 1, -1.0000001, 1.0000001, -3.5, 7.25, -1e30, 1e30, 0, -0.0], F32),
        RNG.uniform(-1.2, 1.2, 5000).astype(F32),
    ]
    v = np.concatenate(vals)
    v = np.resize(v, 3 * 64 * ((v.size + 191) // 192))  # pad to a whole [3, 64, W] tensor
    return v.reshape(3, 64, -1)


# --------------------------------------------------------------------------- tensor conversions


def test_bgr_to_tensor_matches_formula_and_channel_order():
    img = rand_rgb()
    img[0, 0] = [0, 128, 255]
    t = images.bgr_to_tensor(img)
    assert t.dtype == torch.float32 and t.shape == (1, 3, 40, 60) and t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), ref_cv2ten(img))
    # BGR pixel (0, 128, 255) -> R = 1, G = 128/255*2-1, B = -1
    assert t[0, :, 0, 0].tolist() == [1.0, pytest.approx(2 * 128 / 255 - 1, abs=1e-7), -1.0]


def test_bgr_to_tensor_rejects_non_bgr_arrays():
    with pytest.raises(ValueError):
        images.bgr_to_tensor(rand_rgb()[:, :, 0])
    with pytest.raises(ValueError):
        images.bgr_to_tensor(rand_rgb().astype(np.float32))


def test_bgr_to_tensor_accepts_non_contiguous_views():
    big = rand_rgb(80, 120)
    view = big[::2, 1::2]
    np.testing.assert_array_equal(images.bgr_to_tensor(view).numpy(), ref_cv2ten(view.copy()))


def test_tensor_to_bgr_matches_float32_formula_on_edge_values():
    x = edge_values()
    out = images.tensor_to_bgr(torch.from_numpy(x)[None])
    np.testing.assert_array_equal(out, ref_ten2cv(x))
    assert out.dtype == np.uint8 and out.flags.c_contiguous


def test_tensor_to_bgr_truncates_rather_than_rounds():
    # Grey levels 10.9 and 10.5 must give 10 (not 11); out-of-range values clamp to 0 / 255.
    levels = np.array([10.9, 10.5, 254.6, -5.0, 300.0])
    x = (levels / 255.0 * 2 - 1).astype(F32)
    t = torch.from_numpy(np.broadcast_to(x, (3, 1, 5)).copy())
    assert images.tensor_to_bgr(t)[0, :, 0].tolist() == [10, 10, 254, 0, 255]
    assert images.tensor_to_video_frame_rgb(t)[0, :, 0].tolist() == [10, 10, 254, 0, 255]


def test_video_frame_matches_its_own_formula_on_edge_values():
    x = edge_values()
    out = images.tensor_to_video_frame_rgb(torch.from_numpy(x))
    np.testing.assert_array_equal(out, ref_video(x))
    # RGB order here (no channel reversal), unlike tensor_to_bgr
    np.testing.assert_array_equal(out[:, :, ::-1], images.tensor_to_bgr(torch.from_numpy(x)))


def test_round_trip_uint8_tensor_uint8_is_exact_or_one_lower():
    u = np.arange(256, dtype=np.uint8)
    img = np.stack([u, u[::-1], np.roll(u, 77)], axis=1)[None]  # 1 x 256 x 3, every value per channel
    t = images.bgr_to_tensor(img)
    back = images.tensor_to_bgr(t)
    frame = images.tensor_to_video_frame_rgb(t)[:, :, ::-1]
    expected = ref_ten2cv(t[0].numpy())
    np.testing.assert_array_equal(back, expected)
    np.testing.assert_array_equal(frame, expected)
    diff = img.astype(int) - back.astype(int)
    assert set(np.unique(diff)) <= {0, 1}  # ten2cv truncates: a pixel may come back one level lower
    assert diff[img == 0].max() == 0 and diff[img == 255].max() == 0
    assert diff.sum() > 0  # the float32 quirk is reproduced, not "fixed" by rounding


@pytest.mark.parametrize(
    "fn",
    [images.tensor_to_bgr, images.tensor_to_video_frame_rgb, images.tensors_to_bgr, images.tensors_to_video_frames_rgb],
)
def test_conversions_do_not_modify_their_input(fn):
    t = torch.from_numpy(edge_values())[None].requires_grad_(True)
    before = t.detach().clone()
    fn(t)
    assert torch.equal(t.detach(), before)


def test_batched_equals_single():
    batch = torch.from_numpy(RNG.uniform(-1.3, 1.3, (4, 3, 16, 24)).astype(F32))
    singles = [images.tensor_to_bgr(batch[i : i + 1]) for i in range(4)]
    for a, b in zip(images.tensors_to_bgr(batch), singles):
        np.testing.assert_array_equal(a, b)
    for i, f in enumerate(images.tensors_to_video_frames_rgb(batch)):
        np.testing.assert_array_equal(f, images.tensor_to_video_frame_rgb(batch[i]))
    np.testing.assert_array_equal(images.tensor_to_bgr(batch[1]), singles[1])  # [3,H,W] form


def test_non_float32_and_bad_shapes():
    x = torch.from_numpy(RNG.uniform(-1, 1, (1, 3, 8, 8)).astype(F32))
    np.testing.assert_array_equal(images.tensor_to_bgr(x.double()), images.tensor_to_bgr(x))
    with pytest.raises(ValueError):
        images.tensor_to_bgr(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError):
        images.tensor_to_bgr(torch.zeros(1, 4, 8, 8))


# --------------------------------------------------------------------------- small helpers


def test_resize_square_is_default_bilinear():
    img = rand_rgb(37, 53)
    out = images.resize_square(img, 64)
    assert out.shape == (64, 64, 3)
    np.testing.assert_array_equal(out, cv2.resize(img, (64, 64), interpolation=cv2.INTER_LINEAR))


def test_hconcat():
    a, b = rand_rgb(10, 4), rand_rgb(10, 6)
    out = images.hconcat([a, b])
    assert out.shape == (10, 10, 3)
    np.testing.assert_array_equal(out[:, 4:], b)
    with pytest.raises(ValueError):
        images.hconcat([a, rand_rgb(11, 4)])


def test_rgb_helpers():
    bgr = rand_rgb()
    rgb = images.bgr_to_rgb_array(bgr)
    np.testing.assert_array_equal(rgb[..., 0], bgr[..., 2])
    pil = images.to_pil(bgr)
    assert pil.mode == "RGB" and pil.size == (60, 40)
    np.testing.assert_array_equal(np.asarray(pil), rgb)


def test_to_bgr_inputs():
    rgb = rand_rgb()
    bgr = rgb[:, :, ::-1]
    np.testing.assert_array_equal(images.to_bgr(rgb), bgr)
    rgba = np.dstack([rgb, RNG.integers(0, 256, rgb.shape[:2], dtype=np.uint8)])
    np.testing.assert_array_equal(images.to_bgr(rgba), bgr)
    grey = rgb[:, :, 0]
    np.testing.assert_array_equal(images.to_bgr(grey), np.dstack([grey] * 3))
    np.testing.assert_array_equal(images.to_bgr(grey[:, :, None]), np.dstack([grey] * 3))
    np.testing.assert_array_equal(images.to_bgr(Image.fromarray(rgb)), bgr)
    np.testing.assert_array_equal(images.to_bgr(Image.fromarray(rgba)), bgr)
    np.testing.assert_array_equal(images.to_bgr(Image.fromarray(grey)), np.dstack([grey] * 3))
    with pytest.raises(InputImageError, match="uint8"):
        images.to_bgr(rgb.astype(np.float32) / 255)
    with pytest.raises(InputImageError, match="shape"):
        images.to_bgr(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InputImageError):
        images.to_bgr(12)


def test_to_bgr_path(tmp_path):
    rgb = rand_rgb()
    Image.fromarray(rgb).save(tmp_path / "x.png")
    np.testing.assert_array_equal(images.to_bgr(tmp_path / "x.png"), rgb[:, :, ::-1])
    np.testing.assert_array_equal(images.to_bgr(str(tmp_path / "x.png")), rgb[:, :, ::-1])


# --------------------------------------------------------------------------- reading


def same_as_imread(path):
    """read_image_bgr equals cv2.imread(IMREAD_COLOR); returns the image."""
    ours = images.read_image_bgr(path)
    ref = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert ours.dtype == np.uint8 and ours.ndim == 3 and ours.shape[2] == 3
    np.testing.assert_array_equal(ours, ref)
    return ours


def test_read_rgb_png_exact(tmp_path):
    rgb = rand_rgb()
    Image.fromarray(rgb).save(tmp_path / "x.png")
    np.testing.assert_array_equal(same_as_imread(tmp_path / "x.png"), rgb[:, :, ::-1])


def test_read_grey_rgba_palette(tmp_path):
    rgb = rand_rgb()
    Image.fromarray(rgb[:, :, 1]).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(same_as_imread(tmp_path / "grey.png"), np.dstack([rgb[:, :, 1]] * 3))
    alpha = RNG.integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(same_as_imread(tmp_path / "rgba.png"), rgb[:, :, ::-1])  # alpha dropped
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(same_as_imread(tmp_path / "pal.png"), np.asarray(pal.convert("RGB"))[:, :, ::-1])


def test_read_16bit_png_keeps_high_byte(tmp_path):
    v16 = RNG.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    assert cv2.imwrite(str(tmp_path / "c16.png"), v16)
    np.testing.assert_array_equal(same_as_imread(tmp_path / "c16.png"), (v16 >> 8).astype(np.uint8))
    g16 = v16[:, :, 0]
    assert cv2.imwrite(str(tmp_path / "g16.png"), g16)
    np.testing.assert_array_equal(same_as_imread(tmp_path / "g16.png"), np.dstack([g16 >> 8] * 3).astype(np.uint8))


@pytest.mark.parametrize("orientation, turn", [(3, 2), (6, -1), (8, 1)])
def test_read_applies_exif_orientation_like_imread(tmp_path, orientation, turn):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:20, :30] = [255, 0, 0]  # a red top-left quadrant makes the rotation visible
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif, quality=95)
    Image.fromarray(rgb).save(tmp_path / "plain.jpg", quality=95)
    ours = same_as_imread(tmp_path / "r.jpg")
    plain = images.read_image_bgr(tmp_path / "plain.jpg")
    # np.rot90 with k=1 turns counter-clockwise: Orientation 6 needs a clockwise turn (k=-1).
    np.testing.assert_array_equal(ours, np.rot90(plain, turn))


def test_read_webp_and_non_ascii_path(tmp_path):
    rgb = rand_rgb()
    path = tmp_path / "Grüße 日本.webp"
    Image.fromarray(rgb).save(path, lossless=True)
    np.testing.assert_array_equal(images.read_image_bgr(path), rgb[:, :, ::-1])
    jpg = tmp_path / "ñandú.jpg"
    Image.fromarray(rgb).save(jpg, quality=90)
    np.testing.assert_array_equal(images.read_image_bgr(jpg), cv2.imdecode(np.fromfile(jpg, np.uint8), 1))


def test_read_jpeg_with_bytes_after_end_marker(tmp_path):
    rgb = rand_rgb()
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=90)
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "b.jpg").write_bytes(data + b"\x00" * 7 + b"appended trailer data")
    np.testing.assert_array_equal(images.read_image_bgr(tmp_path / "b.jpg"), images.read_image_bgr(tmp_path / "a.jpg"))


def with_thumbnail(jpeg):
    """Insert an APP15 segment holding a small complete JPEG (markers FFDA ... FFD9) after SOI."""
    ok, thumb = cv2.imencode(".jpg", rand_rgb(8, 8))
    payload = thumb.tobytes()
    return jpeg[:2] + b"\xff\xef" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def test_read_jpeg_with_embedded_thumbnail(tmp_path):
    data = jpeg_bytes()
    (tmp_path / "plain.jpg").write_bytes(data)
    (tmp_path / "thumb.jpg").write_bytes(with_thumbnail(data))
    np.testing.assert_array_equal(same_as_imread(tmp_path / "thumb.jpg"), images.read_image_bgr(tmp_path / "plain.jpg"))


def test_read_png_with_bytes_after_iend(tmp_path):
    data = png_bytes()
    (tmp_path / "a.png").write_bytes(data + b"trailing junk" * 10)
    np.testing.assert_array_equal(
        images.read_image_bgr(tmp_path / "a.png"), cv2.imdecode(np.frombuffer(data, np.uint8), 1)
    )


def test_read_pillow_fallback_for_formats_opencv_lacks(tmp_path):
    rgb = rand_rgb(32, 32)
    Image.fromarray(rgb).save(tmp_path / "x.ico")
    assert cv2.imread(str(tmp_path / "x.ico")) is None  # otherwise this test checks nothing
    np.testing.assert_array_equal(images.read_image_bgr(tmp_path / "x.ico"), rgb[:, :, ::-1])


def bad_file(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def jpeg_bytes():
    ok, buf = cv2.imencode(".jpg", rand_rgb(120, 160))
    return buf.tobytes()


def png_bytes():
    ok, buf = cv2.imencode(".png", rand_rgb(120, 160))
    return buf.tobytes()


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("empty.jpg", lambda: b"", "empty file"),
        ("trunc.jpg", lambda: jpeg_bytes()[:-400], "truncated JPEG"),
        ("no_eoi.jpg", lambda: jpeg_bytes()[:-2], "truncated JPEG"),
        ("thumb_trunc.jpg", lambda: with_thumbnail(jpeg_bytes())[:-500], "truncated JPEG"),
        ("trunc.png", lambda: png_bytes()[:-300], "truncated PNG"),
        ("trunc.webp", lambda: Image_bytes("WEBP")[:-50], "truncated WebP"),
        ("text.png", lambda: b"this is not an image\n" * 20, "not a readable image"),
        (
            "garbage.jpg",
            lambda: b"\xff\xd8\xff" + bytes(RNG.integers(0, 256, 500, dtype=np.uint8)) + b"\xff\xd9",
            "not a readable image",
        ),
    ],
)
def test_bad_files_raise_one_line_input_image_error(tmp_path, capfd, name, make, reason):
    path = bad_file(tmp_path, name, make())
    with pytest.raises(InputImageError) as err:
        images.read_image_bgr(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and reason in msg and "\n" not in msg
    if "truncated" in reason or "empty" in reason:
        assert capfd.readouterr().err == ""  # refused before any decoder printed warnings


def Image_bytes(fmt):
    import io

    buf = io.BytesIO()
    Image.fromarray(rand_rgb(120, 160)).save(buf, format=fmt)
    return buf.getvalue()


def test_missing_file_and_folder_raise(tmp_path):
    with pytest.raises(InputImageError, match="file not found"):
        images.read_image_bgr(tmp_path / "nope.jpg")
    with pytest.raises(InputImageError, match="folder"):
        images.read_image_bgr(tmp_path)


# --------------------------------------------------------------------------- listing


def test_list_images_order_and_filtering(tmp_path):
    folder = tmp_path / "in [1]"  # glob metacharacters in the folder name
    folder.mkdir()
    names = [
        "b.png",
        "a.JPG",
        "B.jpeg",
        "10.webp",
        "9.bmp",
        "c.TIFF",
        "d.tif",
        "notes.txt",
        "noext",
        ".hidden.png",
        "z.Png",
    ]
    for n in names:
        (folder / n).write_bytes(b"x")
    (folder / "sub.dir").mkdir()
    imgs, ignored = images.list_images(folder)
    dotted = sorted(str(folder / n) for n in names + ["sub.dir"] if "." in n and not n.startswith("."))
    assert sorted(map(str, imgs + ignored)) == dotted
    expected_imgs = [
        p
        for p in dotted
        if Path(p).suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"} and Path(p).is_file()
    ]
    assert [str(p) for p in imgs] == expected_imgs
    assert [p.name for p in imgs] == ["10.webp", "9.bmp", "B.jpeg", "a.JPG", "b.png", "c.TIFF", "d.tif", "z.Png"]
    assert [p.name for p in ignored] == ["notes.txt", "sub.dir"]


def test_list_images_single_file_and_errors(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "a.txt").write_bytes(b"x")
    assert images.list_images(tmp_path / "a.png") == ([tmp_path / "a.png"], [])
    with pytest.raises(UsageError, match="not an image file"):
        images.list_images(tmp_path / "a.txt")
    with pytest.raises(UsageError) as err:
        images.list_images(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(err.value) and "\n" not in str(err.value)
    assert images.list_images(tmp_path / "a.png")[0][0].name == "a.png"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert images.list_images(empty) == ([], [])


# --------------------------------------------------------------------------- writing


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_write_image_atomic_png_exact_and_jpeg_close(tmp_path):
    img = rand_rgb(64, 64)
    images.write_image_atomic(tmp_path / "o.png", img)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "o.png")), img)
    smooth = cv2.GaussianBlur(img, (0, 0), 3)
    images.write_image_atomic(tmp_path / "o.jpg", smooth)
    assert np.abs(cv2.imread(str(tmp_path / "o.jpg")).astype(int) - smooth).mean() < 2
    images.write_image_atomic(tmp_path / "q.jpg", smooth, jpeg_quality=30)
    assert (tmp_path / "q.jpg").stat().st_size < (tmp_path / "o.jpg").stat().st_size
    assert leftovers(tmp_path, {"o.png", "o.jpg", "q.jpg"}) == []
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "o.png").stat().st_mode & 0o777 == 0o666 & ~mask


def test_write_failure_leaves_target_untouched_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "o.jpg"
    target.write_bytes(b"previous content")

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(UsageError) as err:
        images.write_image_atomic(target, rand_rgb())
    assert str(target) in str(err.value) and "No space left" in str(err.value)
    assert target.read_bytes() == b"previous content"
    assert leftovers(tmp_path, {"o.jpg"}) == []


def test_write_unwritable_or_missing_folder(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="does not exist"):
        images.write_image_atomic(tmp_path / "missing" / "o.png", rand_rgb())
    real_open = os.open

    def denied(path, *a, **k):
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(UsageError, match="Permission denied"):
        images.write_image_atomic(tmp_path / "o.png", rand_rgb())
    assert leftovers(tmp_path, set()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_write_into_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UsageError, match="cannot write"):
            images.write_image_atomic(ro / "o.png", rand_rgb())
    finally:
        ro.chmod(0o700)


def test_write_unknown_extension(tmp_path):
    with pytest.raises(UsageError, match=r"\.xyz"):
        images.write_image_atomic(tmp_path / "o.xyz", rand_rgb())
    assert leftovers(tmp_path, set()) == []


# --------------------------------------------------------------------------- bundled test images


def test_bundled_test_images_are_readable_and_small():
    root = Path(__file__).resolve().parents[1] / "test_imgs"
    faces, _ = images.list_images(root / "face_imgs")
    styles, _ = images.list_images(root / "style_imgs")
    photos, _ = images.list_images(root / "photos")
    assert len(faces) >= 2 and len(styles) >= 4 and len(photos) >= 2
    for path in faces + styles:
        assert images.read_image_bgr(path).shape == (256, 256, 3), path
    for path in photos:
        assert min(images.read_image_bgr(path).shape[:2]) >= 256, path
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 1_000_000
