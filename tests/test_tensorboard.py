"""TensorBoard event files beside log.jsonl: written and readable when the package is installed (the test extra
has it), nothing written and nothing failing when it is absent (hidden from the import system here)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from blendgan.training import tensorboard as tb
from blendgan.training.runs import read_log

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_helpers  # noqa: E402
from helpers import run_cli  # noqa: E402


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def hide_tensorboard(monkeypatch):
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now fails


def test_board_writes_scalars_lists_and_images(tmp_path):
    board = tb.Board(tmp_path, enabled=True)
    sheet = np.zeros((8, 16, 3), np.uint8)
    sheet[..., 2] = 255  # red in BGR
    for step in (1, 2):
        board.scalars({"step": step, "d_total": 0.5 * step, "add_weight": [0.25, 1.0], "augment_p_style": 0.1}, step)
    board.image("samples", sheet, 2)
    board.close()
    acc = events(tmp_path / tb.FOLDER)
    assert [(e.step, e.value) for e in acc.Scalars("loss/d_total")] == [(1, 0.5), (2, 1.0)]
    assert [e.value for e in acc.Scalars("train/add_weight/1")] == [1.0, 1.0]
    assert acc.Scalars("augment/augment_p_style")[0].value == pytest.approx(0.1)
    assert "train/step" not in acc.Tags()["scalars"]
    (image,) = acc.Images("samples")
    assert (image.step, image.width, image.height) == (2, 16, 8)


def test_without_tensorboard_nothing_is_written_and_nothing_fails(tmp_path, monkeypatch):
    hide_tensorboard(monkeypatch)
    assert tb.summary_writer_class() is None
    board = tb.Board(tmp_path, enabled=True)
    board.scalars({"d_total": 1.0}, 1)
    board.image("samples", np.zeros((4, 4, 3), np.uint8), 1)
    board.flush()
    board.close()
    assert list(tmp_path.iterdir()) == []


TRAIN = [
    *("--size", "32", "--max_channels", "16", "--batch", "2", "--mbstd_group", "2", "--iters", "2"),
    *("--d_reg_every", "2", "--g_reg_every", "2", "--no_progress", "--log_every", "1", "--sample_every", "2"),
    *("--snapshot_every", "100", "--sample_rows", "1", "--sample_styles", "1", "--augment", "ada"),
]


@pytest.mark.slow  # two tiny training runs
def test_a_training_run_writes_its_log_and_samples_to_tensorboard(tmp_path, tiny_weights, monkeypatch):
    faces = train_helpers.make_folder(tmp_path / "faces", 4, size=32, kind="faces")
    styles = train_helpers.make_folder(tmp_path / "styles", 2, size=32, kind="styles", seed=1)
    flags = ["--faces", str(faces), "--styles", str(styles), "--style_encoder_ckpt", str(tiny_weights["blendgan"])]
    code, err = run_cli(["train", "generator", *flags, *TRAIN, "--outdir", str(tmp_path / "run")])
    assert code == 0, err
    acc = events(tmp_path / "run" / tb.FOLDER)
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert [e.value for e in acc.Scalars("loss/g_total")] == pytest.approx([r["g_total"] for r in log])
    assert [e.step for e in acc.Scalars("augment/augment_p_face")] == [1, 2]
    assert acc.Scalars("train/lr")[0].value == pytest.approx(0.002)
    assert [e.step for e in acc.Images("samples")] == [2]

    hide_tensorboard(monkeypatch)
    code, err = run_cli(["train", "generator", *flags, *TRAIN, "--outdir", str(tmp_path / "plain")])
    assert code == 0, err
    assert not (tmp_path / "plain" / tb.FOLDER).exists() and (tmp_path / "plain" / "log.jsonl").is_file()
