"""Sheet of face edits (docs/editing.md), made with the recipe (test) weights: one row per direction, the face
moved by -2, -1, 0, +1, +2 standard deviations, unstylized and stylized, each labelled with its mean change
from the unedited picture (grey levels) and the identity cosine of the unstylized face to the unedited one
(dlib descriptors; "-" where dlib finds no face).

    PYTHONPATH=. python tools/edit_sheet.py docs/editing_sheet.jpg [--size 256] [--tile 96] [--top 3]

The recipe weights are a deterministic stand-in for the trained BlendGAN weights (which cannot be downloaded
here): their pictures are not faces, so dlib's measures find nothing to label and the directions shown are
SeFa's (found from the weights alone). The sheet shows what an edit does to the picture relative to the
unedited one (which layers, how much), nothing about what a direction means on trained weights.
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

AMOUNTS = (-2.0, -1.0, 0.0, 1.0, 2.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="picture to write (.jpg or .png)")
    parser.add_argument("--size", type=int, default=256, help="generator size (default: %(default)s)")
    parser.add_argument("--tile", type=int, default=96, help="tile size in the picture (default: %(default)s)")
    parser.add_argument("--top", type=int, default=3, help="SeFa directions shown (default: %(default)s)")
    args = parser.parse_args(argv)

    from controls_figure import build, tile

    from blendgan.editing import sefa
    from blendgan.editing.apply import Edits, default_layers, mapped_samples, projection_std
    from blendgan.editing.directions_file import Direction, DirectionSet
    from blendgan.fitting.adapter import generator_fingerprint
    from blendgan.io import images
    from blendgan.jobs.common import identity_cosine

    bg = build(args.size)
    layers = default_layers(6, bg.n_latent)
    found = sefa.factorize(bg.generator, layers, args.top)
    samples = mapped_samples(lambda z: bg.face_codes_from_z(z)[:, 0])
    directions = DirectionSet(
        {
            f"sefa_{k}": Direction(f"sefa_{k}", v, found.layers, projection_std(samples, v))
            for k, v in enumerate(found.directions)
        },
        generator_fingerprint(bg.generator),
        "sefa",
    )
    codes = bg.encode_face(ROOT / "test_imgs" / "face_imgs" / "astronaut.jpg")
    style = bg.embed_style(ROOT / "test_imgs" / "style_imgs" / "cartoon_astronaut.jpg")
    rows = []
    for name in directions.names():
        plain, styled = [], []
        base = images.tensors_to_bgr(bg.reconstruct(codes))[0].astype(np.float64)
        base_styled = images.tensors_to_bgr(bg.stylize(codes, style))[0].astype(np.float64)
        for amount in AMOUNTS:
            moved = Edits(directions, {name: amount})(codes)
            cosine, _ = identity_cosine(bg, codes, moved)
            face = images.tensors_to_bgr(bg.reconstruct(moved))[0]
            ident = f"id {cosine:.2f}" if cosine == cosine else "id -"
            change = np.abs(face - base).mean()
            plain.append(tile(face, f"{name} {amount:+g} d{change:.1f} {ident}", args.tile))
            out = images.tensors_to_bgr(bg.stylize(moved, style))[0]
            styled.append(tile(out, f"stylized d{np.abs(out - base_styled).mean():.1f}", args.tile))
        rows += [np.concatenate(plain, 1), np.concatenate(styled, 1)]
    sheet = np.concatenate(rows, 0)
    banner = np.full((26, sheet.shape[1], 3), 255, np.uint8)
    text = "TEST (recipe) weights, not trained: SeFa directions, -2 ... +2 std"
    cv2.putText(banner, text, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 160), 1, cv2.LINE_AA)
    images.write_image_atomic(args.out, np.concatenate([banner, sheet], 0))
    print(f"{args.out}: {sheet.shape[1]} x {sheet.shape[0] + 26}")


if __name__ == "__main__":
    main()
