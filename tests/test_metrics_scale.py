"""The metrics shared over torchrun processes give the same numbers for 1 and 2 processes (folders with an
unreadable file, images generated on the fly, the training-snapshot hook), and generated images score as their
saved files do."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
from metrics_helpers import make_stand_in, photo_folder, sha256

from blendgan.metrics.evaluate import Options, evaluate_folders, evaluate_generator, generated_rgb
from blendgan.models import Generator

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
import torch
from blendgan import distributed
from blendgan.metrics.evaluate import Options, evaluate_folders, evaluate_generator
from blendgan.metrics.snapshot import SnapshotMetrics
from blendgan.models import Generator

inception, digest, real, fake, run_dir, out = sys.argv[1:]
ctx = distributed.setup("cpu")
cache = str(__import__("pathlib").Path(out).parent / "cache")  # the 1-process run writes it, the 2-process run reads
opts = lambda: Options(inception=inception, inception_sha256=digest, batch=3, cache_dir=cache)
folder_opts = opts()
values = {"folders": evaluate_folders(real, fake, ["fid", "kid", "id"], folder_opts, ctx)}
print("notes:", folder_opts.notes, file=sys.stderr)
torch.manual_seed(0)
g = Generator(64, max_channels=16, with_style_encoder=False).eval()
values["generated"] = evaluate_generator(g, 7, real, ["fid", "kid"], opts(), ctx)
hook = SnapshotMetrics("fid7,kid7", real, run_dir, 64, ctx, inception=inception, inception_sha256=digest, batch=3,
                       cache_dir="off")
values["snapshot"] = hook(g, 10, 0.04, None)
if ctx.is_main:
    with open(out, "w") as f:
        json.dump(values, f)
ctx.close()
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("metrics_scale")
    net = make_stand_in(base / "inception-2015-12-05.pt")
    real = photo_folder(base / "real", 9, seed=4)
    fake = photo_folder(base / "fake", 8, seed=5)
    (fake / "img_004.jpg").write_bytes(b"\xff\xd8\xff broken")  # an unreadable image among good ones
    script = base / "evaluate.py"
    script.write_text(SCRIPT)
    return base, net, real, fake, script


def run_torchrun(setup, nproc):
    base, net, real, fake, script = setup
    out, run = base / f"values{nproc}.json", base / f"run{nproc}"
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("OMP_NUM_THREADS", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        str(script),
        str(net),
        sha256(net),
        str(real),
        str(fake),
        str(run),
        str(out),
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), run, done.stderr


@pytest.mark.distributed  # torchrun with 2 processes
def test_one_and_two_processes_give_the_same_numbers(setup):
    one, run1, err1 = run_torchrun(setup, 1)
    two, run2, err2 = run_torchrun(setup, 2)
    assert one == two
    assert "from the cache" not in err1 and "from the cache" in err2  # the second run skipped the reference folder
    assert set(one["folders"]) == {"fid", "kid", "id"} and set(one["snapshot"]) == {"fid7", "kid7"}
    assert one["snapshot"] == {"fid7": one["generated"]["fid"], "kid7": one["generated"]["kid"]}
    for err in (err1, err2):  # the broken file is reported once per metric, by the process that met it
        assert err.count("skipped (fake): ") == err.count("skipped (id): ") == 1 and "img_004.jpg" in err
    for name in ("fid7", "kid7"):
        (rec1,), (rec2,) = (
            [json.loads(x) for x in (r / f"metric-{name}.jsonl").read_text().splitlines()] for r in (run1, run2)
        )
        assert rec1["value"] == rec2["value"] == one["snapshot"][name] and rec1["best"]["step"] == 10


def test_generated_images_score_as_their_saved_files(setup, tmp_path):
    _, net, real, _, _ = setup
    torch.manual_seed(0)
    g = Generator(64, max_channels=16, with_style_encoder=False).eval()
    folder = tmp_path / "saved"
    folder.mkdir()
    for i, img in enumerate(generated_rgb(g, range(6), seed=0)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), img[:, :, ::-1])
    opts = lambda: Options(inception=str(net), inception_sha256=sha256(net), batch=3, kid_subsets=5, cache_dir="off")
    assert evaluate_generator(g, 6, real, ["fid", "kid"], opts()) == evaluate_folders(
        real, folder, ["fid", "kid"], opts()
    )
