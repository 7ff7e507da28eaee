"""blendgan.io.video: H.264 / mp4v writers (streamed, atomic), PNG frame dumps, reading back."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from blendgan.errors import BlendGANError, UsageError
from blendgan.io.video import FrameDumper, VideoWriter, read_video

ROOT = Path(__file__).resolve().parents[1]


def smooth_frames(n, h=64, w=96, seed=0):
    """Smooth, strongly coloured moving frames (compress well, channel swaps show up clearly)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (h, w * 2, 3), dtype=np.uint8), (0, 0), 5)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    base[:, :, 0] = np.maximum(base[:, :, 0], 200)  # red-heavy in RGB
    base[:, :, 2] //= 4
    return [np.ascontiguousarray(base[:, i * 2 : i * 2 + w]) for i in range(n)]


def mean_abs(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("codec, codec_name, tol", [("h264", "h264", 4.0), ("mp4v", "mpeg4", 6.0)])
def test_write_and_read_back(tmp_path, codec, codec_name, tol):
    frames = smooth_frames(12)
    path = tmp_path / "v.mp4"
    with VideoWriter(path, 96, 64, fps=30, codec=codec) as vw:
        for f in frames:
            vw.write(f)
    assert vw.frames_written == 12
    got, meta = read_video(path)
    assert meta["codec"] == codec_name and meta["size"] == (96, 64) and meta["fps"] == 30
    assert meta["n_frames"] == len(got) == 12
    for a, b in zip(got, frames):
        assert mean_abs(a, b) < tol
    # RGB stayed RGB (a swapped red/blue would move the channel means by > 100 levels)
    assert abs(got[0][:, :, 0].mean() - frames[0][:, :, 0].mean()) < 10
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]  # temp file renamed, nothing left over


def test_h264_is_browser_friendly_yuv420p(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, 96, 64) as vw:
        for f in smooth_frames(3):
            vw.write(f)
    _, meta = read_video(path)
    assert meta["pix_fmt"].startswith("yuv420p")
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: index before the media data


def test_h264_odd_size_is_padded_to_even(tmp_path):
    frames = smooth_frames(4, h=33, w=51)
    with VideoWriter(tmp_path / "odd.mp4", 51, 33) as vw:
        for f in frames:
            vw.write(f)
    got, meta = read_video(tmp_path / "odd.mp4")
    assert meta["size"] == (52, 34) and len(got) == 4
    assert mean_abs(got[1][:33, :51], frames[1]) < 6


def test_exception_in_block_leaves_no_file_and_keeps_old_target(tmp_path):
    target = tmp_path / "v.mp4"
    target.write_bytes(b"old video")
    with pytest.raises(KeyError):
        with VideoWriter(target, 96, 64) as vw:
            vw.write(smooth_frames(1)[0])
            raise KeyError("boom")
    assert target.read_bytes() == b"old video"
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]


def test_wrong_frame_size_raises_and_aborts(tmp_path):
    with pytest.raises(ValueError, match="64x96x3"):
        with VideoWriter(tmp_path / "v.mp4", 96, 64, codec="mp4v") as vw:
            vw.write(np.zeros((64, 95, 3), np.uint8))
    assert os.listdir(tmp_path) == []


def test_no_frames_is_an_error(tmp_path):
    with pytest.raises(BlendGANError, match="no frames"):
        with VideoWriter(tmp_path / "v.mp4", 96, 64):
            pass
    assert os.listdir(tmp_path) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "v.mp4", 96, 64).open()
    with pytest.raises(UsageError, match="codec"):
        VideoWriter(tmp_path / "v.mp4", 96, 64, codec="xvid")
    with pytest.raises(UsageError, match="not found"):
        read_video(tmp_path / "none.mp4")


def test_frame_dumper_writes_exact_pngs(tmp_path):
    frames = smooth_frames(3)
    folder = tmp_path / "frames" / "sub"
    with FrameDumper(folder, start_index=5) as dump:
        paths = [dump.write(f) for f in frames]
    assert [p.name for p in paths] == ["000005.png", "000006.png", "000007.png"]
    assert sorted(os.listdir(folder)) == ["000005.png", "000006.png", "000007.png"]
    for p, f in zip(paths, frames):
        np.testing.assert_array_equal(cv2.imread(str(p))[:, :, ::-1], f)


def test_read_video_max_frames(tmp_path):
    with VideoWriter(tmp_path / "v.mp4", 96, 64, codec="mp4v") as vw:
        for f in smooth_frames(6):
            vw.write(f)
    got, meta = read_video(tmp_path / "v.mp4", max_frames=2)
    assert len(got) == meta["n_frames"] == 2


PEAK_RSS_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from blendgan.io.video import VideoWriter
    n, path = int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (256, 768 + 2 * n, 3), dtype=np.uint8)
    with VideoWriter(path, 768, 256, codec="h264") as vw:
        for i in range(n):
            vw.write(base[:, 2 * i:2 * i + 768])  # a view: no per-frame copies kept here
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux-specific")
def test_peak_memory_does_not_grow_with_frame_count(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def peak_kib(n):
        out = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_SCRIPT, str(n), str(tmp_path / f"{n}.mp4")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return int(out.stdout.split()[-1])

    small, large = peak_kib(20), peak_kib(200)
    _, meta = read_video(tmp_path / "200.mp4", max_frames=1)
    assert meta["size"] == (768, 256)
    # Holding the 180 extra frames (768x256x3 bytes each) would add ~106 MiB; allow 30 MiB of noise.
    frame_bytes = 768 * 256 * 3
    assert (large - small) * 1024 < 30 * 2**20 < 180 * frame_bytes
