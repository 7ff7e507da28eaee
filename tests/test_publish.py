"""`blendgan publish`: the folder for the Hub (the files as safetensors, a model card whose YAML metadata reads
back), its upload to a local stand-in for the Hub (conftest's `hub`), and the published adapter used by hf://
name, checked against its base generator as a local one is."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from hub_helpers import make_fitted_files

from blendgan import weights as ck
from blendgan.cli import main
from blendgan.io import images
from blendgan.weights import safetensors_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fit_run(tiny_weights, tmp_path_factory):
    """A run folder as `blendgan fit-style` leaves it (files made for the test, not fitted)."""
    run = tmp_path_factory.mktemp("run") / "my_style"
    run.mkdir()
    files = make_fitted_files(tiny_weights["blendgan"], run)
    (run / "config.json").write_text(json.dumps({"iters": 40, "rank": 2, "references": ["ref.jpg"]}))
    (run / "report.json").write_text(json.dumps({"step": 40, "style_taken": {"base": 0.1, "code+adapter": 0.4}}))
    (run / "log.jsonl").write_text('{"step": 20, "loss": 0.5}\n{"step": 40, "loss": 0.25}\n')
    (run / "samples").mkdir()
    for step in (20, 40):
        sheet = (torch.rand(8, 16, 3) * 255).byte().numpy()
        images.write_image_atomic(run / "samples" / f"{step:06d}.jpg", sheet)
    return run, files


def card_meta(folder):
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_dry_run_folder_of_a_fit_style_run(fit_run, tiny_weights, tmp_path, capsys):
    run, files = fit_run
    out = tmp_path / "pub"
    assert main(["publish", str(run), "--repo", "me/my-style", "--dry_run", "--outdir", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    names = {"README.md", "style_code.safetensors", "adapter.safetensors", "config.json", "report.json", "sample.jpg"}
    assert {p.name for p in out.iterdir()} == names
    for name in ("style_code.safetensors", "adapter.safetensors"):
        assert (out / name).read_bytes() == files[name.split(".")[0]].read_bytes()  # the same file, metadata and all
    assert (out / "sample.jpg").read_bytes() == (run / "samples" / "000040.jpg").read_bytes()  # the latest sheet

    meta, text = card_meta(out)
    generator, _ = ck.load_generator(tiny_weights["blendgan"])
    from blendgan.fitting.adapter import generator_fingerprint

    bg = meta["blendgan"]
    assert meta["library_name"] == "blendgan" and "adapter" in meta["tags"] and "style-code" in meta["tags"]
    assert bg["base_fingerprint"] == generator_fingerprint(generator)
    assert {f["name"]: f["kind"] for f in bg["files"]} == {
        "style_code.safetensors": "style_code",
        "adapter.safetensors": "adapter",
    }
    for f in bg["files"]:
        assert f["sha256"] == ck.sha256_file(out / f["name"]) and f["base_fingerprint"] == bg["base_fingerprint"]
    assert bg["config"] == {"iters": 40, "rank": 2, "references": ["ref.jpg"]}
    assert bg["metrics"]["style_taken"]["code+adapter"] == 0.4 and bg["metrics"]["last_log"] == {
        "step": 40,
        "loss": 0.25,
    }
    assert bg["made_with"] == "blendgan fit-style (run my_style)" and bg["sample"] == "sample.jpg"
    assert "--style_code hf://me/my-style/style_code.safetensors" in text and "authors" in text  # use, licence


def test_a_checkpoint_is_published_as_safetensors_with_its_fingerprint(tiny_weights, tmp_path):
    out = tmp_path / "pub"
    assert main(["publish", str(tiny_weights["blendgan"]), "--repo", "me/gen", "--dry_run", "--outdir", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"README.md", "blendgan.safetensors"}
    assert safetensors_file.metadata(out / "blendgan.safetensors")["format"] == "pt"
    a, _ = ck.load_generator(tiny_weights["blendgan"])
    b, _ = ck.load_generator(out / "blendgan.safetensors")
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    meta, _ = card_meta(out)
    from blendgan.fitting.adapter import generator_fingerprint

    assert (
        meta["blendgan"]["base_fingerprint"] == generator_fingerprint(a) == meta["blendgan"]["files"][0]["fingerprint"]
    )


def test_upload_to_the_hub_and_use_by_name(
    fit_run, hub, tiny_weights, recipe_checkpoints, tmp_path, monkeypatch, capsys
):
    """A real upload to the local Hub stand-in (huggingface_hub's plain commit API), then the published adapter
    used by hf:// name: it works with its generator and is refused, one line, with another one."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)  # the stand-in has no Xet storage
    monkeypatch.delenv("BLENDGAN_OFFLINE")
    out = tmp_path / "pub"
    assert main(["publish", str(fit_run[0]), "--repo", "me/my-style", "--private", "--outdir", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(out), f"{hub.endpoint}/me/my-style"]
    assert hub.created == {
        "me/my-style": {"name": "my-style", "organization": "me", "visibility": "private", "type": "model"}
    }
    assert hub.repos["me/my-style"] == {f.name: f.read_bytes() for f in out.iterdir()}  # one commit, every file
    assert [p for m, p in hub.requests if m == "POST" and "/commit/" in p] == ["/api/models/me/my-style/commit/main"]

    photo = ROOT / "test_imgs" / "face_imgs" / "astronaut.jpg"
    style = ROOT / "test_imgs" / "style_imgs" / "cartoon_astronaut.jpg"
    adapter = "hf://me/my-style/adapter.safetensors:0.5"

    def transfer(weights, outdir):
        flags = ["--ckpt", str(weights["blendgan"]), "--psp_encoder_ckpt", str(weights["psp_encoder"])]
        argv = ["transfer", "--input_img_path", str(photo), "--style_img_path", str(style), "--adapter", adapter]
        return main([*argv, *flags, "--device", "cpu", "--outdir", str(tmp_path / outdir)])

    assert transfer(tiny_weights, "ok") == 0
    other = recipe_checkpoints(64, seed=77, tiny=True)  # another generator of the same shapes
    capsys.readouterr()
    assert transfer(other, "refused") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "made for another base checkpoint" in err[0]


def test_upload_failure_is_one_line(fit_run, hub, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    hub.repos["me/taken"] = {}  # exists: create_repo(exist_ok=True) goes on, the commit then succeeds
    assert main(["publish", str(fit_run[0]), "--repo", "me/taken", "--outdir", str(tmp_path / "a")]) == 0
    hub.close()  # nobody answers any more
    capsys.readouterr()
    assert main(["publish", str(fit_run[0]), "--repo", "me/other", "--outdir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: could not upload {tmp_path / 'b'} to me/other (")
    assert "hf auth login" in err[0]


def test_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        (str(tmp_path / "empty"), "me/x"): "no style_code.safetensors, adapter.safetensors or checkpoints/*.pt",
        (str(tmp_path / "nothing"), "me/x"): "no such run folder or file",
        (str(tmp_path / "notes.txt"), "me/x"): "notes.txt",
        (str(tmp_path / "empty"), "no-owner"): "write the repository as owner/name",
    }
    for (source, repo), message in cases.items():
        assert main(["publish", source, "--repo", repo, "--dry_run", "--outdir", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_a_training_run_publishes_its_latest_snapshot(tiny_weights, tmp_path):
    run = tmp_path / "train_run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "000010.pt").write_bytes(b"an older snapshot: not read")
    shutil.copyfile(tiny_weights["blendgan"], run / "checkpoints" / "000020.pt")  # the g_ema layout of a snapshot
    (run / "config.json").write_text(json.dumps({"kind": "generator", "iters": 20}))
    (run / "log.jsonl").write_text('{"step": 20, "fid": 80.5}\n')
    out = tmp_path / "pub"
    assert main(["publish", str(run), "--repo", "me/gen", "--dry_run", "--outdir", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"README.md", "blendgan.safetensors", "config.json"}
    meta, _ = card_meta(out)
    bg = meta["blendgan"]
    assert bg["made_with"] == "blendgan train (run train_run)" and bg["metrics"] == {
        "last_log": {"step": 20, "fid": 80.5}
    }
    assert bg["config"] == {"kind": "generator", "iters": 20} and bg["files"][0]["kind"] == "generator"


def test_the_folder_holds_only_this_publish(fit_run, tiny_weights, tmp_path, capsys):
    out = tmp_path / "pub"
    assert main(["publish", str(fit_run[0]), "--repo", "me/x", "--dry_run", "--outdir", str(out)]) == 0
    assert main(["publish", str(tiny_weights["blendgan"]), "--repo", "me/x", "--dry_run", "--outdir", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"README.md", "blendgan.safetensors"}  # nothing left from the run
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert main(["publish", str(fit_run[0]), "--repo", "me/x", "--dry_run", "--outdir", str(tmp_path / "mine")]) == 2
    assert "is not empty; pass a new or empty folder" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
