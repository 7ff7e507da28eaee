"""Picture of the stylization controls (docs/controls.md), made with the recipe (test) weights.

Row 1: the face as the generator sees it (its reconstruction), then the result at strength 0, 0.25, 0.5,
0.75, 1 (add_weight_index 6). Row 2: the style image, then strength 1 with and without --preserve_color,
the presets `structure` and `texture`, and a 50/50 mix with a second style.

    PYTHONPATH=. python tools/controls_figure.py docs/controls.png [--size 256] [--tile 128]

The recipe weights are a deterministic stand-in for the trained BlendGAN weights (which cannot be
downloaded here), so the pictures are not faces in an art style: they show what each control does to the
image relative to the others, nothing about quality. Drawn with OpenCV only.
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def build(size):
    from blendgan import BlendGAN, Generator, PSPEncoder
    from blendgan.models.loading import from_state_dict

    import helpers

    g = from_state_dict(lambda: Generator(size), helpers.generator_state_dict(size))
    sd, latent_avg = helpers.psp_state_dict(size)
    psp = from_state_dict(
        lambda: PSPEncoder(latent_avg.shape[0]),
        {**{f"encoder.{k}": v for k, v in sd.items()}, "latent_avg": latent_avg},
    )
    return BlendGAN.from_models(g, psp, device="cpu")


def tile(bgr, label, size):
    img = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    out = np.full((size + 22, size, 3), 255, np.uint8)
    out[22:] = img
    cv2.putText(out, label, (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("--size", type=int, default=256, help="generator size (default: %(default)s)")
    parser.add_argument("--tile", type=int, default=128, help="tile size in the picture (default: %(default)s)")
    args = parser.parse_args(argv)

    from blendgan.io import images

    bg = build(args.size)
    face_path = ROOT / "test_imgs" / "face_imgs" / "astronaut.jpg"
    style_paths = sorted((ROOT / "test_imgs" / "style_imgs").glob("*.*"))[:2]
    face = images.resize_square(images.read_image_bgr(face_path), bg.size)
    style = images.resize_square(images.read_image_bgr(style_paths[0]), bg.size)
    codes = bg.encode_face_bgr(face)
    z = bg.embed_style_bgr(style)
    z2 = bg.embed_style_bgr(images.resize_square(images.read_image_bgr(style_paths[1]), bg.size))

    def bgr(t):
        return images.tensor_to_bgr(t)

    n = args.tile
    row1 = [tile(bgr(bg.reconstruct(codes)), "reconstruction", n)]
    row1 += [tile(bgr(bg.stylize(codes, z, strength=s)), f"strength {s:g}", n) for s in (0, 0.25, 0.5, 0.75, 1)]
    row2 = [
        tile(style, "style", n),
        tile(bgr(bg.stylize(codes, z)), "colour: style's", n),
        tile(bgr(bg.stylize(codes, z, preserve_color=True)), "colour: face's", n),
        tile(bgr(bg.stylize(codes, z, layer_weights="structure")), "structure", n),
        tile(bgr(bg.stylize(codes, z, layer_weights="texture")), "texture", n),
        tile(bgr(bg.mix_styles(codes, [z, z2], [0.5, 0.5])), "mix 50/50", n),
    ]
    gap = np.full((row1[0].shape[0], 4, 3), 255, np.uint8)
    rows = [np.concatenate([x for t in row for x in (t, gap)][:-1], axis=1) for row in (row1, row2)]
    caption = np.full((24, rows[0].shape[1], 3), 255, np.uint8)
    cv2.putText(
        caption,
        f"test (recipe) weights, {bg.size} px: not trained, the pictures only compare the controls",
        (3, 17),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (60, 60, 60),
        1,
        cv2.LINE_AA,
    )
    picture = np.concatenate([rows[0], np.full((6, rows[0].shape[1], 3), 255, np.uint8), rows[1], caption])
    images.write_image_atomic(args.out, picture)
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]})")


if __name__ == "__main__":
    main()
