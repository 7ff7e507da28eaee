"""`blendgan pairs` = the original generate_image_pairs.py (spec 7.1), same flags and outputs."""
from .. import jobs
from ._common import (RunReport, add_checkpoint_arguments, add_runtime_arguments, add_size_argument, build_pipeline,
                      default_outdir, make_outdir)

HELP = "random faces and their stylized versions: <i:06d>.jpg = [face | stylized face]"


def add_arguments(parser):
    add_size_argument(parser)
    parser.add_argument("--pics", type=int, default=20, help="number of pairs")
    parser.add_argument("--truncation", type=float, default=0.75,
                        help="truncation of the face latents (a value stored in the checkpoint wins)")
    parser.add_argument("--truncation_mean", type=int, default=4096,
                        help="samples for the mean latent when the checkpoint has no latent_avg")
    add_checkpoint_arguments(parser, psp=False)
    parser.add_argument("--style_img", type=str, default=None,
                        help="reference style image; without it a random style code is used")
    parser.add_argument("--sample_zs", type=str, default=None, help="torch file of face latents [pics, 1, 512]")
    parser.add_argument("--add_weight_index", type=int, default=6)
    parser.add_argument("--channel_multiplier", type=int, default=2)
    parser.add_argument("--outdir", type=str, default=default_outdir("pairs"))
    parser.add_argument("--skip_existing", action="store_true", help="keep outputs that already exist (resume)")
    add_runtime_arguments(parser)


def run(args):
    report = RunReport("pairs")
    bg = build_pipeline(args, need_psp=False)
    outdir = make_outdir(args.outdir)
    jobs.generate_image_pairs(bg, outdir, report, pics=args.pics, truncation=args.truncation,
                              truncation_mean=args.truncation_mean, style_img=args.style_img,
                              sample_zs=args.sample_zs, add_weight_index=args.add_weight_index, seed=args.seed,
                              skip_existing=args.skip_existing)
    return report.summary()
