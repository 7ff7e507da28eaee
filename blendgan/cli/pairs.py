"""`blendgan pairs` = the original generate_image_pairs.py, same flags and outputs."""
from ._common import (RunReport, add_blend_arguments, add_checkpoint_arguments, add_runtime_arguments,
                      add_size_argument, build_pipeline, default_outdir, make_outdir)

HELP = "random faces and their stylized versions: <i:06d>.jpg = [face | stylized face]"
EXAMPLES = """
blendgan pairs --pics 8 --style_img test_imgs/style_imgs/cartoon.jpg --seed 3
blendgan pairs --pics 100 --outdir results/pairs --precision bf16
"""


def add_arguments(parser):
    add_size_argument(parser)
    parser.add_argument("--pics", type=int, default=20, help="number of pairs to write")
    parser.add_argument("--truncation", type=float, default=0.75,
                        help="truncation of the face latents (a value stored in the checkpoint wins)")
    parser.add_argument("--truncation_mean", type=int, default=4096,
                        help="samples for the mean latent when the checkpoint has no latent_avg")
    add_checkpoint_arguments(parser, psp=False)
    parser.add_argument("--style_img", type=str, default=None,
                        help="reference style image (default: a random style code per pair)")
    parser.add_argument("--sample_zs", type=str, default=None,
                        help="torch file of face latents [pics, 1, 512] (default: drawn from --seed)")
    add_blend_arguments(parser, 6)
    parser.add_argument("--outdir", type=str, default=default_outdir("pairs"), help="output folder")
    parser.add_argument("--skip_existing", action="store_true", help="keep outputs that already exist (resume)")
    add_runtime_arguments(parser)


def run(args):
    from .. import jobs

    report = RunReport("pairs")
    bg = build_pipeline(args, need_psp=False)
    outdir = make_outdir(args.outdir)
    jobs.generate_image_pairs(bg, outdir, report, pics=args.pics, truncation=args.truncation,
                              truncation_mean=args.truncation_mean, style_img=args.style_img,
                              sample_zs=args.sample_zs, add_weight_index=args.add_weight_index, seed=args.seed,
                              skip_existing=args.skip_existing)
    return report.summary()
