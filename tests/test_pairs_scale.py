"""`blendgan pairs` at scale: the same files for any batch size and number of processes, resume, manifest, tar shards.

The 2-process runs go through `torchrun` (gloo on CPU, one thread per process), the 1-process runs through
the command in this process (two threads), so they also show that the pixels do not depend on the thread count.
"""

import json
import os
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from blendgan import distributed, pairset
from blendgan.cli import main
from blendgan.errors import UsageError
from blendgan.io import images

from helpers import run_blendgan_torchrun

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
PICS = 8


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("pairs_scale")


@pytest.fixture(scope="module")
def styles(work):
    """Three small style images (the encoder runs at each image's own resolution: keep them cheap)."""
    folder = work / "styles"
    folder.mkdir()
    for path in sorted((ROOT / "test_imgs" / "style_imgs").glob("*.jpg"))[:3]:
        images.write_image_atomic(folder / path.name, cv2.resize(cv2.imread(str(path)), (64, 64)))
    return folder


def flags(tiny_weights, styles, outdir, *extra):
    return [
        "pairs",
        "--ckpt",
        str(tiny_weights["blendgan"]),
        "--pics",
        str(PICS),
        "--device",
        "cpu",
        "--style_img_path",
        str(styles),
        "--add_weight_index",
        "4-6",
        "--random_noise",
        "--layout",
        "both",
        "--outdir",
        str(outdir),
        *extra,
    ]


def run_torchrun(args, nproc=2):
    done = run_blendgan_torchrun(args, nproc)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def tree(folder):
    """relative path -> bytes of every file under folder."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest(folder):
    return [json.loads(line) for line in (Path(folder) / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def one_process(tiny_weights, styles, work):
    """Reference run: one process, batch 4."""
    out = work / "one_b4"
    assert main(flags(tiny_weights, styles, out, "--batch_size", "4")) == 0
    return out


# ------------------------------------------------------------------------------------------ invariance


@pytest.mark.distributed
def test_same_files_for_batch_size_and_process_count(tiny_weights, styles, work, one_process):
    batch_one = work / "one_b1"
    assert main(flags(tiny_weights, styles, batch_one, "--batch_size", "1")) == 0
    two = work / "two_b3"
    run_torchrun(flags(tiny_weights, styles, two, "--batch_size", "3"))
    want = tree(one_process)
    assert len(want) == 3 * PICS + 1  # [face | stylized], face/, stylized/ per pair + the manifest
    assert tree(batch_one) == want
    assert tree(two) == want  # also: no manifest parts or temporary files left behind
    records = manifest(one_process)
    # the per-pair draws really vary, so the comparison above covers them
    assert len({r["add_weight_index"] for r in records}) > 1
    assert len({r["style_image"] for r in records}) > 1
    assert len({r["face_seed"] for r in records}) == PICS


# ------------------------------------------------------------------------------------------ manifest


def assert_jpeg_of(data, expected):
    """JPEG bytes decode to what OpenCV's JPEG (quality 95) makes of `expected` (random weights give noise-like
    images on which JPEG is far from lossless, so compare through the same encoder)."""
    ok, encoded = cv2.imencode(".jpg", expected, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(got, cv2.imdecode(encoded, cv2.IMREAD_COLOR))


def test_manifest_describes_every_file(tiny_weights, one_process, styles, recipe_models):
    records = manifest(one_process)
    assert [r["index"] for r in records] == list(range(PICS))
    files = tree(one_process)
    listed = [name for r in records for name in r["files"]]
    assert sorted(listed) == sorted(set(files) - {"manifest.jsonl"}) and len(listed) == len(set(listed))
    style_names = sorted(p.name for p in styles.iterdir())
    for r in records:
        assert r["files"] == [f"{r['key']}.jpg", f"face/{r['key']}.jpg", f"stylized/{r['key']}.jpg"]
        assert r["style_image"] in style_names and 4 <= r["add_weight_index"] <= 6
        assert r["face_seed"] == pairset.derive_seed(0, r["index"], "face")
    # a record alone gives the pixels back: face code, style image, add_weight_index, noise, truncation
    g, _ = recipe_models(SIZE, tiny=True)
    latent_avg = torch.load(tiny_weights["blendgan"], weights_only=True, mmap=True)["latent_avg"].reshape(1, -1)
    r = records[5]
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(r["face_seed"]))
    noise_rng = torch.Generator().manual_seed(r["noise_seed"])
    noise = [torch.randn(b.shape, generator=noise_rng) for b in g.noises.maps()]
    with torch.no_grad():
        z_embed = g.embedder(images.bgr_to_tensor(images.read_image_bgr(styles / r["style_image"])))
        trunc = dict(truncation=r["truncation"], truncation_latent=latent_avg, noise=noise, randomize_noise=False)
        face, _ = g([z], **trunc)
        styled, _ = g([z], z_embed=z_embed, add_weight_index=r["add_weight_index"], **trunc)
    face, styled = images.tensor_to_bgr(face), images.tensor_to_bgr(styled)
    assert_jpeg_of(files[f"face/{r['key']}.jpg"], face)
    assert_jpeg_of(files[f"stylized/{r['key']}.jpg"], styled)
    assert_jpeg_of(files[f"{r['key']}.jpg"], images.hconcat([face, styled]))


# ------------------------------------------------------------------------------------------ resume


def test_skip_existing_makes_exactly_the_missing_pairs(tiny_weights, styles, work, one_process, monkeypatch, capsys):
    out = work / "resume"
    shutil.copytree(one_process, out)
    want = tree(out)
    removed = {"000002", "000005"}
    for name in want:
        if Path(name).stem in removed:
            (out / name).unlink()
    made = []
    original = images.write_image_atomic

    def spy(path, *args, **kwargs):
        made.append(Path(path).relative_to(out).as_posix())
        return original(path, *args, **kwargs)

    monkeypatch.setattr(images, "write_image_atomic", spy)
    assert main(flags(tiny_weights, styles, out, "--skip_existing")) == 0
    assert sorted(made) == sorted(n for n in want if Path(n).stem in removed)
    assert tree(out) == want
    assert "pairs: 2 written, 6 skipped, 0 failed" in capsys.readouterr().out


def test_resume_with_other_settings_is_refused(one_process, tmp_path):
    """--skip_existing into a folder whose manifest says its pairs were drawn otherwise: refused, named."""
    shutil.copy(one_process / "manifest.jsonl", tmp_path / "manifest.jsonl")
    same = {r["index"]: r for r in manifest(one_process)}
    pairset.check_earlier_manifest(tmp_path, same)  # the same settings resume
    other = {i: {**r, "face_seed": pairset.derive_seed(1, i, "face")} for i, r in same.items()}  # --seed 1
    with pytest.raises(UsageError, match="manifest.jsonl: pair 0 was made with other settings"):
        pairset.check_earlier_manifest(tmp_path, other)


# ------------------------------------------------------------------------------------------ tar shards


def read_shards(folder):
    """(shard name -> member names in order), member name -> bytes."""
    order, members = {}, {}
    for path in sorted(Path(folder).glob("pairs-*.tar")):
        with tarfile.open(path) as tar:
            order[path.name] = tar.getnames()
            for m in tar.getmembers():
                members[m.name] = tar.extractfile(m).read()
    return order, members


def test_tar_shards_hold_the_same_images(tiny_weights, styles, work, one_process):
    """5 pairs in shards of 2: the members are the bytes of the 8-pair loose run (pair i comes from (seed, i)
    alone, so a shorter run makes the same first pairs); a deleted shard is remade byte for byte."""
    out = work / "shards"
    args = flags(tiny_weights, styles, out, "--shard_size", "2", "--batch_size", "2")
    args[args.index("--pics") + 1] = "5"
    assert main(args) == 0
    order, members = read_shards(out)
    assert sorted(os.listdir(out)) == ["manifest.jsonl", "pairs-000000.tar", "pairs-000001.tar", "pairs-000002.tar"]
    assert [len(v) for v in order.values()] == [8, 8, 4]  # 4 members a pair, 2 + 2 + 1 pairs
    loose = tree(one_process)
    records = manifest(out)
    assert len(records) == 5
    for r, ref in zip(records, manifest(one_process)):
        key = r["key"]
        assert r["shard"] == f"pairs-{r['index'] // 2:06d}.tar"
        assert r["files"] == [f"{key}.pair.jpg", f"{key}.face.jpg", f"{key}.stylized.jpg", f"{key}.json"]
        assert all(name in order[r["shard"]] for name in r["files"])
        assert members[f"{key}.pair.jpg"] == loose[f"{key}.jpg"]
        assert members[f"{key}.face.jpg"] == loose[f"face/{key}.jpg"]
        assert members[f"{key}.stylized.jpg"] == loose[f"stylized/{key}.jpg"]
        assert json.loads(members[f"{key}.json"]) == r
        assert {k: v for k, v in r.items() if k not in ("files", "shard")} == {
            k: v for k, v in ref.items() if k != "files"
        }
    # resume: a missing shard is made again, byte for byte, the others are left alone
    want = tree(out)
    (out / "pairs-000002.tar").unlink()
    os.utime(out / "pairs-000000.tar", (1, 1))
    assert main(args + ["--skip_existing"]) == 0
    assert tree(out) == want
    assert os.stat(out / "pairs-000000.tar").st_mtime == 1


# ------------------------------------------------------------------------------------------ small parts


def test_derive_seed_is_the_documented_blake2b_mix():
    import hashlib

    digest = hashlib.blake2b(b"blendgan.pairs.v1|7|12|face", digest_size=8).digest()
    assert pairset.derive_seed(7, 12, "face") == int.from_bytes(digest, "little") & (2**63 - 1)
    seeds = {pairset.derive_seed(s, i, k) for s in (0, 1) for i in range(50) for k in ("face", "style", "noise")}
    assert len(seeds) == 300


def test_add_weight_index_ranges():
    assert pairset.parse_add_weight_index("6") == (6, 6)
    assert pairset.parse_add_weight_index("4-8") == (4, 8)
    for bad in ("8-4", "four", "4-"):
        with pytest.raises(UsageError):
            pairset.parse_add_weight_index(bad)


def test_bad_range_is_a_one_line_usage_error(tiny_weights, tmp_path, capsys):
    assert (
        main(
            [
                "pairs",
                "--ckpt",
                str(tiny_weights["blendgan"]),
                "--pics",
                "1",
                "--add_weight_index",
                "8-4",
                "--outdir",
                str(tmp_path),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--add_weight_index" in err
    assert not list(tmp_path.iterdir())


def test_torchrun_environment_and_round_robin_shares(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.launched_world() == (2, 4, 0)
    shares = [distributed.interleave(range(10), r, 4) for r in range(4)]
    assert sorted(i for s in shares for i in s) == list(range(10))
    assert shares[2] == [2, 6]
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    assert distributed.launched_world() == (0, 1, 0)
    ctx = distributed.setup("cpu")
    assert not ctx.distributed and ctx.all_reduce_sum([3, 4]) == [3, 4] and ctx.all_reduce_max(5) == 5


# ------------------------------------------------------------------------------------------ face edits (issue 34)


@pytest.fixture(scope="module")
def sefa_file(tiny_weights, work):
    from helpers import run_cli

    out = work / "sefa"
    code, err = run_cli(["directions", "--method", "sefa", "--top", "2", "--ckpt", str(tiny_weights["blendgan"]),
                         "--outdir", str(out), "--device", "cpu"])  # fmt: skip
    assert code == 0, err
    return out / "directions.safetensors"


def edit_flags(tiny_weights, styles, outdir, *extra):
    """Pairs with the generator's stored noise (an edit draws from W+ codes) and a strength range (drawn per pair,
    so the edited path's per-strength batches are exercised)."""
    args = flags(tiny_weights, styles, outdir, "--strength", "0.5-1", *extra)
    args.remove("--random_noise")
    args[args.index("--pics") + 1] = "4"
    return args


@pytest.fixture(scope="module")
def edit_runs(tiny_weights, styles, work, sefa_file):
    """Trees of three runs: no flag, amount 0, and an edit."""
    runs = {}
    for label, extra in [
        ("plain", []),
        ("zero", ["--directions", str(sefa_file), "--edit", "sefa_0=0"]),
        ("edited", ["--directions", str(sefa_file), "--edit", "sefa_0=3", "--edit", "sefa_1=-2"]),
    ]:
        assert main(edit_flags(tiny_weights, styles, work / f"edit_{label}", "--batch_size", "4", *extra)) == 0
        runs[label] = work / f"edit_{label}"
    return runs


def test_pairs_edit_amount_zero_is_byte_identical_and_an_edit_moves_both_images(edit_runs):
    plain, zero, edited = (tree(edit_runs[k]) for k in ("plain", "zero", "edited"))
    assert plain and zero == plain  # every image and the manifest, byte for byte
    assert edited.keys() == plain.keys()
    for r in manifest(edit_runs["plain"]):
        for name in r["files"]:  # the face, the stylized face and the pair of every record changed
            assert edited[name] != plain[name], name
    records = manifest(edit_runs["edited"])
    assert all(r["edit"]["amounts"] == {"sefa_0": 3.0, "sefa_1": -2.0} for r in records)
    assert [{k: v for k, v in r.items() if k != "edit"} for r in records] == manifest(edit_runs["plain"])


def test_an_edited_pair_is_drawn_from_the_edited_face_codes(edit_runs, tiny_bg, sefa_file, styles):
    """A record of the edited run gives its pixels back: mapping + truncation, repeated, moved, then the face and
    the stylized face of the same codes at the record's strength."""
    from blendgan.editing.apply import Edits

    edit = Edits(tiny_bg.load_directions(sefa_file, 4), {"sefa_0": 3.0, "sefa_1": -2.0})
    files = tree(edit_runs["edited"])
    for r in manifest(edit_runs["edited"])[:2]:
        z = torch.randn(1, 512, generator=torch.Generator().manual_seed(r["face_seed"]))
        codes = edit(tiny_bg.face_codes_from_z(z, r["truncation"], tiny_bg.latent_avg))
        z_embed = tiny_bg.embed_style_bgr(images.read_image_bgr(styles / r["style_image"]))
        face = images.tensor_to_bgr(tiny_bg.reconstruct(codes))
        styled = images.tensor_to_bgr(tiny_bg.stylize(codes, z_embed, r["add_weight_index"], strength=r["strength"]))
        assert_jpeg_of(files[f"face/{r['key']}.jpg"], face)
        assert_jpeg_of(files[f"stylized/{r['key']}.jpg"], styled)


@pytest.mark.parametrize("random_noise", [False, True])
def test_the_edited_path_with_no_move_draws_the_original_pairs(tiny_bg, styles, random_noise):
    """The W+ path (mapping and truncation done before the generator, the same noise maps: the stored ones, or the
    pair's own with --random_noise) at a zero move gives the pixels of `sample_pair`: the edit is the only
    difference between an edited and an unedited pair."""
    from blendgan.jobs.pairs import _make_pairs

    class NoMove:
        active = True

        def __call__(self, codes):
            return codes

    recipe = pairset.PairRecipe(seed=0, truncation=0.7, add_weight_index=(4, 6), style=("latent", True),
                                strength=(0.5, 1.0), random_noise=random_noise)  # fmt: skip
    recs = [recipe.draws(i) for i in range(4)]
    assert (recs[0]["noise_seed"] is not None) == random_noise
    mean = tiny_bg.latent_avg.reshape(1, -1).float()
    want = _make_pairs(tiny_bg, recs, None, {}, None, mean, 0.7)
    got = _make_pairs(tiny_bg, recs, None, {}, None, mean, 0.7, NoMove())
    for a, b in zip(want[0] + want[1], got[0] + got[1]):
        assert np.array_equal(a, b)  # the same float operations in the same order: the same bytes on a CPU


def test_pairs_edit_with_random_noise_draws_each_pair_with_its_own_maps(tiny_weights, styles, tmp_path, sefa_file):
    """--edit with --random_noise runs (the zero-move test above shows both images take the pair's maps), and the
    maps reach the pictures: an edited run with random noise differs from one with the stored noise."""
    from helpers import run_cli

    edit = ["--directions", str(sefa_file), "--edit", "sefa_0=1"]
    pictures = {}
    for name in ("random", "stored"):
        args = flags(tiny_weights, styles, tmp_path / name, *edit)
        if name == "stored":
            args.remove("--random_noise")
        code, err = run_cli(args)
        assert code == 0, err
        pictures[name] = {k: v for k, v in tree(tmp_path / name).items() if not k.endswith((".json", ".jsonl"))}
    assert pictures["random"].keys() == pictures["stored"].keys() and pictures["random"]
    assert all(pictures["random"][k] != pictures["stored"][k] for k in pictures["random"])


@pytest.mark.distributed
def test_edited_pairs_are_the_same_for_one_and_two_processes(tiny_weights, styles, work, sefa_file, edit_runs):
    edit = ["--directions", str(sefa_file), "--edit", "sefa_0=3", "--edit", "sefa_1=-2"]
    two = work / "edit_two"
    run_torchrun(edit_flags(tiny_weights, styles, two, "--batch_size", "1", *edit))
    assert tree(two) == tree(edit_runs["edited"])
