"""The settings every trainer shares (blendgan/training/config.py, loop.py, cli/train.py): out-of-range
intervals, rates and sizes are refused in one line before any work by all three trainers; a resume keeps the
saved settings but for the run-time flags actually given; the flags and their help come from the fields."""

import argparse
import dataclasses
import json

import pytest

from blendgan.cli import train as train_cli
from blendgan.errors import UsageError
from blendgan.training import config, loop

from helpers import run_cli

TRAINERS = {"generator": config.GeneratorConfig, "style-encoder": config.StyleEncoderConfig, "psp": config.PSPConfig}
# flags each trainer must refuse (shared run settings first, then the trainer's own)
BAD = {
    "generator": [
        ("--log_every", "0"),
        ("--snapshot_every", "0"),
        ("--sample_every", "-3"),
        ("--lr", "0"),
        ("--lr", "-0.002"),
        ("--batch", "0"),
        ("--iters", "0"),
        ("--d_reg_every", "0"),
        ("--g_reg_every", "0"),
        ("--path_batch_shrink", "0"),
        ("--mbstd_group", "0"),
        ("--r1", "-1"),
        ("--size", "0"),
        ("--sample_rows", "0"),
    ],
    "style-encoder": [
        ("--log_every", "0"),
        ("--snapshot_every", "0"),
        ("--sample_every", "0"),
        ("--lr", "0"),
        ("--batch", "-1"),
        ("--iters", "0"),
        ("--temperature", "0"),
        ("--size", "0"),
        ("--read_size", "-1"),
        ("--crop_scale_min", "0"),
        ("--sample_pool", "0"),
    ],
    "psp": [
        ("--log_every", "0"),
        ("--snapshot_every", "0"),
        ("--sample_every", "0"),
        ("--lr", "0"),
        ("--batch", "0"),
        ("--iters", "-5"),
        ("--l2_lambda", "-1"),
        ("--input_size", "0"),
        ("--sample_rows", "0"),
    ],
}


@pytest.mark.parametrize("trainer,flag,value", [(t, f, v) for t, cases in BAD.items() for f, v in cases])
def test_out_of_range_settings_are_one_line_errors_before_any_work(trainer, flag, value, tmp_path):
    out = tmp_path / "run"
    # no data folders given: the range check comes first, so the error is about the flag itself
    code, err = run_cli(["train", trainer, "--outdir", str(out), flag, value, "--device", "cpu"])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {flag} {value}") and (
        "at least 1" in lines[0] or "positive" in lines[0] or "negative" in lines[0]
    ), lines[0]
    assert not out.exists()


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_bad_settings_saved_in_a_run_are_refused_on_resume_too(trainer, tmp_path):
    """A config.json edited by hand (or written by a version without the check) is checked like flags."""
    out = tmp_path / "run"
    out.mkdir()
    config.save_config(dataclasses.replace(TRAINERS[trainer](outdir=str(out)), log_every=0), out / "config.json")
    code, err = run_cli(["train", trainer, "--outdir", str(out), "--resume"])
    assert code == 2 and err.strip() == "error: --log_every 0: must be at least 1", err


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_every_setting_is_a_flag_with_its_help_and_default(trainer):
    parser = argparse.ArgumentParser()
    train_cli.add_config_flags(parser, TRAINERS[trainer])
    flags = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    assert set(flags) == {f.name for f in dataclasses.fields(TRAINERS[trainer])}
    for f in dataclasses.fields(TRAINERS[trainer]):
        assert f.metadata["help"] and f.metadata["group"] in config.GROUPS, f.name
        if not isinstance(f.default, bool):
            assert f"(default: {f.default})" in flags[f.name].help, f.name
    assert parser.parse_args([]) == argparse.Namespace()  # nothing given: nothing set


def saved_run(tmp_path, **settings):
    out = tmp_path / "run"
    out.mkdir()
    cfg = config.GeneratorConfig(
        outdir=str(out),
        faces="f",
        styles="s",
        size=64,
        iters=12,
        snapshot_every=2,
        sample_every=3,
        log_every=1,
        lr=0.01,
        **settings,
    )
    config.save_config(cfg, out / "config.json")
    return out, cfg


def parsed(*argv):
    """(settings, names given) as `blendgan train generator ARGV` makes them."""
    parser = argparse.ArgumentParser()
    train_cli.add_config_flags(parser, config.GeneratorConfig)
    return train_cli.config_from_args(config.GeneratorConfig, parser.parse_args(list(argv)))


def test_resume_keeps_the_saved_schedule_unless_a_run_time_flag_is_given(tmp_path):
    out, saved = saved_run(tmp_path)
    cfg, folder, snapshot = loop.open_run(*parsed("--outdir", str(out), "--resume"))
    assert snapshot is None and folder.path == out  # no snapshot yet: the run starts from its saved settings
    assert cfg == dataclasses.replace(saved, resume=True)
    cfg, _, _ = loop.open_run(
        *parsed("--outdir", str(out), "--resume", "--iters", "20", "--log_every", "5", "--no_progress")
    )
    assert cfg == dataclasses.replace(saved, resume=True, iters=20, log_every=5, progress=False)
    # a setting that is not run-time may be repeated, not changed
    cfg, _, _ = loop.open_run(*parsed("--outdir", str(out), "--resume", "--lr", "0.01", "--size", "64"))
    assert cfg == dataclasses.replace(saved, resume=True)
    with pytest.raises(UsageError, match=r"--lr 0.002: this run was made with 0.01"):
        loop.open_run(*parsed("--outdir", str(out), "--resume", "--lr", "0.002"))
    # the Python API: the settings that differ from the defaults count as given
    api = config.GeneratorConfig(outdir=str(out), resume=True, snapshot_every=4)
    cfg, _, _ = loop.open_run(api, config.given_settings(api))
    assert cfg == dataclasses.replace(saved, resume=True, snapshot_every=4)


def test_resume_of_a_moved_run_folder_uses_the_folder_given(tmp_path):
    out, saved = saved_run(tmp_path)
    moved = tmp_path / "moved"
    out.rename(moved)
    cfg, folder, _ = loop.open_run(*parsed("--outdir", str(moved), "--resume"))
    assert cfg.outdir == str(moved) and folder.path == moved
    assert json.loads((moved / "config.json").read_text())["outdir"] == str(out)  # read, not rewritten here


def _fit_style_settings(monkeypatch, argv):
    """The FitStyleConfig `blendgan fit-style ARGV` would fit with (the fit itself is replaced by a recorder)."""
    from blendgan.training import fit_style_loop

    seen = {}

    def record(cfg, given):
        seen.update(cfg=cfg, given=given)
        return 0

    monkeypatch.setattr(fit_style_loop, "fit_style", record)
    code, err = run_cli(["fit-style", *argv])
    return code, err, seen


def test_fit_style_quick_sets_its_preset_and_flags_given_beside_it_win(monkeypatch, tmp_path):
    common = ["ref.jpg", "--outdir", str(tmp_path / "run"), "--ckpt", "g.pt", "--psp_encoder_ckpt", "p.pt"]
    code, err, plain = _fit_style_settings(monkeypatch, common)
    assert code == 0, err
    default = config.FitStyleConfig()
    assert (plain["cfg"].batch, plain["cfg"].iters, plain["cfg"].code_steps) == (
        default.batch,
        default.iters,
        default.code_steps,
    )
    code, err, quick = _fit_style_settings(monkeypatch, [*common, "--quick"])
    assert code == 0, err
    for name, value in config.FIT_STYLE_QUICK.items():
        assert getattr(quick["cfg"], name) == value != getattr(default, name), name
    assert set(config.FIT_STYLE_QUICK) <= quick["given"]  # saved in config.json as chosen, so a resume keeps them
    code, err, mixed = _fit_style_settings(monkeypatch, [*common, "--quick", "--iters", "80"])
    assert code == 0, err
    assert mixed["cfg"].iters == 80 and mixed["cfg"].batch == 1


def test_fit_style_quick_with_resume_is_one_line(monkeypatch, tmp_path):
    code, err, seen = _fit_style_settings(monkeypatch, ["--outdir", str(tmp_path), "--resume", "--quick"])
    assert code == 2 and not seen
    assert len(err.strip().splitlines()) == 1 and "--quick" in err
