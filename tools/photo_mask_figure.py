"""Picture of the whole-photo paste-back masks over the bundled photos (docs/photo_mask.jpg).

    python tools/photo_mask_figure.py docs/photo_mask.jpg

Each photo is shown with every face's mask tinted green (the tint's strength is how much of the pixel the
stylized face replaces) and, outlined in white, the aligned square each face was cropped from. Uses dlib's
real detector and landmark model; no generator is needed to draw the masks.
"""

import sys
from pathlib import Path

import cv2
import numpy as np

from blendgan import photo

ROOT = Path(__file__).resolve().parents[1]


def figure(height=360):
    aligner = photo.make_aligner()
    panels = []
    for name in ("astronaut", "grace_hopper"):
        picture = cv2.imread(str(ROOT / "test_imgs" / "photos" / f"{name}.jpg"))
        records = photo.find_faces(aligner, picture)
        for item in records:
            if item.aligned is not None:
                item.mask = photo.head_mask(
                    photo.landmarks_in_crop(item.face.landmarks, item.placement, photo.MASK_SIZE)
                )
        shown = photo.mask_overlay(picture, records)
        for item in records:
            if item.aligned is not None:
                cv2.polylines(
                    shown,
                    [np.round(item.placement.corners - 0.5).astype(np.int32)],
                    True,
                    (255, 255, 255),
                    1,
                    cv2.LINE_AA,
                )
        scale = height / shown.shape[0]
        panels.append(cv2.resize(shown, (round(shown.shape[1] * scale), height), interpolation=cv2.INTER_AREA))
    gap = np.full((height, 8, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1]], axis=1)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "docs/photo_mask.jpg"
    cv2.imwrite(out, figure(), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {out}")
