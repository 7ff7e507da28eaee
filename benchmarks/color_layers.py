"""Which layers carry the colour: the per-layer mean colour shift against the reconstruction (issue 23).

For each generator size, on the recipe (test) weights: the face's reconstruction (strength 0), then the face
stylized through ONE layer at a time (per-layer style weights = one-hot vector, strength 1, every other layer
keeps the face's code). The mean colour shift of layer i is the distance between the mean RGB colours of that
image and of the reconstruction ([-1, 1] scale, averaged over the styles). The last lines give the factor by
which --preserve_color (`blendgan.controls.color_layers`) brings the mean colour closer to the reconstruction's.

    PYTHONPATH=. python benchmarks/color_layers.py --sizes 64 256 512

The recipe weights are a deterministic stand-in for trained ones: the numbers say how *these* weights
behave; with the real BlendGAN weights the colour layers are expected to be the fine ones (StyleGAN2's
coarse/middle/fine split), which is what the choice follows where the measurement agrees.
"""

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def build(size):
    from blendgan import BlendGAN, Generator, PSPEncoder
    from blendgan.models.loading import from_state_dict

    import helpers

    g = from_state_dict(lambda: Generator(size), helpers.generator_state_dict(size))
    sd, latent_avg = helpers.psp_state_dict(size)
    psp_sd = {**{f"encoder.{k}": v for k, v in sd.items()}, "latent_avg": latent_avg}
    psp = from_state_dict(lambda: PSPEncoder(latent_avg.shape[0]), psp_sd)
    return BlendGAN.from_models(g, psp, device="cpu")


def shift(image, reference):
    image, reference = image.clamp(-1, 1), reference.clamp(-1, 1)  # the colours a picture can show
    return float((image.mean((2, 3)) - reference.mean((2, 3))).norm(dim=1).mean())


def measure(size, n_styles):
    from blendgan.controls import color_layers, layer_resolutions
    from blendgan.io import images

    bg = build(size)
    faces = sorted((ROOT / "test_imgs" / "face_imgs").glob("*.*"))[:1]
    styles = sorted((ROOT / "test_imgs" / "style_imgs").glob("*.*"))[:n_styles]
    codes = bg.encode_face_bgr(images.read_image_bgr(faces[0]))
    zs = [bg.embed_style_bgr(images.read_image_bgr(p)) for p in styles]
    recon = bg.reconstruct(codes)
    n = bg.n_latent
    res = layer_resolutions(n)
    print(f"\n## {size} px ({n} layers), {len(zs)} styles, face {faces[0].name}\n")
    print("| layer | resolution | mean colour shift |")
    print("|---:|---:|---:|")
    for i in range(n):
        one_hot = [1.0 if j == i else 0.0 for j in range(n)]
        value = sum(shift(bg.stylize(codes, z, layer_weights=one_hot), recon) for z in zs) / len(zs)
        print(f"| {i} | {res[i]} | {value:.4f} |")
    for awi in (6, 0):
        plain = [shift(bg.stylize(codes, z, add_weight_index=awi), recon) for z in zs]
        kept = [shift(bg.stylize(codes, z, add_weight_index=awi, preserve_color=True), recon) for z in zs]
        factors = [p / k for p, k in zip(plain, kept)]
        print(
            f"\nadd_weight_index {awi}, colour layers {color_layers(n)}: shift {sum(plain) / len(plain):.4f} -> "
            f"{sum(kept) / len(kept):.4f} with --preserve_color; closer by x{min(factors):.2f} (worst style) "
            f"... x{max(factors):.2f}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--styles", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    for size in args.sizes:
        measure(size, args.styles)


if __name__ == "__main__":
    main()
