"""`blendgan train generator --metrics`: FID/KID of the EMA generator at every snapshot of a tiny run, written
to RUN/metric-<name>.jsonl with the best snapshot named; a missing Inception file stops the run before step 0."""

import contextlib
import importlib.util
import io
import json
import shutil
import sys
from pathlib import Path

import pytest
from metrics_helpers import make_stand_in, sha256

from blendgan.cli import main
from blendgan.metrics import inception
from blendgan.metrics.evaluate import Options, evaluate_generator
from blendgan.metrics.snapshot import best_record, read_metric_log
from blendgan.training.runs import load_snapshot

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_helpers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [
    "--size",
    "64",
    "--max_channels",
    "16",
    "--iters",
    "4",
    "--log_every",
    "1",
    "--r1",
    "1",
    "--d_reg_every",
    "2",
    "--g_reg_every",
    "2",
    "--mbstd_group",
    "2",
    "--precision",
    "fp64",
    "--no_progress",
    "--sample_every",
    "100",
    "--snapshot_every",
    "2",
    "--sample_rows",
    "2",
    "--sample_styles",
    "2",
    "--batch",
    "2",
]


def run_cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_metrics")
    faces = train_helpers.make_folder(root / "faces", 6, kind="faces")
    styles = train_helpers.make_folder(root / "styles", 2, kind="styles", seed=1)
    se = train_helpers.make_style_encoder(root / "style_encoder.pt")
    net = make_stand_in(root / "inception-2015-12-05.pt")
    return root, ["--faces", str(faces), "--styles", str(styles), "--style_encoder_ckpt", str(se)], net


@pytest.mark.slow  # a whole (tiny) training run with two metrics at each snapshot: ~50 s under load
def test_metrics_are_logged_at_every_snapshot(data, monkeypatch, tmp_path):
    root, flags, net = data
    monkeypatch.setattr(inception, "SHA256", sha256(net))  # the stand-in is accepted as the published file
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    run = root / "run"
    code, err = run_cli(
        ["train", "generator", *flags, *TRAIN, "--outdir", str(run), "--metrics", "fid6,kid6", "--inception", str(net)]
    )
    assert code == 0, err
    for name in ("fid6", "kid6"):
        records = read_metric_log(run, name)
        assert [r["step"] for r in records] == [2, 4]
        assert all(r["snapshot"] == f"checkpoints/{r['step']:06d}.pt" and r["value"] > 0 for r in records)
        best = best_record(records)
        assert records[-1]["best"] == {k: best[k] for k in ("step", "snapshot", "value")}
        assert f"{name} " in err and "best" in err
    # the logged value is the metric of the snapshot's g_ema, recomputed from the file
    from blendgan.training.config import GeneratorConfig
    from blendgan.training.generator_init import build_generator

    snap = load_snapshot(run / "checkpoints" / "000004.pt")
    cfg = GeneratorConfig(size=64, max_channels=16)
    g = build_generator(cfg).double()
    g.load_state_dict({k: v for k, v in snap["g_ema"].items() if not k.startswith("embedder.")})
    opts = Options(inception=str(net), inception_sha256=sha256(net), real_size=64, cache_dir="off")
    again = evaluate_generator(g.eval(), 6, flags[1], ["fid", "kid"], opts)
    assert again["fid"] == pytest.approx(read_metric_log(run, "fid6")[-1]["value"], rel=1e-9)
    assert json.loads((run / "config.json").read_text())["metrics"] == "fid6,kid6"
    # the training figure tool draws a metrics panel beside the loss curves
    spec = importlib.util.spec_from_file_location("training_figure", ROOT / "tools" / "training_figure.py")
    figure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figure)
    panel = figure.metric_panel(run)
    assert panel is not None and (panel < 128).any(axis=2).sum() > 500  # curves and labels drawn
    plain = tmp_path / "plain"
    shutil.copytree(run, plain, ignore=shutil.ignore_patterns("metric-*", "checkpoints"))
    assert figure.row(run).shape[1] == figure.row(plain).shape[1] + panel.shape[1] + 6


def test_a_missing_inception_file_stops_the_run_at_once(data, tmp_path, monkeypatch):
    _, flags, _ = data
    monkeypatch.setenv("BLENDGAN_HOME", str(tmp_path))
    code, err = run_cli(["train", "generator", *flags, *TRAIN, "--outdir", str(tmp_path / "run"), "--metrics", "fid5k"])
    assert code == 2 and "inception-2015-12-05.pt not found" in err
    assert not (tmp_path / "run" / "checkpoints").exists() or not list((tmp_path / "run" / "checkpoints").iterdir())
    code, err = run_cli(["train", "generator", *flags, *TRAIN, "--outdir", str(tmp_path / "run2"), "--metrics", "fidx"])
    assert code == 2 and "--metrics 'fidx'" in err
