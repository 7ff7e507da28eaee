"""`blendgan transfer` = the original style_transfer_folder.py, same flags and outputs."""
from ._common import add_folder_job_arguments, start_folder_job

HELP = "stylize every face image with every style image: <face>_v_<style>.jpg = [face | style | result]"
EXAMPLES = """
blendgan transfer --input_img_path test_imgs/face_imgs --style_img_path test_imgs/style_imgs
blendgan transfer --align --input_img_path photos/ --style_img_path painting.jpg --outdir results/mine
"""


def add_arguments(parser):
    from ..defaults import ADD_WEIGHT_INDEX

    add_folder_job_arguments(parser, "transfer", add_weight_index=ADD_WEIGHT_INDEX)


def run(args):
    from .. import jobs

    report, faces, styles, aligner, bg, outdir = start_folder_job(args, "transfer")
    jobs.style_transfer_folder(bg, faces, styles, outdir, report, add_weight_index=args.add_weight_index,
                               skip_existing=args.skip_existing, aligner=aligner)
    return report.summary()
