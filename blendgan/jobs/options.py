"""The jobs' option objects: what each job does besides the stylization controls, with the commands' defaults.

Torch-free (only `blendgan.defaults` is imported), so that the command-line help reads its defaults from here.
A job takes one of these, and also its fields as keywords (`blendgan.jobs.common.split_options`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

from ..defaults import (
    ADD_WEIGHT_INDEX,
    DETECT_SIZE,
    LATENT_AVG_SAMPLES,
    MIN_FACE,
    MIN_SCORE,
    SEGMENT_FRAMES,
    VIDEO_ADD_WEIGHT_INDEX,
    VIDEO_SMOOTH,
)

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class TransferOptions:
    """What a transfer run does besides the stylization controls (`BlendGAN.stylize`'s keywords)."""

    add_weight_index: int = ADD_WEIGHT_INDEX
    skip_existing: bool = False
    style_weights: Optional[Sequence[float]] = None  # one per style: mix all the styles into one
    refine: int = 0  # > 0: each face's codes are refined for that many steps (`face_codes`)
    edit: object = None  # a `blendgan.editing.apply.Edits`: each face's codes are moved by it before stylizing


@dataclass(frozen=True)
class PairsOptions:
    """What a pairs run makes; the defaults are the original program's."""

    pics: int = 20
    truncation: float = 0.75  # the checkpoint's value wins when it has one, as in the original
    truncation_mean: int = LATENT_AVG_SAMPLES  # latents averaged for the truncation centre without latent_avg
    style_img: Union[PathLike, Sequence[PathLike], None] = None  # one image, or several mixed (style_weights)
    style_dir: Optional[PathLike] = None  # one image of this folder per pair
    style_per_pair: bool = False  # latent-guided: a random style code per pair (default: one for the run)
    sample_zs: Optional[PathLike] = None  # a torch file of [pics, 1, 512] face latents
    add_weight_index: Union[int, Tuple[int, int], str] = ADD_WEIGHT_INDEX  # an int, (low, high) or '4-8'
    seed: int = 0
    skip_existing: bool = False
    layout: str = "pairs"  # pairs, split or both (pairset.LAYOUTS)
    shard_size: int = 0  # > 0: tar shards of this many pairs
    random_noise: bool = False  # per-pair noise maps instead of the generator's stored ones
    strength: Union[float, Tuple[float, float]] = (1.0, 1.0)  # a value or a (low, high) range drawn per pair
    layer_weights: object = None
    preserve_color: bool = False
    style_weights: Optional[Sequence[float]] = None
    edit: object = None  # a `blendgan.editing.apply.Edits`: both images of a pair drawn from the edited face codes


@dataclass(frozen=True)
class MorphVideoOptions:
    """What a morph-video run does besides the stylization controls (`space` and `BlendGAN.stylize`'s)."""

    add_weight_index: int = VIDEO_ADD_WEIGHT_INDEX
    seed: int = 0  # the original's global `random` seeded at import
    codec: str = "h264"  # h264 (browser-playable) or mp4v (the original's MPEG-4 Part 2)
    frames_dir: Optional[PathLike] = None  # also every frame as PNG to FRAMES_DIR/<face>/000000.png ...
    skip_existing: bool = False
    edit: object = None  # a `blendgan.editing.apply.Edits`: each face's codes are moved by it before stylizing


@dataclass(frozen=True)
class PhotoOptions:
    """Which faces of a photo are stylized and what is written besides the result; the defaults are the
    `blendgan stylize` command's."""

    faces: Union[str, int] = "all"  # "all", "largest" or K (the K largest)
    min_face: float = MIN_FACE  # aligned squares smaller than this many photo pixels are skipped
    min_score: float = MIN_SCORE  # detections scoring below this are ignored
    detect_size: int = DETECT_SIZE  # faces are searched on a copy at most this many pixels long
    keep_faceless: bool = False  # write photos without a face unchanged instead of failing them
    save_crops: bool = False  # also each face's aligned and stylized squares
    panel: bool = False  # also a [photo | result] picture
    skip_existing: bool = False
    refine: int = 0  # > 0: each face's codes are refined for that many steps first
    max_resolution: Union[str, int, None] = None  # "auto" or PX: stop the generator at the size the faces need
    edit: object = None  # a `blendgan.editing.apply.Edits`: each face's codes are moved by it before stylizing


@dataclass(frozen=True)
class VideoOptions:
    """Which faces of a video are stylized, over which span, how they are smoothed and how the work is cut;
    the defaults are the `blendgan stylize` command's."""

    faces: Union[str, int] = "all"  # "all", "largest" or K (the K largest of each frame)
    min_face: float = MIN_FACE
    min_score: float = MIN_SCORE
    smooth: float = VIDEO_SMOOTH  # Gaussian width in frames over time of landmarks and codes (0: off)
    start: float = 0.0  # first second of the source to use
    end: Optional[float] = None  # up to this second (None: the end)
    skip_existing: bool = False  # keep finished videos; resume a killed one from its work folder
    segment_frames: int = SEGMENT_FRAMES  # the unit that processes share and that a killed run resumes from
    encode_every: int = 1  # encode every K-th face of a track (and its last); the others are interpolated
    # 5: the same tracks as detecting every frame, landmarks within the detector's own jitter (docs/video.md)
    detect_every: int = 5  # run the face detector on every N-th frame (and where tracks need it); follow between
    max_resolution: Union[str, int, None] = None  # "auto" or PX: stop the generator at the size the faces need
    x264_preset: str = "medium"  # the H.264 encoder's speed preset (`--fast`: "faster"; io.video.X264_PRESETS)
    frames_dir: Optional[PathLike] = None  # also every stylized frame as PNG to FRAMES_DIR/<video>/000000.png
    edit: object = None  # a `blendgan.editing.apply.Edits`: the same move of every face's codes in every frame


@dataclass(frozen=True)
class DirectionsOptions:
    """What a directions run computes; the defaults are the `blendgan directions` command's."""

    method: str = "labels"  # labels (sampled faces measured by dlib) or sefa (the weights alone)
    n: int = 2000  # faces sampled and labelled (labels)
    seed: int = 0
    top: int = 10  # directions kept (sefa)
    add_weight_index: int = ADD_WEIGHT_INDEX  # the directions move the layers before this one
    truncation: float = 0.7  # sampled faces are pulled this far toward the mean face (more of them are detected)
    label_size: int = 256  # faces are measured at this size
    chunk: int = 64  # faces per part file: the unit that processes share and that a killed run resumes from
    skip_existing: bool = False  # keep a finished file; resume a killed run from its parts
