"""End-to-end runs of the three commands at size 64 with recipe checkpoints in the original formats.

Outputs are checked for names, layouts and pixels: the arrays written equal what the model API
computes for the same inputs (and the JPEG files decode to them within JPEG tolerance)."""

import copy
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from blendgan import jobs
from blendgan.cli import main
from blendgan.io import images
from blendgan.jobs.morph_video import video_alphas

from helpers import ROOT

FACES = ROOT / "test_imgs" / "face_imgs"
STYLES = ROOT / "test_imgs" / "style_imgs"
SIZE = 64


@pytest.fixture(scope="module")
def models(recipe_models):
    return copy.deepcopy(recipe_models(SIZE, tiny=True))  # the video test's pipeline takes them over


def finished_outputs(folder):
    """Outputs under their final names: the atomic writer's temporary siblings (`.<name>.<random>.tmp.jpg`, which
    a kill may leave half written) are not outputs."""
    return [p for p in folder.glob("*.jpg") if not p.name.startswith(".")]


def run_script(script, args, timeout=600):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def assert_jpeg_of(path, expected):
    """The file decodes to what OpenCV's JPEG (quality 95, the original's) makes of `expected`.

    Random recipe weights give saturated, noise-like images on which JPEG's chroma subsampling is far
    from lossless, so the comparison goes through the same encoder instead of a loose tolerance."""
    ok, encoded = cv2.imencode(".jpg", expected, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    assert np.array_equal(cv2.imread(str(path)), cv2.imdecode(encoded, cv2.IMREAD_COLOR))


# ------------------------------------------------------------------------------------------ transfer


def expected_transfer_panel(models, face_path, style_path, awi=6):
    g, psp = models
    face, style = images.read_image_bgr(face_path), images.read_image_bgr(style_path)
    with torch.no_grad():
        codes = psp(images.bgr_to_tensor(face))  # full resolution, pooled to 256 inside
        z = g.embedder(images.bgr_to_tensor(style))
        out, _ = g([codes], input_is_latent=True, z_embed=z, add_weight_index=awi, randomize_noise=False)
    return images.hconcat(
        [images.resize_square(face, SIZE), images.resize_square(style, SIZE), images.tensor_to_bgr(out)]
    )


def test_transfer_writes_the_original_files_and_pixels(
    tiny_weights, models, written, tmp_path, capsys, freed_memory_requests
):
    out = tmp_path / "out"
    status = main(
        [
            "transfer",
            "--size",
            str(SIZE),
            *tiny_weights.flags,
            "--input_img_path",
            str(FACES),
            "--style_img_path",
            str(STYLES),
            "--outdir",
            str(out),
            "--device",
            "cpu",
            "--batch_size",
            "1",
        ]
    )
    assert status == 0
    faces, styles = sorted(FACES.glob("*.*")), sorted(STYLES.glob("*.*"))
    expected_names = {f"{f.stem}_v_{s.stem}.jpg" for f in faces for s in styles}
    assert {p.name for p in out.iterdir()} == expected_names
    assert set(written) == expected_names
    for f in faces:
        for s in styles[:2]:
            name = f"{f.stem}_v_{s.stem}.jpg"
            want = expected_transfer_panel(models, f, s)
            assert written[name].shape == (SIZE, 3 * SIZE, 3)
            assert np.array_equal(written[name], want), name
            assert_jpeg_of(out / name, want)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"transfer: {len(expected_names)} written, 0 skipped, 0 failed")
    assert freed_memory_requests == [True]  # a generating program on CPU keeps freed activations


def first_styles(folder, n=2):
    """A folder with the first n style images: 2 faces x 2 styles still make 4 pairs, a full batch of 4."""
    folder.mkdir()
    for p in sorted(STYLES.glob("*.*"))[:n]:
        shutil.copy(p, folder / p.name)
    return folder


def test_transfer_batched_equals_batch_one(tiny_weights, written, tmp_path):
    styles = first_styles(tmp_path / "styles")
    args = [
        "transfer",
        *tiny_weights.flags,
        "--input_img_path",
        str(FACES),
        "--style_img_path",
        str(styles),
        "--device",
        "cpu",
    ]
    assert main([*args, "--outdir", str(tmp_path / "b1"), "--batch_size", "1"]) == 0
    single = dict(written)
    written.clear()
    assert main([*args, "--outdir", str(tmp_path / "b4"), "--batch_size", "4"]) == 0
    assert set(written) == set(single) and len(single) == 4
    for name, img in written.items():
        assert np.array_equal(img, single[name]), name


def make_messy_folder(folder):
    folder.mkdir()
    face = images.read_image_bgr(sorted(FACES.glob("*.*"))[0])
    cv2.imwrite(str(folder / "a_color.jpg"), face)
    cv2.imwrite(str(folder / "b_gray.png"), cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "c_rgba.png"), cv2.cvtColor(face, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "d_16bit.png"), face.astype(np.uint16) * 257)
    (folder / "e_empty.png").write_bytes(b"")
    data = (folder / "a_color.jpg").read_bytes()
    (folder / "f_truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not an image")
    return ["a_color", "b_gray", "c_rgba", "d_16bit"], ["e_empty.png", "f_truncated.jpg"]


def test_transfer_reports_bad_files_and_finishes_the_rest(tiny_weights, tmp_path):
    good, bad = make_messy_folder(tmp_path / "faces")
    style = sorted(STYLES.glob("*.*"))[0]
    out = tmp_path / "out"
    result = run_script(
        "style_transfer_folder.py",
        [
            *tiny_weights.flags,
            "--input_img_path",
            str(tmp_path / "faces"),
            "--style_img_path",
            str(style),
            "--outdir",
            str(out),
        ],
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{g}_v_{style.stem}.jpg" for g in good)
    failed_lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed_lines) == len(bad)
    for name in bad:
        assert sum(name in line for line in failed_lines) == 1, name
    assert any("notes.txt" in line and "ignored" in line for line in result.stderr.splitlines())
    assert "4 written, 0 skipped, 2 failed" in result.stdout


def test_missing_weights_is_a_usage_error(tmp_path):
    result = run_script(
        "style_transfer_folder.py",
        [
            "--ckpt",
            str(tmp_path / "nope" / "blendgan.pt"),
            "--input_img_path",
            str(FACES),
            "--style_img_path",
            str(STYLES),
        ],
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "blendgan.pt" in lines[0] and "download" in lines[0]


def test_skip_existing_resumes_and_keeps_earlier_outputs(tiny_weights, tmp_path, capsys):
    out = tmp_path / "out"
    args = [
        "transfer",
        *tiny_weights.flags,
        "--input_img_path",
        str(FACES),
        "--style_img_path",
        str(first_styles(tmp_path / "styles")),
        "--outdir",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    outputs = sorted(out.iterdir())
    assert len(outputs) == 4
    kept, removed = outputs[0], outputs[1:3]
    kept.write_bytes(kept.read_bytes())  # same bytes, new mtime: must not be rewritten
    stamp = kept.stat().st_mtime_ns
    for p in removed:
        p.unlink()
    capsys.readouterr()
    assert main([*args, "--skip_existing"]) == 0
    assert kept.stat().st_mtime_ns == stamp
    assert all(p.exists() for p in removed)
    assert f"2 written, {len(outputs) - 2} skipped, 0 failed" in capsys.readouterr().out


def test_killed_run_leaves_no_partial_outputs(tiny_weights, tmp_path):
    out = tmp_path / "out"
    many_styles = tmp_path / "styles"  # 8 copies of each style: a run far longer than the wait for its first file
    many_styles.mkdir()
    for path in sorted(STYLES.glob("*.*")):
        for i in range(8):
            shutil.copy(path, many_styles / f"{path.stem}_{i}{path.suffix}")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "style_transfer_folder.py"),
            *tiny_weights.flags,
            "--input_img_path",
            str(FACES),
            "--style_img_path",
            str(many_styles),
            "--outdir",
            str(out),
            "--batch_size",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        deadline = time.time() + 600  # loading alone can take minutes on a busy machine
        while time.time() < deadline and proc.poll() is None and not (out.exists() and finished_outputs(out)):
            time.sleep(0.05)
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert running and proc.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    finished = finished_outputs(out)
    assert finished, "the run did not get to write anything before the deadline"
    n_pairs = len(list(FACES.glob("*.*"))) * len(list(many_styles.iterdir()))
    assert len(finished) < n_pairs, "every output was written: the kill did not interrupt the run"
    for p in finished:  # every file under a final name is complete
        assert images.read_image_bgr(p).shape == (SIZE, 3 * SIZE, 3)


# ------------------------------------------------------------------------------------------ pairs


def test_pairs_with_sample_zs_and_style_image(tiny_weights, models, written, tmp_path):
    g, _ = models
    zs = torch.randn(3, 1, 512, generator=torch.Generator().manual_seed(7))
    torch.save(zs, tmp_path / "zs.pt")
    style = sorted(STYLES.glob("*.*"))[1]
    out = tmp_path / "pairs"
    status = main(
        [
            "pairs",
            "--ckpt",
            str(tiny_weights["blendgan"]),
            "--pics",
            "3",
            "--sample_zs",
            str(tmp_path / "zs.pt"),
            "--style_img",
            str(style),
            "--outdir",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    # the original names and layout, plus the manifest of what each file is
    assert sorted(p.name for p in out.iterdir()) == ["000000.jpg", "000001.jpg", "000002.jpg", "manifest.jsonl"]
    latent_avg = torch.load(tiny_weights["blendgan"], weights_only=True)["latent_avg"]
    with torch.no_grad():
        z_embed = g.embedder(images.bgr_to_tensor(images.read_image_bgr(style)))
        for i in range(3):
            trunc = dict(truncation=0.75, truncation_latent=latent_avg, randomize_noise=False)
            a, _ = g([zs[i]], **trunc)
            b, _ = g([zs[i]], z_embed=z_embed, add_weight_index=6, **trunc)
            want = images.hconcat([images.tensor_to_bgr(a), images.tensor_to_bgr(b)])
            assert written[f"{i:06d}.jpg"].shape == (SIZE, 2 * SIZE, 3)
            assert np.array_equal(written[f"{i:06d}.jpg"], want)


def test_pairs_seed_is_reproducible(tiny_weights, written, tmp_path):
    def run(seed, folder):
        written.clear()
        assert (
            main(
                [
                    "pairs",
                    "--ckpt",
                    str(tiny_weights["blendgan"]),
                    "--pics",
                    "2",
                    "--seed",
                    str(seed),
                    "--outdir",
                    str(tmp_path / folder),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        return dict(written)

    first, again, other = run(5, "a"), run(5, "b"), run(6, "c")
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["000000.jpg"], other["000000.jpg"])


# ------------------------------------------------------------------------------------------ video


def test_video_frames_stream_lazily(tiny_weights, models):
    """Frames are produced while generating: the first frame exists after one generator call."""
    from blendgan.pipeline import BlendGAN

    g, psp = models
    bg = BlendGAN.from_models(g, psp, device="cpu", batch_size=2)
    calls = []
    original = bg.interpolate
    bg.interpolate = lambda *a, **k: calls.append(1) or original(*a, **k)
    face = images.resize_square(images.read_image_bgr(sorted(FACES.glob("*.*"))[0]), SIZE)
    styles = [images.resize_square(images.read_image_bgr(p), SIZE) for p in sorted(STYLES.glob("*.*"))[:2]]
    frames = jobs.video_frames(bg, face, styles * 4)
    first = next(frames)
    assert first.shape == (SIZE, 3 * SIZE, 3) and len(calls) == 1


def low_pass(img):
    return cv2.GaussianBlur(img.astype(np.float32), (7, 7), 2)


@pytest.mark.slow  # a whole 227-frame video through the 64 px generator (~3 min under load)
# one codec here: the command's `--codec mp4v` runs whole in test_controls_commands (the W-space video), and both
# writers are checked frame by frame in test_video; a second 227-frame run would only repeat the generation
@pytest.mark.parametrize("codec,expected_codec", [("h264", "h264")])
def test_video_command(tiny_weights, models, tmp_path, codec, expected_codec):
    from blendgan.io.video import read_video

    face = sorted(FACES.glob("*.*"))[0]
    faces = tmp_path / "faces"
    faces.mkdir()
    shutil.copy(face, faces / face.name)
    out, frames_dir = tmp_path / "video", tmp_path / "frames"
    status = main(
        [
            "video",
            *tiny_weights.flags,
            "--input_img_path",
            str(faces),
            "--style_img_path",
            str(STYLES),
            "--outdir",
            str(out),
            "--frames_dir",
            str(frames_dir),
            "--codec",
            codec,
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    video = out / f"{face.stem}.mp4"
    decoded, meta = read_video(video)
    decoded = list(decoded)
    assert meta["codec"] == expected_codec
    assert len(decoded) == jobs.frames_per_video() == 227
    assert decoded[0].shape == (SIZE, 3 * SIZE, 3)
    pngs = sorted((frames_dir / face.stem).glob("*.png"))
    assert len(pngs) == 227
    dumped = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in pngs]
    # Lossy codecs (yuv420p halves the colour resolution of these 64 px frames): the photo panels survive; the
    # generated panel of random recipe weights is saturated noise, so it is compared after a blur (codecs keep low
    # frequencies).
    photo = max(
        np.abs(a[:, : 2 * SIZE].astype(int) - b[:, : 2 * SIZE].astype(int)).mean() for a, b in zip(dumped, decoded)
    )
    blurred = max(
        np.abs(low_pass(a[:, 2 * SIZE :]) - low_pass(b[:, 2 * SIZE :])).mean() for a, b in zip(dumped, decoded)
    )
    assert photo < 10 and blurred < 12, (photo, blurred)  # measured ~6.5 and ~7.2 at 64 px

    # frame 5 of transition 0 computed with the model API, exactly
    import random

    g, psp = models
    styles = [
        images.resize_square(images.read_image_bgr(p), SIZE)
        for p in random.Random(0).choices(sorted(STYLES.glob("*.*")), k=8)
    ]
    face_img = images.resize_square(images.read_image_bgr(face), SIZE)
    alpha = video_alphas()[5]
    with torch.no_grad():
        codes = psp(images.bgr_to_tensor(face_img))
        za, zb = (g.embedder(images.bgr_to_tensor(s)) for s in styles[:2])
        img, _ = g(
            [codes], input_is_latent=True, z_embed=torch.lerp(za, zb, alpha), add_weight_index=7, randomize_noise=False
        )
    top = int(SIZE * alpha)
    stacked = np.concatenate([images.tensor_to_video_frame_rgb(images.bgr_to_tensor(s)) for s in styles[:2]])
    want = np.concatenate(
        [
            images.tensor_to_video_frame_rgb(images.bgr_to_tensor(face_img)),
            stacked[top : top + SIZE],
            images.tensor_to_video_frame_rgb(img),
        ],
        axis=1,
    )
    assert np.array_equal(dumped[5], want)
