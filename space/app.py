"""The blendgan web app as a Hugging Face Space: fetch the weights at start, then serve `blendgan demo`.

Space variables (Settings -> Variables), all optional except where the weights come from:

    BLENDGAN_WEIGHTS_URL  where the weights come from, tried in order: hf://owner/repo[@revision] (a Hub
                          repository holding blendgan.pt and psp_encoder.pt), mirror URLs, `drive`
                          (default: Google Drive, which often refuses servers: set a Hub repository)
    BLENDGAN_HOME         the folder they are kept in (default: ./pretrained_models; /data with persistent storage)
    BLENDGAN_DEVICE       auto, cpu or cuda (default: auto)
    BLENDGAN_PRECISION    fp32, bf16 or fp16 (default: fp32)
    HOST, PORT            where to listen (default: 0.0.0.0:7860, what Spaces expect)

A failed download does not stop the Space: the page opens and names the missing file.
"""

import os
import sys


def demo_argv(paths: dict, environ=os.environ) -> list:
    """The `blendgan demo` command line of this Space."""
    return [
        "demo",
        "--host",
        environ.get("HOST", "0.0.0.0"),
        "--port",
        environ.get("PORT", "7860"),
        "--ckpt",
        str(paths["blendgan"]),
        "--psp_encoder_ckpt",
        str(paths["psp_encoder"]),
        "--device",
        environ.get("BLENDGAN_DEVICE", "auto"),
        "--precision",
        environ.get("BLENDGAN_PRECISION", "fp32"),
        "--no_download",
    ]


def fetch_weights() -> dict:
    """{name: path} of blendgan.pt and psp_encoder.pt, downloaded from the sources when missing."""
    from blendgan.errors import BlendGANError
    from blendgan.weights import default_weight_path
    from blendgan.weights.download import download_weights

    names = ("blendgan", "psp_encoder")
    try:
        return download_weights(list(names))
    except BlendGANError as err:
        print(f"warning: {err}", flush=True)  # the page opens and says which file is missing
        return {name: default_weight_path(name) for name in names}


def main() -> int:
    from blendgan.cli import main as blendgan

    return blendgan(demo_argv(fetch_weights()))


if __name__ == "__main__":
    sys.exit(main())
