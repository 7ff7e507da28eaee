"""`blendgan train <trainer>`: train networks. `generator` trains the BlendGAN generator (with its Weighted
Blending Module) against three discriminators; `style-encoder` trains the style encoder
(self-supervised, contrastive) and `psp` the pSp face encoder (flags in train_encoders.py).
Several processes: `torchrun --nproc_per_node N -m blendgan train generator ...`."""
import argparse
import os

from .train_encoders import ENCODER_TRAINERS, run_encoder_trainer

HELP = ("train networks: `train generator` (BlendGAN generator + WBM vs three discriminators), `train style-encoder`, "
        "`train psp`; torchrun for multi-GPU")

GENERATOR_EPILOG = """examples:
  blendgan train generator --faces ffhq/ --styles aahq/ --outdir runs/ffhq256 --size 256 \\
      --init stylegan2-ffhq-256.pt --style_encoder_ckpt pretrained_models/style_encoder.pt
  torchrun --nproc_per_node 8 -m blendgan train generator --faces ffhq/ --styles 3d/ --outdir runs/ft \\
      --size 1024 --init pretrained_models/blendgan.pt --batch 4 --iters 20000
  blendgan train generator --outdir runs/ft --resume          # continue from the highest snapshot
"""

EXAMPLES = """
blendgan train generator --faces ffhq/ --styles aahq/ --outdir runs/ffhq256 --size 256 --init stylegan2-ffhq-256.pt --style_encoder_ckpt pretrained_models/style_encoder.pt
blendgan train style-encoder --styles aahq/ --outdir runs/style --init pretrained_models/style_encoder.pt
"""

# trainer name -> (help, function adding its flags)
TRAINERS = {}


def _generator_flags(p):
    from ..training.config import GeneratorConfig

    d = GeneratorConfig()

    g = p.add_argument_group("data and run folder")
    add_to = lambda group: (lambda flag, help, **kw: group.add_argument(  # noqa: E731
        flag, default=kw.pop("default", getattr(d, flag.lstrip("-"), None)), help=f"{help} (default: %(default)s)",
        **kw))
    a = add_to(g)
    a("--faces", "folder of natural face images, FFHQ-aligned (any format the other commands read)", type=str)
    a("--styles", "folder of artworks / style images, aligned the same way", type=str)
    a("--outdir", "run folder: config.json, checkpoints/, samples/, log.jsonl", type=str)
    a("--resume", "continue the run in --outdir from its highest snapshot with its saved settings (only "
                  "--iters, --device, --*_every, --no_progress, --metrics, --inception may change)",
      action="store_true")
    g = p.add_argument_group("networks")
    a = add_to(g)
    a("--size", "image size (power of two)", type=int)
    a("--init", "start from rosinality's StyleGAN2 checkpoint (g/g_ema/d) or a blendgan.pt to fine-tune; "
                "empty: random initialisation", type=str)
    a("--style_encoder_ckpt", "frozen style encoder (style_encoder.pt or a blendgan.pt); needed unless --init "
                              "holds one", type=str)
    a("--channel_multiplier", "StyleGAN2 channel multiplier (2 = config-f)", type=int)
    a("--max_channels", "cap of every layer's width (512 = the official networks; e.g. 64 for smoke tests)", type=int)
    a("--init_embedding", "the new style mapping `embedding` when --init is a plain StyleGAN2: copy of the face "
                          "mapping `style`, or random", choices=["copy", "random"])
    g = p.add_argument_group("optimisation (StyleGAN2 defaults)")
    a = add_to(g)
    a("--batch", "images per process and step", type=int)
    a("--iters", "total steps of the run (a resumed run stops where a straight run would)", type=int)
    a("--lr", "Adam learning rate (betas 0, 0.99; lazy-regularisation corrected)", type=float)
    a("--r1", "R1 weight gamma (StyleGAN2 uses 10 at 1024)", type=float)
    a("--d_reg_every", "lazy R1 interval (steps)", type=int)
    a("--path_regularize", "path-length penalty weight", type=float)
    a("--g_reg_every", "lazy path-length interval (steps)", type=int)
    a("--path_batch_shrink", "path-length batch = batch / this", type=int)
    a("--mixing", "style-mixing probability (face branch, per sample)", type=float)
    a("--face_weight", "weight of the D_face term (natural faces)", type=float)
    a("--style_weight", "weight of the D_style term (artworks vs stylized faces)", type=float)
    a("--style_latent_weight", "weight of the D_style_latent term (stylized face consistent with z_s)", type=float)
    a("--mbstd_group", "minibatch-stddev group size per process", type=int)
    a("--ema_kimg", "g_ema half-life in thousands of images", type=float)
    a("--ema_rampup", "g_ema half-life at most this fraction of the images seen (0 = off)", type=float)
    g = p.add_argument_group("outputs and runtime")
    a = add_to(g)
    a("--snapshot_every", "steps between snapshots checkpoints/NNNNNN.pt (and at the end)", type=int)
    a("--sample_every", "steps between sample grids samples/NNNNNN.jpg (and at the end)", type=int)
    a("--log_every", "steps between log.jsonl lines", type=int)
    a("--sample_rows", "face codes (rows) in the sample grid", type=int)
    a("--sample_styles", "style images (columns) in the sample grid", type=int)
    a("--metrics", "metrics at each snapshot, appended to metric-NAME.jsonl: fid or kid + generated images, "
                   "e.g. fid5k,kid5k (docs/metrics.md; empty: none)", type=str)
    a("--inception", "inception-2015-12-05.pt for --metrics (empty: $BLENDGAN_HOME/inception-2015-12-05.pt)",
      type=str)
    a("--seed", "seed of every random draw (data order, flips, codes, noise, initial weights)", type=int)
    a("--device", "auto (cuda if available, else cpu), cpu, cuda", type=str)
    a("--precision", "fp32, bf16 (autocast), fp16 (autocast + gradient scaler, CUDA only), fp64 (checks)",
      choices=["fp32", "bf16", "fp16", "fp64"])
    p.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")


TRAINERS["generator"] = ("train the BlendGAN generator (+ WBM) against D_face, D_style and D_style_latent",
                         _generator_flags, GENERATOR_EPILOG)
TRAINERS.update(ENCODER_TRAINERS)


def add_arguments(parser):
    sub = parser.add_subparsers(dest="trainer", metavar="TRAINER",
                                help="what to train; `blendgan train TRAINER --help` lists its flags")
    for name, (help_, flags, epilog) in TRAINERS.items():
        p = sub.add_parser(name, help=help_, description=help_, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        flags(p)


def run(args):
    from ..errors import UsageError

    if getattr(args, "trainer", None) in ENCODER_TRAINERS:
        return run_encoder_trainer(args)
    if getattr(args, "trainer", None) != "generator":
        raise UsageError("name a trainer: `blendgan train generator --help`")
    import dataclasses

    from ..training.config import GeneratorConfig
    from ..training.generator_loop import train_generator

    names = {f.name for f in dataclasses.fields(GeneratorConfig)}
    cfg = GeneratorConfig(**{k: v for k, v in vars(args).items() if k in names})
    step = train_generator(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"trained to step {step}: {cfg.outdir}")
    return 0
