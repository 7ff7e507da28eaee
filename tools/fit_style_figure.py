"""The before/after sheet of the test run of `blendgan fit-style` (docs/fit_style_sheet.jpg).

    python tools/fit_style_figure.py docs/fit_style_sheet.jpg

Runs the fit of tests/test_fit_style.py (recipe weights at 64 px, 3 steps of each stage, the bundled cartoon
as the reference) in a temporary folder and copies its final sample sheet, enlarged 3x without smoothing.
The recipe weights are not trained, so the pictures are noise: the sheet shows the layout and that every
column differs, not what a real fit looks like.
"""

import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(dest):
    from blendgan.cli import main as cli

    import helpers

    with tempfile.TemporaryDirectory() as tmp:
        files = helpers.RecipeFiles(Path(tmp) / "weights")
        run = Path(tmp) / "run"
        code = cli(
            [
                "fit-style",
                str(ROOT / "test_imgs/style_imgs/cartoon_astronaut.jpg"),
                "--outdir",
                str(run),
                "--ckpt",
                str(files.blendgan(64)),
                "--psp_encoder_ckpt",
                str(files.psp_encoder(64)),
                "--iters",
                "6",
                "--code_steps",
                "3",
                "--batch",
                "1",
                "--no_progress",
            ]
        )
        if code:
            return code
        sheet = cv2.imread(str(run / "samples" / "000006.jpg"))
        cv2.imwrite(
            str(dest),
            cv2.resize(sheet, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "fit_style_sheet.jpg"))
