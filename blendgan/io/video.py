"""Video output: stream RGB frames to an .mp4 file (H.264 or the original's mp4v), or dump PNGs.

Frames are H×W×3 uint8 **RGB** (``images.tensor_to_video_frame_rgb``). Writers stream each frame
to the encoder as it comes (memory does not grow with the frame count) and write atomically: a
temporary file in the same folder is renamed over the target on a clean close and deleted if
anything fails.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from ..errors import BlendGANError, UsageError
from .files import temp_sibling
from .images import write_image_atomic

PathLike = Union[str, "os.PathLike[str]"]

#: Codec choices: "h264" (libx264, yuv420p, plays in browsers) or "mp4v" (MPEG-4 Part 2 through
#: OpenCV, what the original's XVID request ends up as in an .mp4 container).
CODECS = ("h264", "mp4v")
#: libx264's speed presets, slowest last: at the same ``crf`` a faster one spends less CPU for a little less
#: quality per byte (benchmarks/results/video_fast_cpu.md). ``medium`` is x264's default and the writers'.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def check_x264_preset(preset: str) -> None:
    """A one-line usage error unless `preset` is one of X264_PRESETS (a job checks before its work begins)."""
    if preset not in X264_PRESETS:
        raise UsageError(f"x264 preset {preset!r}: choose one of {', '.join(X264_PRESETS)}")


class VideoWriter:
    """Context manager writing RGB frames of a fixed size to ``path``.

    ``codec="h264"``: libx264 through ``imageio_ffmpeg.write_frames``, pix_fmt yuv420p, constant
    quality ``crf`` (18: visually near-lossless) at x264's speed ``preset``, ``+faststart`` so browsers can
    start playback before the download ends. yuv420p needs even sizes: an odd width or height is padded with one
    black column/row by the encoder (the video is then one pixel wider/taller).
    ``codec="mp4v"``: ``cv2.VideoWriter`` with fourcc ``mp4v``; frames are written as BGR.

    >>> with VideoWriter("out.mp4", 768, 256) as vw:   # doctest: +SKIP
    ...     for frame in frames:
    ...         vw.write(frame)
    """

    def __init__(
        self,
        path: PathLike,
        width: int,
        height: int,
        fps: float = 30,
        codec: str = "h264",
        crf: int = 18,
        preset: str = "medium",
    ):
        if codec not in CODECS:
            raise UsageError(f"unknown video codec {codec!r}; choose one of {', '.join(CODECS)}")
        check_x264_preset(preset)
        if width <= 0 or height <= 0:
            raise ValueError(f"video size must be positive, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height, self.fps, self.codec, self.crf = int(width), int(height), fps, codec, crf
        self.preset = preset
        self.frames_written = 0
        self._tmp: Path | None = None
        self._encoder = None  # imageio_ffmpeg generator or cv2.VideoWriter

    # -- lifecycle

    def open(self) -> VideoWriter:
        """Start the encoder on a temporary file next to ``path`` (called by ``__enter__``)."""
        if self._tmp is not None:
            raise RuntimeError("VideoWriter is already open")
        self._tmp = temp_sibling(self.path)
        if not os.access(self._tmp.parent, os.W_OK):
            raise UsageError(f"{self.path}: cannot write into folder {self._tmp.parent} (permission denied)")
        try:
            self._encoder = self._open_h264() if self.codec == "h264" else self._open_mp4v()
        except BaseException:
            self._discard()
            raise
        return self

    def _open_h264(self):
        import imageio_ffmpeg

        if self.path.suffix.lower() == ".h264":
            # a raw stream (segments to be joined): no container, and no B-frames, whose display order needs
            # timestamps a raw stream does not carry (with them the joined file dropped and reordered frames)
            output_params = ["-crf", str(self.crf), "-preset", self.preset, "-bf", "0", "-f", "h264"]
        else:
            output_params = ["-crf", str(self.crf), "-preset", self.preset, "-movflags", "+faststart"]
        if self.width % 2 or self.height % 2:
            output_params += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        gen = imageio_ffmpeg.write_frames(
            str(self._tmp),
            (self.width, self.height),
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            fps=self.fps,
            codec="libx264",
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=output_params,
        )
        gen.send(None)  # starts ffmpeg
        return gen

    def _open_mp4v(self):
        writer = cv2.VideoWriter(
            str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(self.fps), (self.width, self.height)
        )
        if not writer.isOpened():
            raise BlendGANError(
                f"{self.path}: OpenCV could not open an mp4v video writer "
                "(OpenCV built without FFmpeg?); use codec h264"
            )
        return writer

    def write(self, frame_rgb: np.ndarray) -> None:
        """Append one H×W×3 uint8 RGB frame (its size must be the writer's size)."""
        if self._encoder is None:
            raise RuntimeError("VideoWriter is not open (use it in a with-block)")
        if frame_rgb.shape != (self.height, self.width, 3) or frame_rgb.dtype != np.uint8:
            raise ValueError(
                f"frame must be uint8 {self.height}x{self.width}x3, got "
                f"{frame_rgb.dtype} {'x'.join(map(str, frame_rgb.shape))}"
            )
        if self.codec == "h264":
            try:
                self._encoder.send(np.ascontiguousarray(frame_rgb))
            except OSError as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise BlendGANError(f"{self.path}: the video encoder stopped ({first})") from None
        else:
            self._encoder.write(np.ascontiguousarray(frame_rgb[:, :, ::-1]))
        self.frames_written += 1

    def close(self) -> None:
        """Finish encoding and move the temporary file onto ``path``."""
        if self._encoder is None:
            return
        try:
            self._finish_encoder()
            if self.frames_written == 0:
                raise BlendGANError(f"{self.path}: no frames were written; no video was produced")
            if not self._tmp.is_file() or self._tmp.stat().st_size == 0:
                raise BlendGANError(f"{self.path}: the video encoder produced no output")
            os.replace(self._tmp, self.path)
        except OSError as err:
            self._discard()
            raise UsageError(f"{self.path}: cannot write the video ({err.strerror or err})") from None
        except BaseException:
            self._discard()
            raise
        self._tmp = None

    def abort(self) -> None:
        """Stop the encoder and delete the temporary file; ``path`` is left untouched."""
        with contextlib.suppress(Exception):
            self._finish_encoder()
        self._discard()

    def _finish_encoder(self) -> None:
        encoder, self._encoder = self._encoder, None
        if encoder is None:
            return
        if self.codec == "h264":
            encoder.close()  # closes ffmpeg's stdin and waits for it to finish the file
        else:
            encoder.release()

    def _discard(self) -> None:
        self._encoder = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None

    def __enter__(self) -> VideoWriter:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class FrameDumper:
    """Writes frames as ``{index:06d}.png`` into a folder (created if missing), each atomically.

    Same interface as ``VideoWriter`` (``write(frame_rgb)``, usable in a with-block); PNG keeps the
    frames lossless, e.g. for ``--frames_dir``.
    """

    def __init__(self, folder: PathLike, start_index: int = 0):
        self.folder = Path(folder)
        self.index = start_index
        self.frames_written = 0

    def write(self, frame_rgb: np.ndarray) -> Path:
        """Write one H×W×3 uint8 RGB frame; returns the file written."""
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 HxWx3, got {frame_rgb.dtype} {frame_rgb.shape}")
        if self.frames_written == 0:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UsageError(f"{self.folder}: cannot create the frames folder ({err.strerror or err})") from None
        path = self.folder / f"{self.index:06d}.png"
        write_image_atomic(path, frame_rgb[:, :, ::-1])
        self.index += 1
        self.frames_written += 1
        return path

    def close(self) -> None:
        """Nothing to finish (each frame is complete when written); for symmetry with VideoWriter."""

    def __enter__(self) -> FrameDumper:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def read_video(path: PathLike, max_frames: int | None = None) -> tuple[list[np.ndarray], dict]:
    """Decode a video into a list of H×W×3 uint8 RGB frames (for tests and checks; whole video in
    memory) and its metadata: ``codec`` (e.g. "h264", "mpeg4"), ``fps``, ``size`` (width, height),
    ``n_frames`` (frames decoded), plus ffmpeg's other fields."""
    import imageio_ffmpeg

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: video file not found")
    # imageio_ffmpeg leaves ffmpeg's pipes to the garbage collector once ffmpeg has exited; the
    # resulting ResourceWarnings are emitted here (when the generator finishes) and are harmless.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        reader = imageio_ffmpeg.read_frames(str(p))
        try:
            meta = dict(next(reader))
            width, height = meta["size"]
            frames = []
            for raw in reader:
                frames.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy())
                if max_frames is not None and len(frames) >= max_frames:
                    break
        finally:
            reader.close()
            del reader
    meta["n_frames"] = len(frames)
    meta["size"] = (width, height)
    return frames, meta


# --------------------------------------------------------------------------- reading people's own videos

#: file extensions `blendgan stylize` treats as videos
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif", ".m4v")


def is_video_file(path: PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _video_error(path: PathLike, err: Exception) -> InputVideoError:
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    detail = next(
        (ln for ln in reversed(lines) if "Invalid data" in ln or "could not" in ln.lower()),
        lines[-1] if lines else type(err).__name__,
    )
    return InputVideoError(f"{path}: not a readable video ({detail[:160]}); use an mp4, mov, webm, mkv, avi or gif")


class InputVideoError(BlendGANError):
    """One input video could not be used; a run over several inputs reports it and goes on."""

    exit_code = 1


def probe_video(path: PathLike) -> dict:
    """``fps``, ``size`` (width, height), ``n_frames``, ``duration`` (s) and ``audio`` (codec name or None) of
    a video file, decoding it once to count the frames. Raises ``InputVideoError`` for anything unreadable."""
    import imageio_ffmpeg

    p = Path(path)
    if not p.is_file():
        raise InputVideoError(f"{p}: video file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            reader = imageio_ffmpeg.read_frames(str(p))
            try:
                meta = dict(next(reader))
            finally:
                reader.close()
            n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(p))
    except (OSError, RuntimeError, StopIteration, ValueError) as err:
        raise _video_error(p, err) from None
    if not n_frames or not meta.get("fps"):
        raise InputVideoError(f"{p}: no video frames could be decoded; use an mp4, mov, webm, mkv, avi or gif")
    return {
        "fps": float(meta["fps"]),
        "size": tuple(meta["size"]),
        "n_frames": int(n_frames),
        "duration": n_frames / float(meta["fps"]),
        "audio": meta.get("audio_codec"),
    }


def iter_video_frames(path: PathLike, stop: int | None = None):
    """Stream the frames of a video as H×W×3 uint8 RGB arrays (one at a time; memory does not grow with the
    clip), up to frame ``stop``. Raises ``InputVideoError`` when decoding fails before the end."""
    import imageio_ffmpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            reader = imageio_ffmpeg.read_frames(str(path))
            meta = next(reader)
        except (OSError, RuntimeError, StopIteration) as err:
            raise _video_error(path, err) from None
        width, height = meta["size"]
        try:
            for t, raw in enumerate(reader):
                if stop is not None and t >= stop:
                    break
                yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)
        except (OSError, RuntimeError) as err:
            raise _video_error(path, err) from None
        finally:
            reader.close()


def join_segments(
    segments: list[PathLike],
    target: PathLike,
    fps: float,
    audio_from: PathLike | None = None,
    audio_start: float = 0.0,
    audio_duration: float | None = None,
) -> None:
    """Join raw H.264 segments (``.h264`` files of one size and encoder setting, each starting with a key
    frame) into the mp4 ``target`` without re-encoding the picture, at ``fps`` frames per second, with the
    audio of ``audio_from`` (from ``audio_start`` for ``audio_duration`` seconds, as AAC) when given.
    Raw streams are joined byte by byte, so the frame timing is the constant ``fps`` (an mp4 per segment
    would carry each segment's own end time into the joined file). Written atomically."""

    target = Path(target)
    try:
        _join_segments(segments, target, fps, audio_from, audio_start, audio_duration)
    except OSError as err:  # a full disk, a removed folder: one line, and no partial file under either name
        where = f" ({err.filename})" if err.filename else ""
        raise BlendGANError(f"{target}: joining the video segments failed: {err.strerror or err}{where}") from None


def _join_segments(segments, target, fps, audio_from, audio_start, audio_duration):
    import subprocess

    import imageio_ffmpeg

    tmp = temp_sibling(target)
    stream = tmp.with_name(tmp.name + ".h264")
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-framerate",
        f"{fps:.6f}",
        "-f",
        "h264",
        "-i",
        str(stream),
    ]
    if audio_from is not None:
        cmd += ["-ss", f"{audio_start:.6f}"] + (["-t", f"{audio_duration:.6f}"] if audio_duration else [])
        cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "192k"]
    cmd += ["-c:v", "copy", "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    try:
        with open(stream, "wb") as joined:
            for part in segments:
                joined.write(Path(part).read_bytes())
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BlendGANError(f"{target}: joining the video segments failed ({done.stderr.strip()[:200]})")
        with open(tmp, "rb") as f:  # on disk before the rename, as the atomic writer does
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            stream.unlink()
        with contextlib.suppress(OSError):
            tmp.unlink()
