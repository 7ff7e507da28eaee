"""The user jobs, one module each, as small sets of functions over a `BlendGAN` pipeline.

| module | job | command |
| --- | --- | --- |
| `transfer` | aligned faces x styles (the original style_transfer_folder.py) | `transfer` |
| `pairs` | (face, stylized face) pairs at any scale (the original generate_image_pairs.py) | `pairs` |
| `morph_video` | a face morphing through 8 styles (the original gen_video.py) | `video` |
| `photos` | your photos, every face stylized and pasted back | `stylize` |
| `video` | your videos, faces tracked and smoothed over time, with their sound | `stylize` |
| `directions` | directions in W to edit faces with, found in the checkpoint (SeFa, or dlib labels) | `directions` |

Each job takes resolved inputs, an option object (`options`: frozen dataclasses whose defaults are the commands';
a job also takes their fields as keywords) and the stylization controls as keywords; it writes its outputs
atomically and records what happened in a report (`common.Report`). The commands in `blendgan.cli` parse flags
into these. The names below are loaded on first use, so that `blendgan.jobs.options` stays torch-free.
"""

_LAZY = {
    "Report": "common",
    "MorphVideoOptions": "options",
    "PairsOptions": "options",
    "PhotoOptions": "options",
    "TransferOptions": "options",
    "VideoOptions": "options",
    "DirectionsOptions": "options",
    "compute_directions": "directions",
    "frames_per_video": "morph_video",
    "gen_video": "morph_video",
    "video_alphas": "morph_video",
    "video_frames": "morph_video",
    "generate_image_pairs": "pairs",
    "load_sample_zs": "pairs",
    "stylize_photos": "photos",
    "style_transfer_folder": "transfer",
    "stylize_video": "video",
    "stylize_videos": "video",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
