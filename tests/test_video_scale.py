"""Your videos and folders at scale (issue 32): detections a track missed are filled in, processes that wait for a
slow one do not time out, a failure on one process is one line on every process, photo folders and `transfer`
shared over processes give one process's files, a photo keeps its transparency, inputs that share a name get
distinct outputs. The clips are made here from a bundled photo; the models are the size-64 recipe weights."""

import copy

import cv2
import numpy as np
import pytest

from blendgan.cli import main
from blendgan.io.video import read_video

from helpers import ROOT, alignment_missing, make_face_clip, run_blendgan_torchrun

STYLE = ROOT / "test_imgs" / "style_imgs" / "cartoon_astronaut.jpg"
FACES = ROOT / "test_imgs" / "face_imgs"
STYLES = ROOT / "test_imgs" / "style_imgs"

if alignment_missing():
    pytestmark = pytest.mark.skip(reason=alignment_missing())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_face_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1.5, fps=8)


def flags(tiny_weights, outdir, *extra):
    return ["--style_img", str(STYLE), *tiny_weights.flags, "--outdir", str(outdir), "--device", "cpu", *extra]


class MissingFrames:
    """An aligner that finds no face in the given frames (its `detect` calls, in frame order)."""

    def __init__(self, aligner, missing):
        self.aligner, self.missing, self.calls = aligner, set(missing), 0

    def detect(self, bgr):
        t, self.calls = self.calls, self.calls + 1
        return [] if t in self.missing else self.aligner.detect(bgr)

    def __getattr__(self, name):
        return getattr(self.aligner, name)


@pytest.mark.slow  # whole runs of seconds each: make test (CI) runs them, test-fast does not
def test_frames_a_track_missed_stay_stylized(tiny_models, clip, tmp_path):
    from blendgan.cli._common import RunReport
    from blendgan.jobs.video import stylize_video
    from blendgan.photo import make_aligner
    from blendgan.pipeline import BlendGAN

    bg = BlendGAN(*copy.deepcopy(tiny_models), device="cpu")
    z = bg.embed_style(STYLE)
    missing = {5, 6, 7}
    aligner = MissingFrames(make_aligner(), missing)
    frames = tmp_path / "frames"
    measured = stylize_video(
        bg, clip, z, tmp_path / "out.mp4", RunReport("t"), aligner=aligner, segment_frames=20, frames_dir=frames,
        detect_every=1,  # the detector on every frame: the missed frames are exactly the ones it was asked about
    )  # fmt: skip
    assert aligner.calls == 12 and measured["interpolated"] == len(missing) and measured["tracks"] == 1
    source, _ = read_video(clip)
    for t in range(12):
        out = cv2.imread(str(frames / f"{t:06d}.png"))[:, :, ::-1]
        changed = np.any(np.abs(out.astype(int) - source[t]) > 8, axis=2).mean()
        assert 0.01 < changed < 0.5, (t, changed)  # the missed frames too: the face is stylized, not passed through


@pytest.mark.distributed
@pytest.mark.slow
def test_a_slow_process_in_pass_one_does_not_time_out_the_others(tiny_weights, clip, tmp_path):
    """Rank 0 sleeps in its part of pass 1 for twice the process group's timeout: rank 1 waits for its parts in
    the work folder, not in a collective, so the run finishes."""
    env = {"BLENDGAN_DIST_TIMEOUT": "15", "BLENDGAN_TEST_SLOW_PASS1": "0:30"}
    done = run_blendgan_torchrun(
        ["stylize", str(clip), *flags(tiny_weights, tmp_path, "--segment_frames", "4")], env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(read_video(tmp_path / "clip_v_cartoon_astronaut.mp4")[0]) == 12


@pytest.mark.distributed
@pytest.mark.slow
def test_a_failure_on_one_process_is_one_line_on_every_process_and_the_next_clip_goes_on(tiny_weights, clip, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.mp4").write_bytes(clip.read_bytes())  # 12 frames: segments 0, 2 on rank 0 and 1 on rank 1
    make_face_clip(src / "b.mp4", seconds=0.5, fps=8)  # 4 frames: one segment, rank 0's
    out = tmp_path / "out"
    env = {"BLENDGAN_TEST_FAIL_SEGMENT": "1:1"}  # rank 1 fails while it encodes segment 1
    done = run_blendgan_torchrun(["stylize", str(src), *flags(tiny_weights, out, "--segment_frames", "4")], env=env)
    assert done.returncode == 1, done.stderr[-3000:]
    line = "a.mp4: a failure injected for the tests while encoding segment 1"
    printed = [ln.split("failed: ")[-1] for ln in done.stderr.splitlines() if line in ln]
    assert len(printed) == 2 and len(set(printed)) == 1, done.stderr[-3000:]  # the same line on both processes
    assert f'File "{ROOT / "blendgan"}' not in done.stderr  # no traceback of ours (torchrun reports the exit)
    # the run went on to the next clip and wrote it; nothing under the failed clip's name
    assert (out / "b_v_cartoon_astronaut.mp4").is_file() and not (out / "a_v_cartoon_astronaut.mp4").exists()
    assert len(read_video(out / "b_v_cartoon_astronaut.mp4")[0]) == 4


def photo_folder(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for p in sorted(FACES.iterdir()):
        (src / p.name).write_bytes(p.read_bytes())
    return src


def files_of(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


@pytest.mark.distributed
@pytest.mark.slow
def test_photo_folders_and_transfer_on_two_processes_equal_one(tiny_weights, tmp_path):
    src = photo_folder(tmp_path)
    for n in (1, 2):
        done = run_blendgan_torchrun(["stylize", str(src), *flags(tiny_weights, tmp_path / f"photos{n}", "--panel")], n)
        assert done.returncode == 0, done.stderr[-3000:]
        done = run_blendgan_torchrun(
            [
                "transfer",
                "--input_img_path",
                str(FACES),
                "--style_img_path",
                str(STYLES),
                *tiny_weights.flags,
                "--outdir",
                str(tmp_path / f"transfer{n}"),
                "--device",
                "cpu",
            ],
            n,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = files_of(tmp_path / "photos1"), files_of(tmp_path / "photos2")
    assert len(one) == 2 * len(list(src.iterdir())) and one == two
    one, two = files_of(tmp_path / "transfer1"), files_of(tmp_path / "transfer2")
    assert len(one) == len(list(FACES.iterdir())) * len(list(STYLES.iterdir())) and one == two


def test_a_photo_with_transparency_keeps_its_alpha(tiny_weights, tmp_path):
    face = cv2.imread(str(sorted(FACES.iterdir())[0]))
    alpha = np.full(face.shape[:2], 255, np.uint8)
    alpha[:, : face.shape[1] // 8] = 0  # a transparent band on the left
    alpha[:, face.shape[1] // 8 : face.shape[1] // 4] = 128
    src = tmp_path / "face.png"
    cv2.imwrite(str(src), np.dstack([face, alpha]))
    assert main(["stylize", str(src), *flags(tiny_weights, tmp_path / "out")]) == 0
    out = cv2.imread(str(tmp_path / "out" / "face_v_cartoon_astronaut.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (*face.shape[:2], 4)
    assert np.array_equal(out[:, :, 3], alpha)
    assert np.any(out[:, :, :3] != face)  # the face was stylized in colour
    # the colour is the same as for the photo without alpha
    cv2.imwrite(str(tmp_path / "plain.png"), face)
    assert main(["stylize", str(tmp_path / "plain.png"), *flags(tiny_weights, tmp_path / "out")]) == 0
    plain = cv2.imread(str(tmp_path / "out" / "plain_v_cartoon_astronaut.png"))
    assert np.array_equal(out[:, :, :3], plain)


def test_inputs_that_share_a_name_get_distinct_outputs(tmp_path):
    from blendgan.jobs.common import output_stems

    assert output_stems(["a/clip.mov", "b/clip.mp4", "c/other.mp4"], keep_suffix=False) == [
        "clip_mov",
        "clip_mp4",
        "other",
    ]
    assert output_stems(["a/clip.mp4", "b/clip.mp4"], keep_suffix=False) == ["clip_mp4_1", "clip_mp4_2"]
    # photos keep their extension: only the same name clashes
    assert output_stems(["a/x.jpg", "a/x.png", "b/x.jpg"], keep_suffix=True) == ["x_jpg_1", "x", "x_jpg_3"]
    assert output_stems(["a/x.jpg", "b/y.jpg"], keep_suffix=True) == ["x", "y"]


@pytest.mark.slow  # whole runs of seconds each: make test (CI) runs them, test-fast does not
def test_encoding_every_third_face_is_exact_on_the_encoded_frames(tiny_models, clip, tmp_path):
    """--encode_every 3 (smoothing off, so each frame shows its own codes): the frames whose face was encoded are
    the per-frame run's exactly, the encoder runs on a third of the faces, and the others are stylized too."""
    from blendgan.cli._common import RunReport
    from blendgan.jobs.video import stylize_video
    from blendgan.photo import make_aligner
    from blendgan.pipeline import BlendGAN

    bg = BlendGAN(*copy.deepcopy(tiny_models), device="cpu")
    z = bg.embed_style(STYLE)
    aligner = make_aligner()
    calls = []
    encode = bg.encode_face_bgr
    bg.encode_face_bgr = lambda crop: calls.append(1) or encode(crop)
    runs = {}
    for every in (1, 3):
        calls.clear()
        frames = tmp_path / f"frames{every}"
        stylize_video(
            bg, clip, z, tmp_path / f"out{every}.mp4", RunReport("t"), aligner=aligner, smooth=0.0,
            segment_frames=5, encode_every=every, frames_dir=frames,
        )  # fmt: skip
        runs[every] = ([cv2.imread(str(frames / f"{t:06d}.png")) for t in range(12)], len(calls))
    (per_frame, n1), (keyed, n3) = runs[1], runs[3]
    assert n1 == 12 and n3 == 5  # faces 0, 3, 6, 9 and the track's last (11)
    source, _ = read_video(clip)
    for t in range(12):
        if t in (0, 3, 6, 9, 11):
            assert np.array_equal(keyed[t], per_frame[t]), t
        else:  # interpolated codes: still a stylized face, close to the per-frame one
            assert np.any(np.abs(keyed[t][:, :, ::-1].astype(int) - source[t]) > 8)


def test_change_inside_faces_is_the_whole_frame_measure():
    """The flicker's per-frame change, computed inside the faces' bounding box, is the same number as the mean over
    the whole frame's mask pixels (the measure it replaced): faces that overlap, one cut by the frame's edge, and a
    frame whose faces lie outside it."""
    from blendgan import photo
    from blendgan.align import CropPlacement
    from blendgan.jobs.video import _change_inside_faces

    rng = np.random.default_rng(0)
    height, width = 90, 160

    def face(x, y, side, turn):
        c, s = np.cos(turn), np.sin(turn)
        right, down = side * np.array([c, s]), side * np.array([-s, c])
        top_left = np.array([x, y], float)
        corners = np.stack([top_left, top_left + down, top_left + down + right, top_left + right])
        mask = np.clip(rng.normal(0.5, 0.5, (photo.MASK_SIZE, photo.MASK_SIZE)), 0, 1).astype(np.float32)
        return photo.PhotoFace(None, CropPlacement(corners, (0.0, 0.0, width, height), (width, height)), mask=mask)

    def whole_frame(records, before, now):
        weight = np.zeros((height, width), bool)
        for r in records:
            got = photo.photo_mask(r.mask, r.placement)
            if got is not None:
                (x0, y0, x1, y1), w = got
                weight[y0:y1, x0:x1] |= w > 0
        if not weight.any():
            return None
        return float(np.abs(now.astype(np.int16) - before)[weight].mean())

    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    inside = [[face(20, 10, 50, 0.3), face(40, 20, 40, -0.2)], [face(130, 60, 45, 0.1)]]
    for records in inside:
        got = _change_inside_faces(records, (frames[0], frames[1]), (frames[2], frames[3]))
        assert got == [whole_frame(records, frames[0], frames[1]), whole_frame(records, frames[2], frames[3])]
        assert got[0] > 0
    outside = [face(-80, -80, 30, 0.0)]
    assert _change_inside_faces(outside, (frames[0], frames[1])) is None is whole_frame(outside, *frames[:2])
