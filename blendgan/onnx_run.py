"""Run exported BlendGAN models on onnxruntime: face photo + artwork -> stylized face, without PyTorch.

    python -m blendgan.onnx_run --models onnx/ --face face.png --style style.jpg --out result.png

Needs only numpy, onnxruntime and Pillow (the `onnx` extra); nothing here imports torch. The folder is
what `blendgan export` wrote (blendgan_onnx.json + .onnx files). Preprocessing is the pipeline's:
RGB, (u / 255 - 0.5) / 0.5, average-pooled to 256x256 exactly like the models' AdaptiveAvgPool2d
(the exported encoders take 256x256 input); output conversion is the original ten2cv
(x * 0.5 + 0.5, * 255, clamp, truncate to uint8).

Images are decoded with Pillow; `blendgan transfer` decodes with OpenCV. For PNG (and other lossless
formats) the pixels are the same; JPEG decoders may differ by a grey level here and there.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .errors import BlendGANError, InputImageError, UsageError
from .io.files import atomic_output

MANIFEST = "blendgan_onnx.json"
ENCODER_INPUT_SIZE = 256
DEFAULT_ADD_WEIGHT_INDEX = 6


# --------------------------------------------------------------------------- fitted style codes (numpy)

STYLE_CODE_FORMAT = "blendgan-style-code"


def _safetensors_header(path):
    import struct

    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 1 << 24:
            raise ValueError("header too large")
        return json.loads(f.read(n)), 8 + n


def is_style_code(path):
    """True for a style_code.safetensors of `blendgan fit-style` (anything else is read as an image)."""
    if Path(path).suffix.lower() != ".safetensors" or not Path(path).is_file():
        return False
    try:
        return _safetensors_header(path)[0].get("__metadata__", {}).get("format") == STYLE_CODE_FORMAT
    except (OSError, ValueError):
        return False


def read_style_code(path, base_fingerprint=None):
    """z_embed [1, 512] float32 of a style-code file, read with numpy; refused (one line) when the exported
    models record another base checkpoint."""
    header, start = _safetensors_header(path)
    meta, entry = header.get("__metadata__", {}), header.get("z_embed")
    if entry is None or entry.get("dtype") != "F32":
        raise UsageError(f"--style {path}: not a style-code file of `blendgan fit-style`")
    if base_fingerprint and meta.get("base_fingerprint") != base_fingerprint:
        raise UsageError(
            f"--style {path}: fitted with another base checkpoint ({meta.get('base_checkpoint', '?')}) "
            "than these exported models"
        )
    begin, end = entry["data_offsets"]
    with open(path, "rb") as f:
        f.seek(start + begin)
        return np.frombuffer(f.read(end - begin), dtype=np.float32).reshape(1, 512).copy()


# --------------------------------------------------------------------------- pre/post-processing (numpy)


def read_rgb(path):
    """An image file as H x W x 3 uint8 RGB (EXIF orientation applied, alpha dropped, grey expanded)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise InputImageError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputImageError(f"{path}: not a readable image ({err})") from None


def rgb_to_input(rgb):
    """H x W x 3 uint8 RGB -> [1, 3, H, W] float32 in [-1, 1], computed as the original cv2ten
    ((u / 255 - 0.5) / 0.5 in float64, then float32)."""
    chw = np.asarray(rgb).transpose(2, 0, 1)
    return np.ascontiguousarray(((chw / 255.0 - 0.5) / 0.5)[None], dtype=np.float32)


def adaptive_avg_pool(x, size=ENCODER_INPUT_SIZE):
    """torch.nn.AdaptiveAvgPool2d((size, size)) on [N, C, H, W]: output cell i averages input rows
    floor(i * H / size) ... ceil((i + 1) * H / size) - 1 (and the same for columns). Summed in float64."""
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    return _pool_axis(_pool_axis(x.astype(np.float64), 2, size), 3, size).astype(x.dtype)


def _pool_axis(x, axis, size):
    length = x.shape[axis]
    i = np.arange(size)
    start = (i * length) // size
    end = -((-(i + 1) * length) // size)  # ceil
    csum = np.cumsum(x, axis=axis)
    csum = np.concatenate([np.zeros_like(np.take(csum, [0], axis=axis)), csum], axis=axis)
    total = np.take(csum, end, axis=axis) - np.take(csum, start, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = size
    return total / (end - start).reshape(shape)


def output_to_rgb(image):
    """[N, 3, H, W] in [-1, 1] -> list of H x W x 3 uint8 RGB (ten2cv: x*0.5+0.5, *255, clamp, truncate)."""
    x = np.asarray(image, dtype=np.float32)
    x = np.clip((x * np.float32(0.5) + np.float32(0.5)) * np.float32(255.0), 0.0, 255.0)
    return [np.ascontiguousarray(img.transpose(1, 2, 0).astype(np.uint8)) for img in x]


def write_rgb(path, rgb):
    """Write an RGB image atomically; the format follows the extension (Pillow)."""
    from PIL import Image

    path = Path(path)
    try:
        with atomic_output(path) as tmp:
            Image.fromarray(rgb).save(tmp, format=_pil_format(path))
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(
            f"{path}: cannot write the image ({err}); use a .png or .jpg name in a writable folder"
        ) from None


def _pil_format(path):
    from PIL import Image

    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: unknown image extension; use .png or .jpg")
    return fmt


# --------------------------------------------------------------------------- models


class OnnxBlendGAN:
    """The exported models of one folder on onnxruntime; numpy in, numpy out.

    `encode_face(rgb)` -> codes [1, n_latent, 512]; `embed_style(rgb)` -> z_embed [1, 512];
    `stylize(codes, z_embed, add_weight_index)` -> [N, 3, size, size] in [-1, 1]."""

    def __init__(self, models_dir, providers=None, threads=None):
        self.dir = Path(models_dir)
        manifest = self.dir / MANIFEST
        if not manifest.is_file():
            raise UsageError(f"{manifest} not found: pass the folder `blendgan export --outdir` wrote")
        try:
            self.info = json.loads(manifest.read_text())
        except (OSError, ValueError) as err:
            raise UsageError(f"{manifest} is not readable JSON ({err}); export again") from None
        self.size = int(self.info["size"])
        self.n_latent = int(self.info["n_latent"])
        self.input_size = int(self.info.get("encoder_input_size", ENCODER_INPUT_SIZE))
        self.dtype = np.float16 if self.info.get("precision") == "fp16" else np.float32
        self.base_fingerprint = self.info.get("base_fingerprint")  # fitted style codes are checked against it
        self.providers = providers
        self.threads = threads
        self._sessions = {}

    def has(self, name):
        return name in self.info.get("models", {})

    def session(self, name):
        """The onnxruntime session of one model (created on first use)."""
        if name not in self._sessions:
            import onnxruntime as ort

            if not self.has(name):
                raise UsageError(f"{self.dir} has no {name} model; export it with blendgan export --parts {name}")
            path = self.dir / self.info["models"][name]
            opts = ort.SessionOptions()
            if name == "style_encoder":
                # prepacking would keep a second copy of the 1.25 GB matrix (measured: 2.7 -> 1.6 GB peak,
                # loading 1.5 -> 0.25 s, one embedding ~10 % slower)
                opts.add_session_config_entry("session.disable_prepacking", "1")
            if self.threads:
                opts.intra_op_num_threads = int(self.threads)
            try:
                self._sessions[name] = ort.InferenceSession(
                    str(path), opts, providers=self.providers or ["CPUExecutionProvider"]
                )
            except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
                raise UsageError(
                    f"{path}: onnxruntime cannot load it ({str(err).splitlines()[0]}); export again"
                ) from None
        return self._sessions[name]

    def release(self, name):
        """Free one model's session (the style encoder holds ~1.3 GB)."""
        self._sessions.pop(name, None)

    def _run(self, name, feeds):
        sess = self.session(name)
        feeds = {k: (v.astype(self.dtype) if v.dtype.kind == "f" else v) for k, v in feeds.items()}
        return sess.run(None, feeds)[0].astype(np.float32)

    def _encoder_input(self, rgb):
        return adaptive_avg_pool(rgb_to_input(rgb), self.input_size)

    def encode_face(self, rgb):
        """pSp codes [1, n_latent, 512] of an aligned face (H x W x 3 uint8 RGB, any size)."""
        return self._run("psp_encoder", {"image": self._encoder_input(rgb)})

    def embed_style(self, rgb):
        """Style code z_embed [1, 512] of an artwork (H x W x 3 uint8 RGB, any size)."""
        return self._run("style_encoder", {"image": self._encoder_input(rgb)})

    def stylize(
        self,
        codes,
        z_embed=None,
        add_weight_index=DEFAULT_ADD_WEIGHT_INDEX,
        *,
        strength=1.0,
        layer_weights=None,
        preserve_color=False,
        style_weights=None,
    ):
        """Images [N, 3, size, size] in [-1, 1]. Without z_embed the baked-in style model is used
        (its add_weight_index was fixed at export).

        The controls are those of `BlendGAN.stylize` (`blendgan.controls`): with any of them, or several
        style codes (a list, or [N, J, 512]) mixed by `style_weights`, generator_controls.onnx runs."""
        from .controls import Controls, blend_weights, step_weights

        controls = Controls(
            strength,
            layer_weights,
            preserve_color,
            None if style_weights is None else tuple(float(k) for k in style_weights),
        )
        several = isinstance(z_embed, (list, tuple)) or (z_embed is not None and np.ndim(z_embed) == 3)
        if z_embed is not None and (several or not controls.blends_default):
            if "add_weight" not in self.info or not self.has("generator_controls"):
                raise UsageError(
                    f"{self.dir} has no generator_controls model (exported before the controls "
                    "existed): export the generator again"
                )
            z = (
                np.stack([np.asarray(v, dtype=np.float32).reshape(-1, 512) for v in z_embed], axis=1)
                if isinstance(z_embed, (list, tuple))
                else np.asarray(z_embed, dtype=np.float32)
            )
            z = z.reshape(z.shape[0], -1, 512)
            k = controls.mix_weights(z.shape[1]) or [1.0]
            amounts = controls.style_amounts(self.n_latent, add_weight_index) or step_weights(
                self.n_latent, add_weight_index
            )  # several styles at the original blend
            a = np.asarray(blend_weights(self.info["add_weight"], amounts), dtype=np.float32)[None]
            n = max(np.shape(codes)[0], z.shape[0])
            codes = np.broadcast_to(np.asarray(codes, dtype=np.float32), (n, *np.shape(codes)[1:]))
            feeds = {
                "codes": np.ascontiguousarray(codes),
                "z_embed": np.ascontiguousarray(np.broadcast_to(z, (n, *z.shape[1:]))),
                "style_weights": np.tile(np.asarray([k], dtype=np.float32), (n, 1)),
                "blend_weights": np.tile(a, (n, 1)),
            }
            return self._run("generator_controls", feeds)
        codes = np.asarray(codes, dtype=np.float32)
        if z_embed is None:
            return self._run("generator_fixed_style", {"codes": codes})
        z_embed = np.asarray(z_embed, dtype=np.float32).reshape(-1, 512)
        if z_embed.shape[0] != codes.shape[0]:
            n = max(z_embed.shape[0], codes.shape[0])
            codes = np.broadcast_to(codes, (n, *codes.shape[1:]))
            z_embed = np.broadcast_to(z_embed, (n, 512))
        index = np.array([add_weight_index], dtype=np.int64)
        return self._run("generator", {"codes": codes, "z_embed": z_embed, "add_weight_index": index})


# --------------------------------------------------------------------------- command


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m blendgan.onnx_run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m blendgan.onnx_run --models onnx/ --face face.png --style style.jpg "
        "--out result.png",
    )
    parser.add_argument("--models", required=True, help="folder written by blendgan export")
    parser.add_argument("--face", required=True, help="aligned face image")
    parser.add_argument(
        "--style",
        "--style_img",
        "--style_code",
        action="append",
        default=None,
        help="style image, or a style_code.safetensors of `blendgan fit-style`; give it several times "
        "to mix styles with --style_weights (default: "
        "the style baked into generator_fixed_style.onnx)",
    )
    parser.add_argument(
        "--style_weights",
        type=float,
        nargs="+",
        default=None,
        help="mix weights of the style images, one each (default: equal)",
    )
    parser.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="style strength in [0, 1]: 0 the face's reconstruction, 1 the full style (default: 1)",
    )
    parser.add_argument(
        "--layer_weights",
        default=None,
        help="per-layer style weights: n_latent values in [0, 1] (comma-separated) or a preset "
        "(all, structure, texture); replaces --add_weight_index (default: none)",
    )
    parser.add_argument(
        "--preserve_color", action="store_true", help="the fine (colour) layers keep the face's code (default: off)"
    )
    parser.add_argument("--out", required=True, help="result image (.png or .jpg)")
    parser.add_argument(
        "--add_weight_index",
        type=int,
        default=DEFAULT_ADD_WEIGHT_INDEX,
        help="Weighted Blending Module index (default: %(default)s; ignored for a baked-in style)",
    )
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        from .controls import Controls

        weights = tuple(args.style_weights) if args.style_weights is not None else None
        if weights is not None and len(weights) != len(args.style or []):
            raise UsageError(
                f"--style_weights: {len(weights)} weights for {len(args.style or [])} --style "
                "image(s); give one weight per --style"
            )
        controls = Controls(args.strength, args.layer_weights, args.preserve_color, weights)
        models = OnnxBlendGAN(args.models, threads=args.threads)
        controls.layer_vector(models.n_latent)  # a wrong-length vector fails before any model runs
        face = read_rgb(args.face)
        z_embed = None
        if args.style:
            z_embed = [
                read_style_code(p, models.base_fingerprint) if is_style_code(p) else models.embed_style(read_rgb(p))
                for p in args.style
            ]
            z_embed = z_embed[0] if len(z_embed) == 1 else z_embed
            models.release("style_encoder")
        elif not models.has("generator_fixed_style"):
            raise UsageError(
                f"--style is required: {args.models} has no baked-in style (export with --style_img for one)"
            )
        codes = models.encode_face(face)
        models.release("psp_encoder")
        if z_embed is None and not controls.blends_default:
            raise UsageError(
                "--strength, --layer_weights and --preserve_color need --style (the baked-in style "
                "model has fixed blend weights)"
            )
        image = models.stylize(
            codes,
            z_embed,
            args.add_weight_index,
            strength=controls.strength,
            layer_weights=controls.layer_weights,
            preserve_color=controls.preserve_color,
            style_weights=controls.style_weights,
        )
        write_rgb(args.out, output_to_rgb(image)[0])
    except BlendGANError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
