"""`blendgan train generator` on a CPU at size 64 with 16-channel networks: loss terms on hand-checkable
cases, two processes equal one process with the doubled batch, resume equals an uninterrupted run, a
snapshot works in the inference commands, and bad input fails with one line before any work."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from blendgan.cli import main
from blendgan.losses import gan as losses
from blendgan.training.runs import read_log

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_helpers  # noqa: E402
from helpers import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K = 2  # steps of the comparison runs (step 0 runs both lazy regularisations, step 1 neither)
TRAIN = [
    "--size",
    "64",
    "--max_channels",
    "16",
    "--iters",
    str(K),
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
    "100",
    "--sample_rows",
    "2",
    "--sample_styles",
    "2",
]
TIMING = ("images_per_s", "elapsed_s")


@pytest.fixture(scope="session")
def data_env(tmp_path_factory):
    """Face and style folders (one face folder with a corrupt file among the images, one without) and a
    random style encoder."""
    root = tmp_path_factory.mktemp("train")
    faces = train_helpers.make_folder(root / "faces", 6, kind="faces")
    (faces / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    clean = train_helpers.make_folder(root / "clean_faces", 2, kind="faces")
    styles = train_helpers.make_folder(root / "styles", 2, kind="styles", seed=1)
    se = train_helpers.make_style_encoder(root / "style_encoder.pt")
    data = ["--faces", str(faces), "--styles", str(styles), "--style_encoder_ckpt", str(se)]
    return {"root": root, "data": data, "faces": faces, "clean_faces": clean, "styles": styles, "se": se}


@pytest.fixture(scope="session")
def env(data_env):
    """data_env + the reference run S: one process, batch 4, K steps (it also makes the style-code cache)."""
    s_run = data_env["root"] / "S"
    code, err = run_cli(["train", "generator", *data_env["data"], *TRAIN, "--outdir", str(s_run), "--batch", "4"])
    assert code == 0, err
    return {**data_env, "S": s_run, "S_err": err}


def new_run(env, name):
    """A fresh run folder holding the cached style codes (the encoder's codes do not depend on the run)."""
    path = env["root"] / name
    path.mkdir()
    shutil.copy(env["S"] / "style_codes.pt", path / "style_codes.pt")
    return path


def snapshot(run, step=K):
    return torch.load(Path(run) / "checkpoints" / f"{step:06d}.pt", weights_only=True, mmap=True)


def max_param_difference(a, b):
    out = {}
    for name in ("g", "d_face", "d_style", "d_style_latent"):
        assert list(a[name]) == list(b[name])
        out[name] = max(float((a[name][k].double() - b[name][k].double()).abs().max()) for k in a[name])
    return out


# ----------------------------------------------------------------------------- loss terms
def test_logistic_losses_by_hand():
    real, fake = torch.tensor([[0.0], [2.0]]), torch.tensor([[0.0], [-1.0]])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert losses.d_logistic_loss(real, fake).item() == pytest.approx((sp(0) + sp(-2)) / 2 + (sp(0) + sp(-1)) / 2)
    assert losses.g_nonsaturating_loss(fake).item() == pytest.approx((sp(0) + sp(1)) / 2)
    assert losses.g_nonsaturating_loss(torch.tensor([[0.0]])).item() == pytest.approx(math.log(2))


def test_r1_equals_direct_autograd_and_a_hand_case():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4, dtype=torch.float64)
    d = lambda x: (x * w).sum((1, 2, 3))[:, None] ** 2  # noqa: E731  D(x) = <x, w>², ∂D/∂x = 2<x, w> w
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    got = losses.r1_penalty(d(x), x)
    inner = (x * w).sum((1, 2, 3))
    by_hand = (4 * inner**2 * w.square().sum()).mean()
    torch.testing.assert_close(got, by_hand)
    (g,) = torch.autograd.grad(got, x)  # differentiable for the D update: ∂/∂x of the same closed form
    (g_hand,) = torch.autograd.grad(by_hand, x)
    torch.testing.assert_close(g, g_hand)


def test_path_length_of_a_linear_map():
    # image = latents @ A (per layer): J_wᵀ y = y Aᵀ, so with y = noise / sqrt(H·W) the length is known
    torch.manual_seed(1)
    a = torch.randn(512, 16, dtype=torch.float64)
    latents = torch.randn(2, 3, 512, dtype=torch.float64, requires_grad=True)
    images = (latents @ a).reshape(2, 3, 4, 4)
    noise = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    lengths = losses.path_lengths(images, latents, noise)
    y = noise.reshape(2, 3, 16) / 4.0
    expected = torch.sqrt(((y @ a.T) ** 2).sum(2).mean(1))
    torch.testing.assert_close(lengths, expected)
    penalty, new_mean = losses.path_length_penalty(lengths, 1.0, decay=0.5)
    m = 1.0 + 0.5 * (float(expected.mean()) - 1.0)
    assert new_mean == pytest.approx(m)
    torch.testing.assert_close(penalty, ((expected - m) ** 2).mean())


def test_lazy_regularization_correction():
    lr, betas = losses.lazy_regularization(0.002, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.002 * 16 / 17)
    assert betas == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert losses.lazy_regularization(0.002, (0.0, 0.99), 0) == (0.002, (0.0, 0.99))


# ----------------------------------------------------------------------------- runs
@pytest.mark.slow  # whole training runs / a 0.7 GB style encoder made for the session
def test_reference_run_outputs_and_unreadable_file_reported_once(env):
    run = env["S"]
    assert env["S_err"].count("skipped:") == 1 and "broken.jpg" in env["S_err"]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["batch"] == 4 and cfg["max_channels"] == 16 and cfg["r1"] == 1.0
    log = read_log(run / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2]
    for key in (
        "d_face",
        "d_style",
        "d_style_latent",
        "g_face",
        "g_style",
        "g_style_latent",
        "r1_face",
        "r1_style",
        "r1_style_latent",
        "path_length",
        "add_weight",
        "images_per_s",
        "elapsed_s",
    ):
        assert key in log[-1], key
    assert all(0 <= a <= 1 for a in log[-1]["add_weight"]) and min(log[-1]["add_weight"]) < 1  # WBM trains
    assert (run / "samples" / f"{K:06d}.jpg").stat().st_size > 0
    assert [p.name for p in (run / "checkpoints").iterdir()] == [f"{K:06d}.pt"]


@pytest.mark.distributed
def test_two_processes_equal_one_process_with_the_double_batch(env):
    """torchrun, 2 gloo processes x batch 2 == 1 process x batch 4 after K steps. Same computation by
    construction: every random draw (image, flip, codes, mixing, noise) is a function of the global sample
    position, process r takes positions r, r + 2, ...; the minibatch-stddev group (2) is fixed per process
    and its strided grouping then forms the same groups in both runs; the regularisation sub-batches are
    the same global positions; path-length means are all-reduced. What remains is the order of float64
    sums (all-reduce vs one batch), ~1e-16 relative per operation: 1e-9 after two Adam steps is ample and
    a real difference (an extra Adam step, another sample) moves parameters by ~lr = 2e-3."""
    run = new_run(env, "D")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "blendgan",
        "train",
        "generator",
        *env["data"],
        *TRAIN,
        "--outdir",
        str(run),
        "--batch",
        "2",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("skipped:") == 1  # reported once, by rank 0
    diff = max_param_difference(snapshot(env["S"]), snapshot(run))
    assert max(diff.values()) < 1e-9, diff
    for a, b in zip(read_log(env["S"] / "log.jsonl"), read_log(run / "log.jsonl"), strict=True):
        for k, v in a.items():
            if k not in TIMING:
                assert b[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    assert json.loads((run / "config.json").read_text())["batch"] == 2


@pytest.mark.slow  # whole training runs / a 0.7 GB style encoder made for the session
def test_resume_equals_an_uninterrupted_run(env):
    run = new_run(env, "R")
    code, err = run_cli(
        ["train", "generator", *env["data"], *TRAIN, "--outdir", str(run), "--batch", "4", "--iters", "1"]
    )
    assert code == 0, err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["000001.pt"]
    code, err = run_cli(["train", "generator", "--outdir", str(run), "--resume", "--iters", str(K), "--no_progress"])
    assert code == 0, err
    a, b = snapshot(env["S"]), snapshot(run)
    assert max(max_param_difference(a, b).values()) == 0
    assert all(torch.equal(a["g_ema"][k], b["g_ema"][k]) for k in a["g_ema"])
    for name in ("g_optim", "d_face_optim"):
        for sa, sb in zip(a[name]["state"].values(), b[name]["state"].values()):
            assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    strip = lambda log: [{k: v for k, v in r.items() if k not in TIMING} for r in log]  # noqa: E731
    assert strip(read_log(run / "log.jsonl")) == strip(read_log(env["S"] / "log.jsonl"))
    assert json.loads((run / "config.json").read_text())["iters"] == K


@pytest.mark.slow  # whole training runs / a 0.7 GB style encoder made for the session
def test_snapshot_works_in_the_inference_commands(env, tmp_path):
    from blendgan import BlendGAN

    ckpt = env["S"] / "checkpoints" / f"{K:06d}.pt"
    bg = BlendGAN.from_checkpoints(ckpt)
    state = snapshot(env["S"])
    assert bg.size == 64 and bg.generator.max_channels == 16
    gen_sd = bg.generator.state_dict()
    assert list(gen_sd) == list(state["g_ema"])
    assert torch.equal(gen_sd["convs.0.conv.weight"], state["g_ema"]["convs.0.conv.weight"].float())
    torch.testing.assert_close(bg.latent_avg, state["latent_avg"])

    # fine-tuning: the same weights as a plain blendgan.pt ({'g_ema', 'latent_avg'}) are a valid --init
    from blendgan.training.config import GeneratorConfig
    from blendgan.training.generator_init import (
        apply_init,
        build_discriminators,
        build_generator,
        load_init,
        load_style_encoder,
    )

    plain = tmp_path / "blendgan.pt"
    torch.save({"g_ema": state["g_ema"], "latent_avg": state["latent_avg"]}, plain)
    cfg = GeneratorConfig(size=64, max_channels=16, init=str(plain))
    init = load_init(cfg)
    assert init.kind == "blendgan"
    g, g_ema, ds = build_generator(cfg).double(), build_generator(cfg).double(), build_discriminators(cfg)
    apply_init(init, g, g_ema, ds)
    assert torch.equal(g.add_weight, state["g_ema"]["add_weight"])
    assert torch.equal(g_ema.embedding[2].weight, state["g_ema"]["embedding.2.weight"])
    enc = load_style_encoder(cfg, init)  # the style encoder comes from the file when no --style_encoder_ckpt
    assert torch.equal(enc.embedder_mlp[3].weight, state["g_ema"]["embedder.embedder_mlp.3.weight"])
    del init, enc
    plain.unlink()

    psp = train_helpers.make_psp_encoder(tmp_path / "psp_encoder.pt", size=64)
    out = tmp_path / "out"
    code, err = run_cli(
        [
            "transfer",
            "--ckpt",
            str(ckpt),
            "--psp_encoder_ckpt",
            str(psp),
            "--input_img_path",
            str(env["faces"] / "img_000.jpg"),
            "--style_img_path",
            str(env["styles"] / "img_000.jpg"),
            "--outdir",
            str(out),
        ]
    )
    assert code == 0, err
    assert len(list(out.glob("*.jpg"))) == 1


# ----------------------------------------------------------------------------- bad input
def _fails(argv, *words):
    code, err = run_cli(argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.slow  # whole training runs / a 0.7 GB style encoder made for the session
def test_bad_folders_fail_in_one_line_before_any_work(data_env, tmp_path):
    env = data_env
    empty = tmp_path / "empty"
    empty.mkdir()
    se = ["--style_encoder_ckpt", str(env["se"])]
    base = ["train", "generator", *TRAIN, *se, "--batch", "2"]
    _fails(
        [*base, "--faces", str(empty), "--styles", str(env["styles"]), "--outdir", str(tmp_path / "a")],
        str(empty),
        "no image files",
    )
    _fails(
        [
            *base,
            "--faces",
            str(env["clean_faces"]),
            "--styles",
            str(tmp_path / "missing"),
            "--outdir",
            str(tmp_path / "b"),
        ],
        "missing",
        "no such file or folder",
    )
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"nope")
    _fails(
        [*base, "--faces", str(junk), "--styles", str(env["styles"]), "--outdir", str(tmp_path / "c")],
        "none of the 1 files",
    )
    assert not any((tmp_path / n).exists() for n in "abc")  # nothing written


@pytest.mark.slow  # whole training runs / a 0.7 GB style encoder made for the session
def test_resume_without_a_snapshot_and_existing_runs_are_refused(data_env, tmp_path):
    _fails(["train", "generator", "--outdir", str(tmp_path / "nothing"), "--resume"], "no snapshot to resume")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "000007.pt").write_bytes(b"an earlier run's snapshot")
    _fails(
        ["train", "generator", *data_env["data"], *TRAIN, "--batch", "2", "--outdir", str(run)],
        "already holds snapshots",
        "--resume",
    )
    assert (run / "checkpoints" / "000007.pt").read_bytes() == b"an earlier run's snapshot"
    assert sorted(p.name for p in run.rglob("*")) == ["000007.pt", "checkpoints"]  # nothing written
    # a truncated snapshot is refused with one line, not loaded
    (run / "config.json").write_text("{}")
    _fails(["train", "generator", "--outdir", str(run), "--resume"], "000007.pt")


def _stylegan2_checkpoint(path, size, max_channels=16):
    """rosinality's train.py layout: {'g', 'g_ema', 'd', 'args'} without BlendGAN's parts."""
    from blendgan.models import Generator
    from blendgan.models.discriminator import Discriminator

    torch.manual_seed(3)
    g = Generator(size, max_channels=max_channels, with_style_encoder=False).state_dict()
    g = {k: v for k, v in g.items() if not k.startswith(("add_weight", "embedding."))}
    d = Discriminator(size, max_channels=max_channels).state_dict()
    torch.save({"g": g, "g_ema": {k: v + 1 for k, v in g.items()}, "d": d}, path)
    return g, d


@pytest.mark.slow  # whole training runs / a 0.7 GB style encoder made for the session
def test_init_from_stylegan2_and_wrong_inits(data_env, tmp_path):
    env = data_env
    from blendgan.training.config import GeneratorConfig
    from blendgan.training.generator_init import apply_init, build_discriminators, build_generator, load_init

    good = tmp_path / "sg2_64.pt"
    g_sd, d_sd = _stylegan2_checkpoint(good, 64)
    cfg = GeneratorConfig(size=64, max_channels=16, init=str(good))
    init = load_init(cfg)
    g, g_ema, ds = build_generator(cfg), build_generator(cfg), build_discriminators(cfg)
    apply_init(init, g, g_ema, ds)
    assert torch.equal(g.conv1.conv.weight, g_sd["conv1.conv.weight"])
    assert torch.equal(g_ema.conv1.conv.weight, g_sd["conv1.conv.weight"] + 1)
    assert torch.equal(g.embedding[3].weight, g.style[3].weight)  # the new style mapping starts as a copy
    assert torch.equal(g.add_weight, torch.ones(1, 10, 1))
    for name in ("d_face", "d_style"):
        assert torch.equal(ds[name].final_linear[0].weight, d_sd["final_linear.0.weight"])
    assert torch.equal(ds["d_style_latent"].final_conv[0].weight, d_sd["final_conv.0.weight"])

    base = [
        "train",
        "generator",
        "--faces",
        str(env["clean_faces"]),
        "--styles",
        str(env["styles"]),
        "--style_encoder_ckpt",
        str(env["se"]),
        *TRAIN,
        "--batch",
        "2",
    ]
    other = tmp_path / "sg2_32.pt"
    _stylegan2_checkpoint(other, 32)
    _fails([*base, "--init", str(other), "--outdir", str(tmp_path / "x")], "32x32", "--size 64")
    _fails(
        [*base, "--init", str(good), "--max_channels", "32", "--outdir", str(tmp_path / "y")],
        "16 channels",
        "--max_channels 16",
    )
    _fails([*base, "--init", str(env["se"]), "--outdir", str(tmp_path / "z")], "not a StyleGAN2 or BlendGAN")
    _fails(
        [
            "train",
            "generator",
            "--faces",
            str(env["clean_faces"]),
            "--styles",
            str(env["styles"]),
            *TRAIN,
            "--batch",
            "2",
            "--init",
            str(good),
            "--outdir",
            str(tmp_path / "w"),
        ],
        "--style_encoder_ckpt",
    )
    assert not any((tmp_path / n).exists() for n in "xyzw")


def test_help_shows_defaults_and_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["train", "generator", "--help"])
    text = capsys.readouterr().out
    assert "--r1" in text and "(default: 10.0)" in text and "torchrun --nproc_per_node" in text


# ----------------------------------------------------------------------------- killed runs
KILL_STEPS = 6
KILL_TRAIN = [*TRAIN, "--iters", str(KILL_STEPS), "--snapshot_every", "2", "--batch", "2"]


def _launch(argv):
    return subprocess.Popen(
        [sys.executable, "-m", "blendgan", "train", "generator", *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BLENDGAN_OFFLINE": "1"},
    )


def _tensors(snap):
    """Every tensor of a snapshot but the clock, by a flat name (optimiser moments included)."""
    out = {}

    def walk(prefix, value):
        if isinstance(value, torch.Tensor):
            out[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}/{i}", v)

    walk("", {k: v for k, v in snap.items() if k not in ("elapsed_s", "config")})
    return out


@pytest.mark.slow
def test_a_run_killed_at_random_moments_resumes_to_the_uninterrupted_result(env):
    """SIGKILL up to 3 times (first right after a state chosen at random, then at random moments: start-up, steps,
    snapshot writes), then the README's resume line `blendgan train generator --outdir RUN --resume` until the run
    ends: its last snapshot equals that of the run made without interruption, tensor for tensor (networks,
    optimiser moments, random states), and so do its log and settings (the resume lines give no schedule: the saved
    one is kept)."""
    import random
    import time

    seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    straight = new_run(env, "KS")
    t0 = time.perf_counter()
    proc = _launch([*env["data"], *KILL_TRAIN, "--outdir", str(straight)])
    assert proc.wait(timeout=900) == 0, proc.stderr.read()[-3000:]
    duration = time.perf_counter() - t0

    run = new_run(env, "KK")
    first = [*env["data"], *KILL_TRAIN, "--outdir", str(run)]
    # the first kill lands on a state, not a time, so that it always lands however fast this launch runs: right
    # after the settings or one of the first two snapshots are written (work is left after each of them)
    first_kill = run / rng.choice(["config.json", f"checkpoints/{2:06d}.pt", f"checkpoints/{4:06d}.pt"])
    kills, launches = 0, 0
    while True:
        started = (run / "config.json").is_file()
        # before its settings are saved a run has nothing to resume: it is started again, as the error says
        proc = _launch(["--outdir", str(run), "--resume"] if started else first)
        launches += 1
        if kills == 0:
            while not first_kill.is_file():
                assert proc.poll() is None, (seed, first_kill, proc.stderr.read()[-3000:])
                time.sleep(0.01)
            proc.kill()  # SIGKILL: no clean-up of any kind
            proc.wait()
            kills += 1
            continue
        try:
            # the next two anywhere in 80 % of an uninterrupted run's time (a short resume may end first: then the
            # loop ends)
            code = proc.wait(timeout=rng.uniform(0.2, 0.8 * duration) if kills < 3 else 900)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            kills += 1
            continue
        assert code == 0, (seed, proc.stderr.read()[-3000:])
        break

    a = torch.load(straight / "checkpoints" / f"{KILL_STEPS:06d}.pt", weights_only=True)
    b = torch.load(run / "checkpoints" / f"{KILL_STEPS:06d}.pt", weights_only=True)
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys() and len(ta) > 100
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, (seed, different[:5])
    assert a["step"] == b["step"] == KILL_STEPS and a["mean_path_length"] == b["mean_path_length"]
    assert json.loads((run / "config.json").read_text()) == {
        **json.loads((straight / "config.json").read_text()),
        "outdir": str(run),
        "resume": started,
    }
    strip = lambda log: [{k: v for k, v in r.items() if k not in TIMING} for r in log]  # noqa: E731
    assert strip(read_log(run / "log.jsonl")) == strip(read_log(straight / "log.jsonl"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"{s:06d}.pt" for s in (2, 4, 6)]
    assert kills >= 1 and launches == kills + 1, (seed, kills, launches)
