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

from blendgan.errors import BlendGANError, UsageError
from blendgan.files import temp_sibling
from blendgan.images import write_image_atomic

PathLike = Union[str, "os.PathLike[str]"]

#: Codec choices: "h264" (libx264, yuv420p, plays in browsers) or "mp4v" (MPEG-4 Part 2 through
#: OpenCV, what the original's XVID request ends up as in an .mp4 container).
CODECS = ("h264", "mp4v")


class VideoWriter:
    """Context manager writing RGB frames of a fixed size to ``path``.

    ``codec="h264"``: libx264 through ``imageio_ffmpeg.write_frames``, pix_fmt yuv420p, constant
    quality ``crf`` (18: visually near-lossless), ``+faststart`` so browsers can start playback
    before the download ends. yuv420p needs even sizes: an odd width or height is padded with one
    black column/row by the encoder (the video is then one pixel wider/taller).
    ``codec="mp4v"``: ``cv2.VideoWriter`` with fourcc ``mp4v``; frames are written as BGR.

    >>> with VideoWriter("out.mp4", 768, 256) as vw:   # doctest: +SKIP
    ...     for frame in frames:
    ...         vw.write(frame)
    """

    def __init__(self, path: PathLike, width: int, height: int, fps: float = 30,
                 codec: str = "h264", crf: int = 18):
        if codec not in CODECS:
            raise UsageError(f"unknown video codec {codec!r}; choose one of {', '.join(CODECS)}")
        if width <= 0 or height <= 0:
            raise ValueError(f"video size must be positive, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height, self.fps, self.codec, self.crf = int(width), int(height), fps, codec, crf
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

        output_params = ["-crf", str(self.crf), "-preset", "medium", "-movflags", "+faststart"]
        if self.width % 2 or self.height % 2:
            output_params += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        gen = imageio_ffmpeg.write_frames(
            str(self._tmp), (self.width, self.height), pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            fps=self.fps, codec="libx264", quality=None, macro_block_size=1,
            ffmpeg_log_level="error", output_params=output_params,
        )
        gen.send(None)  # starts ffmpeg
        return gen

    def _open_mp4v(self):
        writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(self.fps),
                                 (self.width, self.height))
        if not writer.isOpened():
            raise BlendGANError(f"{self.path}: OpenCV could not open an mp4v video writer "
                                "(OpenCV built without FFmpeg?); use codec h264")
        return writer

    def write(self, frame_rgb: np.ndarray) -> None:
        """Append one H×W×3 uint8 RGB frame (its size must be the writer's size)."""
        if self._encoder is None:
            raise RuntimeError("VideoWriter is not open (use it in a with-block)")
        if frame_rgb.shape != (self.height, self.width, 3) or frame_rgb.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 {self.height}x{self.width}x3, got "
                             f"{frame_rgb.dtype} {'x'.join(map(str, frame_rgb.shape))}")
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
                raise UsageError(f"{self.folder}: cannot create the frames folder "
                                 f"({err.strerror or err})") from None
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
