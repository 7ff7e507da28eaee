"""The picture at the top of README.md (docs/how_it_works.jpg): how a photo is stylized, drawn from a real run.

    python tools/readme_figure.py docs/how_it_works.jpg

Runs `BlendGAN.stylize_photo` on a bundled photo with a bundled style image and draws its steps: the photo
with the face found, the aligned crop, the pSp codes and the style code (as bars), the generated square and
the photo with the face pasted back. The released weights cannot be downloaded here, so the generator is
the test suite's recipe weights at 64 px (random, not trained): the squares it draws are noise, and the
caption in README.md says so. With real weights, pass --ckpt and --psp_encoder_ckpt.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
H = 300  # panel height
FONT = cv2.FONT_HERSHEY_SIMPLEX


def fit(img, height=H):
    scale = height / img.shape[0]
    return cv2.resize(img, (round(img.shape[1] * scale), height), interpolation=cv2.INTER_AREA)


def label(panel, text):
    out = np.full((panel.shape[0] + 34, panel.shape[1], 3), 255, np.uint8)
    out[34:] = panel
    cv2.putText(out, text, (6, 24), FONT, 0.6, (40, 40, 40), 1, cv2.LINE_AA)
    return out


def bars(values, width, colour):
    """A column of horizontal bars, one per row of `values` (mean absolute value of each code)."""
    rows = len(values)
    panel = np.full((H, width, 3), 255, np.uint8)
    top = (values - values.min()) / max(np.ptp(values), 1e-9)
    step = H / rows
    for i, v in enumerate(top):
        y0, y1 = int(i * step + 2), int((i + 1) * step - 2)
        cv2.rectangle(panel, (6, y0), (6 + int((width - 12) * (0.2 + 0.8 * v)), y1), colour, -1)
    return panel


def arrow(height=H + 34, width=36):
    panel = np.full((height, width, 3), 255, np.uint8)
    y = 34 + H // 2
    cv2.arrowedLine(panel, (4, y), (width - 4, y), (90, 90, 90), 2, cv2.LINE_AA, tipLength=0.4)
    return panel


def pipeline(args):
    from blendgan.pipeline import BlendGAN

    if args.ckpt:
        return BlendGAN.from_checkpoints(args.ckpt, args.psp_encoder_ckpt, device="cpu")
    sys.path.insert(0, str(ROOT / "tests"))
    import helpers

    root = Path(tempfile.mkdtemp(prefix="readme-figure-"))
    files = helpers.RecipeFiles(root)
    return BlendGAN.from_checkpoints(files.blendgan(64), files.psp_encoder(64), device="cpu")


def figure(args):
    from blendgan.io import images

    bg = pipeline(args)
    photo_path = ROOT / "test_imgs" / "photos" / "grace_hopper.jpg"
    style_path = ROOT / "test_imgs" / "style_imgs" / "cartoon_astronaut.jpg"
    result, faces = bg.stylize_photo(photo_path, style_path)
    face = next(f for f in faces if f.stylized is not None)
    photo = images.read_image_bgr(photo_path)
    found = photo.copy()
    cv2.polylines(found, [np.round(face.placement.corners - 0.5).astype(np.int32)], True, (0, 200, 255), 3, cv2.LINE_AA)
    codes = bg.encode_face_bgr(images.resize_square(face.aligned, bg.size))[0].float().abs().mean(1).numpy()
    style = bg.embed_style(style_path)[0].float().numpy().reshape(16, 32).__abs__().mean(1)
    stylized = cv2.resize(face.stylized, (H, H), interpolation=cv2.INTER_NEAREST)
    panels = [
        label(fit(found), "photo: face found"),
        arrow(),
        label(fit(face.aligned), "aligned crop"),
        arrow(),
        label(
            np.concatenate(
                [bars(codes, 90, (200, 120, 40)), np.full((H, 8, 3), 255, np.uint8), bars(style, 70, (60, 60, 220))],
                axis=1,
            ),
            "codes | style",
        ),
        arrow(),
        label(fit(stylized), "generated (test weights)"),
        arrow(),
        label(fit(result[:, :, ::-1]), "pasted back"),
    ]
    top = np.concatenate(panels, axis=1)
    style_row = label(fit(images.read_image_bgr(style_path), 120), "artwork")
    canvas = np.full((top.shape[0] + style_row.shape[0] + 10, top.shape[1], 3), 255, np.uint8)
    canvas[: top.shape[0]] = top
    x = sum(p.shape[1] for p in panels[:4])
    canvas[top.shape[0] + 10 :, x : x + style_row.shape[1]] = style_row
    return canvas


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/how_it_works.jpg")
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--psp_encoder_ckpt", default=None)
    args = parser.parse_args()
    cv2.imwrite(args.out, figure(args), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
