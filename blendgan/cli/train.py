"""`blendgan train <trainer>`: train networks. `generator` trains the BlendGAN generator (with its Weighted
Blending Module) against three discriminators; `style-encoder` trains the style encoder (self-supervised,
contrastive) and `psp` the pSp face encoder. Several processes: `torchrun --nproc_per_node N -m blendgan train
generator ...`.

Every trainer's flags are made from its settings dataclass (blendgan/training/config.py: the help text, group,
choices and range of each setting live in its field), so all three register their flags the same way. A flag
left out is absent from the parsed arguments (argparse.SUPPRESS): a new run takes the setting's default, a
resumed run keeps its saved value. Nothing heavy is imported here: the trainers are imported when a run starts.
"""

import argparse
import dataclasses
import os

HELP = (
    "train networks: `train generator` (BlendGAN generator + WBM vs three discriminators), `train style-encoder`, "
    "`train psp`; torchrun for multi-GPU"
)

EXAMPLES = """
blendgan train generator --faces ffhq/ --styles aahq/ --outdir runs/ffhq256 --size 256 --init stylegan2-ffhq-256.pt --style_encoder_ckpt pretrained_models/style_encoder.pt
blendgan train style-encoder --styles aahq/ --outdir runs/style --init pretrained_models/style_encoder.pt
"""  # noqa: E501 (example command lines are kept whole)

GENERATOR_EPILOG = """examples:
  blendgan train generator --faces ffhq/ --styles aahq/ --outdir runs/ffhq256 --size 256 \\
      --init stylegan2-ffhq-256.pt --style_encoder_ckpt pretrained_models/style_encoder.pt
  torchrun --nproc_per_node 8 -m blendgan train generator --faces ffhq/ --styles 3d/ --outdir runs/ft \\
      --size 1024 --init pretrained_models/blendgan.pt --batch 4 --iters 20000
  blendgan train generator --outdir runs/ft --resume          # continue from the highest snapshot
"""

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

# trainer name -> (help, settings class name in blendgan.training.config, epilog, "module:function" that trains)
TRAINERS = {
    "generator": (
        "train the BlendGAN generator (+ WBM) against D_face, D_style and D_style_latent",
        "GeneratorConfig",
        GENERATOR_EPILOG,
        "generator_loop:train_generator",
    ),
    "style-encoder": (
        "train the style encoder, self-supervised (contrastive views of artworks, NT-Xent)",
        "StyleEncoderConfig",
        STYLE_EPILOG,
        "style_encoder_loop:train_style_encoder",
    ),
    "psp": (
        "train the pSp face encoder against the frozen generator (L2 + perceptual + identity + W-norm)",
        "PSPConfig",
        PSP_EPILOG,
        "psp_loop:train_psp",
    ),
}


def _config_class(trainer):
    from ..training import config

    return getattr(config, TRAINERS[trainer][1])


def add_config_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple = ()) -> None:
    """One flag per field of the settings dataclass `cls` (but those in `skip`), in the groups of
    blendgan.training.config.GROUPS, with the field's help and default; flags not given stay out of the parsed
    arguments."""
    from ..training.config import GROUPS

    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta, default = f.metadata, f.default
        group = groups[meta["group"]]
        if f.name == "progress":  # an on-by-default switch: the flag turns it off
            group.add_argument(
                "--no_progress",
                dest="progress",
                action="store_const",
                const=False,
                default=argparse.SUPPRESS,
                help=meta["help"],
            )
        elif isinstance(default, bool):
            group.add_argument(
                f"--{f.name}", action="store_const", const=True, default=argparse.SUPPRESS, help=meta["help"]
            )
        else:
            group.add_argument(
                f"--{f.name}",
                type=type(default),
                choices=meta["choices"],
                default=argparse.SUPPRESS,
                help=f"{meta['help']} (default: {default})",
            )
    for group in groups.values():  # argparse lists empty groups too
        if not group._group_actions:
            parser._action_groups.remove(group)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="trainer", metavar="TRAINER", help="what to train; `blendgan train TRAINER --help` lists its flags"
    )
    for name, (help_, _, epilog, _) in TRAINERS.items():
        p = sub.add_parser(
            name, help=help_, description=help_, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        add_config_flags(p, _config_class(name))


def config_from_args(cls: type, args: argparse.Namespace) -> tuple:
    """(settings, names of the settings given on the command line)."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return cls(**given), set(given)


def run(args: argparse.Namespace) -> int:
    import importlib

    from ..errors import UsageError

    trainer = getattr(args, "trainer", None)
    if trainer not in TRAINERS:
        raise UsageError("name a trainer: `blendgan train generator --help`")
    cfg, given = config_from_args(_config_class(trainer), args)
    module, function = TRAINERS[trainer][3].split(":")
    train = getattr(importlib.import_module(f"..training.{module}", __package__), function)
    step = train(cfg, given=given)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"trained to step {step}: {cfg.outdir}")
    return 0
