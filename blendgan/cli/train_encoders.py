"""Flags of `blendgan train style-encoder` and `blendgan train psp` (registered in blendgan/cli/train.py).
Nothing heavy is imported here: the trainers are imported when a run starts."""
import dataclasses

STYLE_EPILOG = """examples:
  blendgan train style-encoder --styles aahq/ --outdir runs/style --init pretrained_models/style_encoder.pt
  torchrun --nproc_per_node 8 -m blendgan train style-encoder --styles aahq/ --outdir runs/style \\
      --init vgg19-dcbb9e9d.pth --batch 32 --temperature 0.2
"""

PSP_EPILOG = """examples:
  blendgan train psp --faces ffhq/ --ckpt pretrained_models/blendgan.pt --outdir runs/psp \\
      --id_weights model_ir_se50.pth
  blendgan train psp --faces ffhq/ --ckpt blendgan.pt --outdir runs/psp --init pretrained_models/psp_encoder.pt \\
      --id_lambda 0 --iters 20000        # fine-tune without the identity loss
"""


def _adder(group, defaults):
    def add(flag, help, **kw):
        name = flag.lstrip("-")
        kw.setdefault("default", getattr(defaults, name, None))
        if "type" not in kw and kw.get("action") is None and kw["default"] is not None:
            kw["type"] = type(kw["default"])
        group.add_argument(flag, help=f"{help} (default: %(default)s)", **kw)
    return add


def _run_flags(p, d):
    g = p.add_argument_group("outputs and runtime")
    a = _adder(g, d)
    a("--outdir", "run folder: config.json, checkpoints/NNNNNN.pt, samples/NNNNNN.jpg, log.jsonl")
    a("--resume", "continue the run in --outdir from its highest snapshot with its saved settings (only "
                  "--iters, --device, --*_every, --no_progress may change)", action="store_true")
    a("--batch", "images per process and step")
    a("--iters", "total steps of the run (a resumed run stops where a straight run would)")
    a("--lr", "Adam learning rate")
    a("--snapshot_every", "steps between snapshots (and at the end)")
    a("--sample_every", "steps between sample sheets (and at the end)")
    a("--log_every", "steps between log.jsonl lines")
    a("--seed", "seed of every random draw (data order, views, initial weights)")
    a("--device", "auto (cuda if available, else cpu), cpu, cuda")
    a("--precision", "fp32, bf16 (autocast), fp16 (autocast, CUDA only), fp64 (checks)",
      choices=["fp32", "bf16", "fp16", "fp64"])
    p.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")


def style_encoder_flags(p):
    from ..training.encoder_config import StyleEncoderConfig

    d = StyleEncoderConfig()
    g = p.add_argument_group("data and networks")
    a = _adder(g, d)
    a("--styles", "folder of artworks (any format the other commands read)")
    a("--init", "where the frozen VGG19 (and a starting MLP) come from: style_encoder.pt or blendgan.pt, or "
                "torchvision's vgg19 weights file (vgg19-dcbb9e9d.pth; the MLP then starts random)")
    a("--temperature", "NT-Xent temperature (cosine similarities are divided by it)")
    a("--size", "views are rendered at size x size (inference pools to 256)")
    a("--read_size", "artworks are read at this size, views cropped from them (0: 2 x --size)")
    a("--crop_scale_min", "smallest random crop, as a fraction of the image area")
    a("--max_rotation", "largest random rotation of a view, in degrees")
    a("--frozen_mlp_layers", "first MLP layers kept fixed; 1 freezes the 610304-wide layer (~5 GB less memory)")
    a("--sample_queries", "query artworks (rows) of the retrieval sheet")
    a("--sample_neighbours", "nearest neighbours shown per query")
    a("--sample_pool", "the sheet searches the first this many artworks")
    _run_flags(p, d)


def psp_flags(p):
    from ..training.encoder_config import PSPConfig

    d = PSPConfig()
    g = p.add_argument_group("data and networks")
    a = _adder(g, d)
    a("--faces", "folder of aligned face photos (FFHQ alignment; `blendgan align` makes them)")
    a("--ckpt", "the frozen generator, blendgan.pt (its face branch; its VGG19 serves the perceptual loss)")
    a("--init", "psp_encoder.pt to continue from; empty: a new encoder")
    a("--id_weights", "ArcFace IR-SE50 weights for the identity loss (pSp's model_ir_se50.pth); required "
                      "unless --id_lambda 0")
    a("--vgg_weights", "VGG19 of the perceptual loss (blendgan.pt, style_encoder.pt or torchvision's vgg19 "
                       "file); empty: the one inside --ckpt")
    a("--input_size", "the encoder sees faces pooled to this size (inference pools to 256)")
    g = p.add_argument_group("loss weights (pSp's defaults)")
    a = _adder(g, d)
    a("--l2_lambda", "weight of the pixel MSE")
    a("--lpips_lambda", "weight of the VGG perceptual loss (uncalibrated, not LPIPS); 0 disables it")
    a("--id_lambda", "weight of the ArcFace identity loss; 0 disables it")
    a("--w_norm_lambda", "weight of the W-norm of the codes' offsets from latent_avg; 0 disables it")
    a("--sample_rows", "faces (rows of input | reconstruction) in the sample sheet")
    _run_flags(p, d)


ENCODER_TRAINERS = {
    "style-encoder": ("train the style encoder, self-supervised (contrastive views of artworks, NT-Xent)",
                      style_encoder_flags, STYLE_EPILOG),
    "psp": ("train the pSp face encoder against the frozen generator (L2 + perceptual + identity + W-norm)",
            psp_flags, PSP_EPILOG),
}


def run_encoder_trainer(args):
    """Build the trainer's config from the parsed flags and run it."""
    if args.trainer == "style-encoder":
        from ..training.encoder_config import StyleEncoderConfig as cls
        from ..training.style_encoder_loop import train_style_encoder as train
    else:
        from ..training.encoder_config import PSPConfig as cls
        from ..training.psp_loop import train_psp as train
    names = {f.name for f in dataclasses.fields(cls)}
    cfg = cls(**{k: v for k, v in vars(args).items() if k in names})
    step = train(cfg)
    print(f"trained to step {step}: {cfg.outdir}")
    return 0
