"""`blendgan train generator` reads `blendgan dataset` shards: the same losses step for step, and the same
weights, as a run on a folder holding the same images; the shard reader keeps an index, not pixels."""

import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from blendgan import dataset_tool as dt
from blendgan.distributed import Context
from blendgan.training import data
from blendgan.training.runs import read_log

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_helpers  # noqa: E402
from helpers import run_cli  # noqa: E402

TRAIN = [
    *("--size", "32", "--max_channels", "16", "--batch", "2", "--mbstd_group", "2", "--iters", "2"),
    *("--r1", "1", "--d_reg_every", "2", "--g_reg_every", "2", "--precision", "fp64", "--no_progress"),
    *("--log_every", "1", "--sample_every", "100", "--snapshot_every", "100", "--sample_rows", "1"),
    *("--sample_styles", "1"),
]


def shards_and_folder(raw, out, kind_name):
    """A data set of `raw` (3 shards) and a folder holding its images under their keys."""
    opts = dt.DatasetOptions(kind="styles", size=32, shards=3, min_resolution=16, dup_threshold=0)
    summary = dt.make_dataset([raw], out / f"{kind_name}_ds", opts, progress=False)
    folder = out / f"{kind_name}_folder"
    folder.mkdir()
    for s in summary["shards"]:
        with tarfile.open(out / f"{kind_name}_ds" / s["name"]) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".png"):
                    (folder / m.name).write_bytes(tar.extractfile(m).read())
    return out / f"{kind_name}_ds", folder, summary["counts"]["kept"]


@pytest.fixture(scope="module")
def sets(tmp_path_factory, tiny_weights):
    root = tmp_path_factory.mktemp("shards")
    faces = train_helpers.make_folder(root / "faces_raw", 6, size=48, kind="faces")
    styles = train_helpers.make_folder(root / "styles_raw", 4, size=48, kind="styles", seed=1)
    f_ds, f_folder, n_faces = shards_and_folder(faces, root, "faces")
    s_ds, s_folder, n_styles = shards_and_folder(styles, root, "styles")
    assert n_faces >= 4 and n_styles >= 3
    return {"root": root, "faces": (f_ds, f_folder), "styles": (s_ds, s_folder), "se": tiny_weights["blendgan"]}


def test_shard_reader_gives_the_folders_pixels(sets):
    ds, folder = sets["styles"]
    a, b = data.open_images(ds, 32, "styles", None), data.open_images(folder, 32, "styles", Context())
    assert isinstance(a, data.ShardImages) and len(a) == len(b)
    for i in range(len(a)):
        assert np.array_equal(a.pixels(i), b.pixels(i))
        assert torch.equal(a.tensor(i, flip=True), b.tensor(i, flip=True))
    small = data.open_images(ds, 16, "styles", None)  # another training size: resized as a folder's are
    assert small.pixels(0).shape == (16, 16, 3)
    assert a.where.nbytes + a.offsets.nbytes + a.lengths.nbytes == 20 * len(a)  # the index, not pixels


@pytest.mark.slow  # two tiny training runs
def test_training_from_shards_equals_training_from_the_folder(sets):
    runs = {}
    for name, pick in (("shards", 0), ("folder", 1)):
        out = sets["root"] / f"run_{name}"
        flags = ["--faces", str(sets["faces"][pick]), "--styles", str(sets["styles"][pick])]
        code, err = run_cli(
            ["train", "generator", *flags, "--style_encoder_ckpt", str(sets["se"]), *TRAIN, "--outdir", str(out)]
        )
        assert code == 0, err
        runs[name] = out
    timing = ("images_per_s", "elapsed_s")
    logs = [[{k: v for k, v in r.items() if k not in timing} for r in read_log(runs[n] / "log.jsonl")] for n in runs]
    assert len(logs[0]) == 2 and logs[0] == logs[1]
    a, b = (torch.load(runs[n] / "checkpoints" / "000002.pt", weights_only=True) for n in runs)
    for name in ("g", "d_face", "d_style", "d_style_latent"):
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), name


def test_metrics_on_shards_are_refused_in_one_line(sets, tmp_path):
    flags = [
        "--faces",
        str(sets["faces"][0]),
        "--styles",
        str(sets["styles"][0]),
        "--style_encoder_ckpt",
        str(sets["se"]),
    ]
    code, err = run_cli(["train", "generator", *flags, *TRAIN, "--outdir", str(tmp_path / "r"), "--metrics", "fid10"])
    assert code == 2 and "holds tar shards" in err and "Traceback" not in err
