"""The discriminator augmentation (blendgan/training/augment.py) and ADA's adaptive p: identity at p = 0, every
transform acting at p = 1, gradients through every transform, draws independent of the process split, p
rising when a tiny discriminator memorises 8 images and staying at 0 when it cannot, and `train generator
--augment ada` resuming with the same p."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from blendgan.training import augment as A
from blendgan.training.runs import read_log

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_helpers  # noqa: E402
from helpers import run_cli  # noqa: E402


def images(n=8, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def test_p0_is_exactly_the_identity():
    x = images()
    assert A.augment(x, 0.0, seed=0, stream=5, positions=range(8)) is x
    aug = A.AdaptiveAugment("none", 0.7, 0.6, 500, 4, seed=0)  # 'none' ignores any p
    assert aug(x, 5, range(8)) is x


def test_p1_every_transform_changes_every_sample_whose_draw_is_not_the_identity():
    x = images()
    params = A.draw(0, 5, range(8), 16)
    for name in A.TRANSFORMS:
        y = A.augment(x, 1.0, 0, 5, range(8), transforms=(name,))
        changed = [(y[i] - x[i]).abs().max().item() > 1e-6 for i in range(8)]
        if name == "translate":  # integer translation: a draw of (0, 0) pixels leaves the sample as it was
            expect = [bool(params["translate"][i].abs().sum() > 0) for i in range(8)]
            assert sum(expect) >= 6
            assert changed == expect
            i = expect.index(True)
            tx, ty = params["translate"][i].int().tolist()
            assert torch.equal(y[i, :, 4:12, 4:12], x[i, :, 4 - ty : 12 - ty, 4 - tx : 12 - tx])  # an exact shift
        else:
            assert all(changed), name


def test_samples_whose_gates_stay_above_p_are_untouched():
    x = images()
    gates = A.draw(0, 5, range(8), 16)["gates"]
    y = A.augment(x, 0.1, 0, 5, range(8))
    untouched = (gates >= 0.1).all(dim=1)
    assert 0 < int(untouched.sum()) < 8
    for i in range(8):
        assert torch.equal(y[i], x[i]) == bool(untouched[i])


def test_draws_depend_on_the_global_position_only():
    """Two processes (positions 0, 2, ... and 1, 3, ...) augment what one process with both does."""
    x = images()
    whole = A.augment(x, 0.8, 3, 7, range(8))
    even = A.augment(x[0::2], 0.8, 3, 7, range(0, 8, 2))
    odd = A.augment(x[1::2], 0.8, 3, 7, range(1, 8, 2))
    assert torch.equal(whole[0::2], even) and torch.equal(whole[1::2], odd)


@pytest.mark.parametrize("name", A.TRANSFORMS)
def test_each_transform_is_differentiable(name):
    x = images(n=2, size=6, seed=1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: A.augment(t, 1.0, 0, 5, [0, 1], transforms=(name,)), (x,))


def test_the_ada_rule_by_hand():
    aug = A.AdaptiveAugment("ada", 0.0, 0.6, ada_kimg=0.1, interval=2, seed=0)
    for step, rt in enumerate([0.9, 0.7, 0.9, 0.7]):  # r_t = 0.8 > 0.6 twice: p += 2 · 8·2/100
        aug.observe(rt)
        aug.adjust(step, images_per_step=8)
    assert aug.p == pytest.approx(0.32) and aug.last_rt == pytest.approx(0.8)
    aug.observe(0.2)
    aug.adjust(4, 8)  # mid-interval: no change
    assert aug.p == pytest.approx(0.32)
    aug.observe(0.4)
    aug.adjust(5, 8)  # r_t = 0.3 < 0.6: p -= 0.16
    assert aug.p == pytest.approx(0.16)
    fixed = A.AdaptiveAugment("fixed", 0.25, 0.6, 0.1, 2, seed=0)
    fixed.observe(1.0)
    fixed.adjust(1, 8)
    assert fixed.p == 0.25
    again = A.AdaptiveAugment("ada", 0.0, 0.6, 0.1, 2, seed=0)
    again.load_state_dict(aug.state_dict())
    assert again.state_dict() == aug.state_dict()


def _blobs(n, generator, size=8):
    """Random smooth colour images (a fresh sample of one distribution every call)."""
    low = torch.rand(n, 3, 2, 2, generator=generator) * 2 - 1
    return nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)


def _train_tiny_d(memorise, steps=160, batch=8):
    """A small MLP discriminator against fakes from the data distribution; the reals are 8 fixed images
    (memorise=True: D can tell them apart, it overfits) or fresh images of the same distribution (False: it
    cannot). Returns the ADA probability after training."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    d = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
    opt = torch.optim.Adam(d.parameters(), lr=2e-3)
    aug = A.AdaptiveAugment("ada", 0.0, 0.6, ada_kimg=0.5, interval=4, seed=0)
    fixed = _blobs(8, g)
    for step in range(steps):
        positions = range(step * batch, (step + 1) * batch)
        real = fixed if memorise else _blobs(batch, g)
        fake = _blobs(batch, g)
        real_pred = d(aug(real, 1, positions))
        loss = nn.functional.softplus(-real_pred).mean() + nn.functional.softplus(d(aug(fake, 2, positions))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        aug.observe(real_pred.detach().sign().mean().item())
        aug.adjust(step, batch)
    return aug.p


def test_p_rises_when_d_overfits_and_stays_at_zero_when_it_cannot():
    assert _train_tiny_d(memorise=True) > 0.3
    assert _train_tiny_d(memorise=False) < 0.05


# ----------------------------------------------------------------------------- in `train generator`
TRAIN = [
    *("--size", "32", "--max_channels", "16", "--batch", "2", "--mbstd_group", "2"),
    *("--r1", "1", "--d_reg_every", "2", "--g_reg_every", "2", "--precision", "fp64", "--no_progress"),
    *("--log_every", "1", "--sample_every", "100", "--snapshot_every", "100", "--sample_rows", "1"),
    *("--sample_styles", "1", "--augment", "ada", "--augment_p", "0.5", "--ada_kimg", "0.01", "--ada_interval", "1"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_weights):
    root = tmp_path_factory.mktemp("augment")
    faces = train_helpers.make_folder(root / "faces", 4, size=32, kind="faces")
    styles = train_helpers.make_folder(root / "styles", 2, size=32, kind="styles", seed=1)
    flags = ["--faces", str(faces), "--styles", str(styles), "--style_encoder_ckpt", str(tiny_weights["blendgan"])]
    return root, flags


@pytest.mark.slow  # three tiny training runs
def test_ada_run_logs_p_and_a_resumed_run_continues_with_it(data):
    root, flags = data
    straight, resumed = root / "straight", root / "resumed"
    code, err = run_cli(["train", "generator", *flags, *TRAIN, "--outdir", str(straight), "--iters", "3"])
    assert code == 0, err
    log = read_log(straight / "log.jsonl")
    ps = [r["augment_p_style"] for r in log]
    assert all(0 <= p <= 1 for p in ps) and len(set(ps)) > 1  # p moved (0.02 per step at this ada_kimg)
    code, err = run_cli(["train", "generator", *flags, *TRAIN, "--outdir", str(resumed), "--iters", "1"])
    assert code == 0, err
    code, err = run_cli(["train", "generator", "--outdir", str(resumed), "--resume", "--iters", "3", "--no_progress"])
    assert code == 0, err
    a, b = (torch.load(r / "checkpoints" / "000003.pt", weights_only=True) for r in (straight, resumed))
    assert a["augment"] == b["augment"] and a["augment"]["d_style"]["p"] == ps[-1]
    for name in ("g", "d_face", "d_style", "d_style_latent"):
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), name
    timing = ("images_per_s", "elapsed_s")
    strip = lambda log: [{k: v for k, v in r.items() if k not in timing} for r in log]  # noqa: E731
    assert strip(read_log(resumed / "log.jsonl")) == strip(log)
    assert json.loads((straight / "config.json").read_text())["augment"] == "ada"


def test_bad_augment_settings_fail_in_one_line(data, tmp_path):
    root, flags = data
    code, err = run_cli(["train", "generator", *flags, *TRAIN, "--outdir", str(tmp_path / "r"), "--augment_p", "2"])
    assert code != 0 and "--augment_p 2.0: must be between 0 and 1" in err and "Traceback" not in err


@pytest.mark.distributed
def test_two_processes_augment_as_one_with_the_double_batch(data):
    """torchrun, 2 gloo processes x batch 2 == 1 process x batch 4 with ADA: the draws follow the global sample
    positions and r_t is averaged over the processes, so p and the weights agree (up to float64 sum order)."""
    root, flags = data
    common = [*flags, *TRAIN, "--iters", "2", "--mbstd_group", "2"]
    one, two = root / "one", root / "two"
    code, err = run_cli(["train", "generator", *common, "--batch", "4", "--outdir", str(one)])
    assert code == 0, err
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2"]
    cmd += ["-m", "blendgan", "train", "generator", *common, "--batch", "2", "--outdir", str(two)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (torch.load(run / "checkpoints" / "000002.pt", weights_only=True) for run in (one, two))
    for name in a["augment"]:
        assert a["augment"][name]["p"] == pytest.approx(b["augment"][name]["p"], abs=1e-12)
    assert {a["augment"][n]["p"] for n in a["augment"]} != {0.5}  # p moved
    for name in ("g", "d_face", "d_style", "d_style_latent"):
        diff = max(float((a[name][k] - b[name][k]).abs().max()) for k in a[name])
        assert diff < 1e-9, (name, diff)
