"""`blendgan dataset` on made inputs: the bundled photos pasted into a canvas, copied byte for byte, stored
sideways with an EXIF orientation, truncated, faceless and tiny. The exact records kept and rejected (with
their reasons), 1 process == 2 processes (torchrun), and a run killed in each phase and resumed with
--skip_existing gives the same files as an uninterrupted one."""

import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from blendgan import dataset_tool as dt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMGS = ROOT / "test_imgs"
SIZE = ["--size", "64", "--align_transform_size", "256", "--no_progress"]
FAST = dict(size=64, transform_size=256)


def _faces_inputs(folder):
    """(folder, expected {source name: [(face, outcome)]}) where outcome is 'kept' or a rejection reason."""
    folder.mkdir()
    grace = cv2.imread(str(IMGS / "face_imgs" / "grace_hopper.jpg"))
    astro = cv2.imread(str(IMGS / "face_imgs" / "astronaut.jpg"))
    canvas = np.full((360, 720, 3), 128, np.uint8)  # two faces anywhere in a larger picture
    canvas[40:296, 30:286] = grace
    canvas[60:316, 420:676] = astro[:, ::-1]  # mirrored: not a near duplicate of the upright astronaut below
    cv2.imwrite(str(folder / "a_canvas.png"), canvas)
    (folder / "b_copy.png").write_bytes((folder / "a_canvas.png").read_bytes())
    # the astronaut photo stored rotated with EXIF orientation 6 (the viewer turns it 90 degrees clockwise)
    photo = Image.open(IMGS / "photos" / "astronaut.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.transpose(Image.Transpose.ROTATE_90).save(folder / "c_exif.jpg", quality=95, exif=exif)
    cv2.imwrite(str(folder / "d_near.jpg"), astro, [cv2.IMWRITE_JPEG_QUALITY, 80])  # re-encoded crop of c's face
    data = (IMGS / "photos" / "grace_hopper.jpg").read_bytes()
    (folder / "e_broken.jpg").write_bytes(data[: len(data) // 2])
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (200, 1, 3))
    cv2.imwrite(str(folder / "f_faceless.png"), ramp)
    cv2.imwrite(str(folder / "g_tiny.png"), grace[::16, ::16])
    # the photo itself: its astronaut is a near duplicate of c's, its weak second detection a low score
    (folder / "h_photo.jpg").write_bytes((IMGS / "photos" / "astronaut.jpg").read_bytes())
    return folder


FACES_EXPECTED = {
    ("a_canvas.png", 0): "kept",
    ("a_canvas.png", 1): "kept",
    ("b_copy.png", 0): "duplicate_file",
    ("b_copy.png", 1): "duplicate_file",
    ("c_exif.jpg", 0): "kept",
    ("d_near.jpg", 0): "near_duplicate",
    ("e_broken.jpg", None): "unreadable",
    ("f_faceless.png", None): "no_face",
    ("g_tiny.png", None): "too_small",
    ("h_photo.jpg", 0): "near_duplicate",
    ("h_photo.jpg", 1): "low_score",
}


def outcomes(summary, manifest):
    got = {(Path(r["source"]).name, r["face"]): "kept" for r in manifest}
    for r in summary["rejected"]:
        got[(Path(r["source"]).name, r["face"])] = r["reason"]
    return got


def read_manifest(outdir):
    return [json.loads(line) for line in (Path(outdir) / "manifest.jsonl").read_text().splitlines()]


def folder_bytes(outdir):
    return {p.name: p.read_bytes() for p in sorted(Path(outdir).iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """The made inputs and the reference data set (one process, command line, 2 shards)."""
    root = tmp_path_factory.mktemp("dataset")
    src = _faces_inputs(root / "src")
    ref = root / "ref"
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code, err = run_cli(["dataset", str(src), "--outdir", str(ref), "--kind", "faces", "--shards", "2", *SIZE])
    assert code == 0, err
    return {"root": root, "src": src, "ref": ref, "out": out.getvalue()}


def test_faces_kept_and_rejected_exactly(faces):
    ref = faces["ref"]
    summary, manifest = json.loads((ref / "dataset.json").read_text()), read_manifest(ref)
    assert outcomes(summary, manifest) == FACES_EXPECTED
    assert summary["counts"]["kept"] == 3 and summary["counts"]["rejected"] == 8 and summary["counts"]["files"] == 8
    near = [r for r in summary["rejected"] if r["reason"] == "near_duplicate"]
    assert all("c_exif.jpg face 0" in r["detail"] for r in near)  # found through the EXIF-rotated photo
    assert "truncated JPEG" in next(r["detail"] for r in summary["rejected"] if r["reason"] == "unreadable")
    # shards hold {key}.png + {key}.json, 64 px aligned faces, the records of the manifest
    assert [s["name"] for s in summary["shards"]] == ["faces-000000.tar", "faces-000001.tar"]
    members = {}
    for s in summary["shards"]:
        with tarfile.open(ref / s["name"]) as tar:
            for m in tar.getmembers():
                members[m.name] = tar.extractfile(m).read()
    assert sorted(members) == sorted(f"{r['key']}.{ext}" for r in manifest for ext in ("png", "json"))
    for r in manifest:
        img = cv2.imdecode(np.frombuffer(members[f"{r['key']}.png"], np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (64, 64, 3)
        assert json.loads(members[f"{r['key']}.json"]) == r
    # the report: the command's summary line and the contact sheet
    line = "3 images kept in 2 shard(s) from 8 files, 8 rejected (unreadable 1, too_small 1, no_face 1, low_score 1"
    assert line in faces["out"]
    sheet = cv2.imread(str(ref / "contact_sheet.jpg"))
    assert sheet.shape == (128, 3 * 128, 3)
    assert not (ref / ".work").exists()


def test_an_existing_data_set_is_not_overwritten(faces):
    code, err = run_cli(["dataset", str(faces["src"]), "--outdir", str(faces["ref"]), "--kind", "faces", *SIZE])
    assert code == 2 and "already holds a data set" in err and "Traceback" not in err


def test_a_killed_run_resumes_to_the_same_files(faces, monkeypatch):
    """Killed while examining (after 3 files), then killed again after writing its first shard; a third run
    with --skip_existing finishes with the reference's bytes, without examining a file twice."""
    out = faces["root"] / "killed"
    opts = dt.DatasetOptions(kind="faces", shards=2, **FAST)
    calls = []
    real_examine, real_write = dt.examine, dt.write_shard

    def examine(path, *a):
        if len(calls) == 3 and not resumed:
            raise KeyboardInterrupt
        calls.append(path.name)
        return real_examine(path, *a)

    written = []

    def write_shard(outdir, name, records):
        if written:
            raise KeyboardInterrupt
        real_write(outdir, name, records)
        written.append(name)

    monkeypatch.setattr(dt, "examine", examine)
    monkeypatch.setattr(dt, "write_shard", write_shard)
    resumed = False
    with pytest.raises(KeyboardInterrupt):
        dt.make_dataset([faces["src"]], out, opts, progress=False)
    resumed = True
    with pytest.raises(KeyboardInterrupt):
        dt.make_dataset([faces["src"]], out, opts, progress=False, skip_existing=True)
    assert written == ["faces-000000.tar"] and not (out / "dataset.json").exists()
    written.append("let the next run through")
    monkeypatch.setattr(dt, "write_shard", real_write)
    dt.make_dataset([faces["src"]], out, opts, progress=False, skip_existing=True)
    assert sorted(calls) == sorted(p.name for p in faces["src"].iterdir())  # each file examined once
    assert folder_bytes(out) == folder_bytes(faces["ref"])


@pytest.mark.distributed
def test_two_processes_write_what_one_writes(faces):
    out = faces["root"] / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2"]
    cmd += ["-m", "blendgan", "dataset", str(faces["src"]), "--outdir", str(out), "--kind", "faces", "--shards", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([*cmd, *SIZE], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("dataset:") == 1  # one summary line, from rank 0
    assert folder_bytes(out) == folder_bytes(faces["ref"])


def test_styles_square_rule_and_near_duplicates(tmp_path):
    src = tmp_path / "art"
    src.mkdir()
    styles = sorted((IMGS / "style_imgs").glob("*.jpg"))
    for f in styles:
        (src / f.name).write_bytes(f.read_bytes())
    wide = cv2.imread(str(styles[0]))
    panorama = np.concatenate([np.zeros((256, 128, 3), np.uint8), wide, np.zeros((256, 128, 3), np.uint8)], 1)
    cv2.imwrite(str(src / "z_panorama.png"), panorama)  # its centred square is the artwork itself
    cv2.imwrite(str(src / "z_smaller.jpg"), cv2.resize(cv2.imread(str(styles[-1])), (200, 200)))
    cv2.imwrite(str(src / "z_tiny.png"), wide[:20, :30])
    # colour spaces and depths the commands read: a CMYK JPEG and a 16-bit PNG (other pictures: kept)
    Image.open(IMGS / "photos" / "grace_hopper.jpg").convert("CMYK").save(src / "y_cmyk.jpg", quality=95)
    photo = cv2.imread(str(IMGS / "photos" / "astronaut.jpg")).astype(np.uint16) * 257
    cv2.imwrite(str(src / "y_deep.png"), photo)
    out = tmp_path / "ds"
    summary = dt.make_dataset([src], out, dt.DatasetOptions(kind="styles", size=64), progress=False)
    got = outcomes(summary, read_manifest(out))
    expected = {(f.name, None): "kept" for f in styles}
    expected.update({("y_cmyk.jpg", None): "kept", ("y_deep.png", None): "kept"})
    expected.update(
        {("z_panorama.png", None): "near_duplicate", ("z_smaller.jpg", None): "near_duplicate"}
        | {("z_tiny.png", None): "too_small"}
    )
    assert got == expected
    panorama_detail = next(r["detail"] for r in summary["rejected"] if r["source"].endswith("z_panorama.png"))
    assert "pHash distance 0 to" in panorama_detail and styles[0].name in panorama_detail
    with tarfile.open(out / "styles-000000.tar") as tar:
        first = tar.extractfile("00000000.png").read()
    expected_px = cv2.resize(wide, (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR), expected_px)
    assert Image.open(io.BytesIO(first)).size == (64, 64)
    deep = next(r for r in read_manifest(out) if r["source"].endswith("y_deep.png"))
    with tarfile.open(out / deep["shard"]) as tar:
        png = tar.extractfile(f"{deep['key']}.png").read()
    eight_bit = dt.square_crop(cv2.imread(str(IMGS / "photos" / "astronaut.jpg")), 64)  # 16 -> 8 bit: the photo
    assert np.array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), eight_bit)


def test_bad_flags_fail_in_one_line(tmp_path):
    for argv, words in (
        (["dataset", str(tmp_path / "missing"), "--outdir", str(tmp_path / "o"), "--kind", "faces"], "no such file"),
        (["dataset", str(IMGS), "--outdir", str(tmp_path / "o"), "--kind", "styles", "--size", "100"], "power of two"),
    ):
        code, err = run_cli(argv)
        assert code == 2 and words in err and "Traceback" not in err, err


def test_the_command_defaults_are_the_job_defaults():
    from blendgan.cli import dataset as cli

    d = dt.DatasetOptions(kind="faces")
    assert cli.KINDS == dt.KINDS and cli.RECORDS_PER_SHARD == dt.RECORDS_PER_SHARD
    assert vars(cli.DEFAULTS) == {k: getattr(d, k) for k in vars(cli.DEFAULTS)}


def test_a_resumed_run_rewrites_shards_that_do_not_hold_its_records(faces):
    """A shard left by other inputs (here: the other shard's bytes under its name) is made again, not kept."""
    out = faces["root"] / "stale"
    out.mkdir()
    (out / "faces-000001.tar").write_bytes((faces["ref"] / "faces-000000.tar").read_bytes())
    opts = dt.DatasetOptions(kind="faces", shards=2, **FAST)
    dt.make_dataset([faces["src"]], out, opts, progress=False, skip_existing=True)
    assert folder_bytes(out) == folder_bytes(faces["ref"])


def test_styles_with_faces_aligned_as_aahq_was(tmp_path):
    """--align_style_faces: an artwork with a face is FFHQ-aligned (its record names the face), one without
    keeps the square rule."""
    src = tmp_path / "art"
    src.mkdir()
    (src / "a_cartoon.jpg").write_bytes((IMGS / "style_imgs" / "cartoon_astronaut.jpg").read_bytes())
    cv2.imwrite(str(src / "b_ramp.png"), np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (256, 1, 3)))
    opts = dt.DatasetOptions(kind="styles", align_style_faces=True, **FAST)
    summary = dt.make_dataset([src], tmp_path / "ds", opts, progress=False)
    records = read_manifest(tmp_path / "ds")
    assert [(Path(r["source"]).name, r["face"]) for r in records] == [("a_cartoon.jpg", 0), ("b_ramp.png", None)]
    assert records[0]["score"] > 0.3 and len(records[0]["box"]) == 4 and summary["rejected"] == []
