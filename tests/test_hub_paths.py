"""hf://owner/repo/file[@revision] wherever a command takes a file by path (--ckpt, --psp_encoder_ckpt,
--adapter, --style_code): fetched through huggingface_hub from a local stand-in for the Hub (conftest's `hub`),
the outputs are those of the same files by path."""

import os
from pathlib import Path

import pytest
import torch
from hub_helpers import make_fitted_files

from blendgan import weights as ck
from blendgan.cli import main
from blendgan.io import images
from blendgan.weights.hub import HubName, parse_hub_name, resolve_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """hf:// names are fetched only when downloads are on (conftest turns them off for every test)."""
    monkeypatch.delenv("BLENDGAN_OFFLINE")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "grace.png"
    images.write_image_atomic(path, images.read_image_bgr(ROOT / "test_imgs" / "photos" / "grace_hopper.jpg"))
    return path


@pytest.fixture(scope="module")
def fitted_files(tiny_weights, tmp_path_factory):
    return make_fitted_files(tiny_weights["blendgan"], tmp_path_factory.mktemp("fitted"))


def test_names_parse_and_paths_pass_through():
    assert parse_hub_name("hf://o/r/sub/f.pt@v2", file=True) == HubName("o/r", "sub/f.pt", "v2")
    assert str(HubName("o/r", "sub/f.pt", "v2")) == "hf://o/r/sub/f.pt@v2"
    assert resolve_path("pretrained_models/blendgan.pt") == "pretrained_models/blendgan.pt"


def stylize(tmp_path, outdir, ckpt, psp, code, adapter, photo):
    argv = ["stylize", str(photo), "--style_code", code, "--adapter", f"{adapter}:0.5", "--ckpt", ckpt]
    return main([*argv, "--psp_encoder_ckpt", psp, "--outdir", str(tmp_path / outdir), "--device", "cpu"])


def test_hub_names_give_the_outputs_of_the_same_files_by_path(hub, tiny_weights, fitted_files, photo, tmp_path, capsys):
    files = {**tiny_weights, **fitted_files}
    for path in files.values():
        hub.add("owner/blendgan-tiny", path.name, path.read_bytes())
    by_path = [str(files[k]) for k in ("blendgan", "psp_encoder", "style_code", "adapter")]
    by_name = [f"hf://owner/blendgan-tiny/{files[k].name}@main" for k in ("blendgan", "psp_encoder")]
    by_name += [f"hf://owner/blendgan-tiny/{files[k].name}" for k in ("style_code", "adapter")]
    assert stylize(tmp_path, "path", *by_path, photo) == 0
    assert stylize(tmp_path, "hub", *by_name, photo) == 0, capsys.readouterr().err
    made = sorted(p.name for p in (tmp_path / "path").iterdir())
    assert made and made == sorted(p.name for p in (tmp_path / "hub").iterdir())
    for name in made:
        assert (tmp_path / "path" / name).read_bytes() == (tmp_path / "hub" / name).read_bytes(), name
    heads = {p for m, p in hub.requests if m == "HEAD"}
    assert {f"/owner/blendgan-tiny/resolve/main/{files[k].name}" for k in files} == heads


def test_hub_name_problems_are_one_line(hub, tiny_weights, photo, capsys, monkeypatch):
    hub.add("owner/blendgan-tiny", "blendgan.pt", tiny_weights["blendgan"].read_bytes())
    cases = {
        "hf://owner/blendgan-tiny/nothing.pt": "could not download hf://owner/blendgan-tiny/nothing.pt (no such file",
        "hf://owner/missing/blendgan.pt": "no such repository",
        "hf://owner/blendgan-tiny": "not a Hub name; write hf://owner/repo/path/to/file[@revision]",
    }
    for value, message in cases.items():
        psp = ["--psp_encoder_ckpt", str(tiny_weights["psp_encoder"])]
        code = main(["stylize", str(photo), "--style_img", str(photo), "--ckpt", value, *psp])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], (value, err)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(hub.requests)
    code = main(["stylize", str(photo), "--ckpt", "hf://owner/blendgan-tiny/blendgan.pt", *psp])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "is not in the Hugging Face cache and downloads are off (HF_HUB_OFFLINE=1)" in err[0]
    assert len(hub.requests) == n


def test_loaders_take_hub_names(hub, tiny_weights):
    """The Python API too: BlendGAN.from_checkpoints (every loader of blendgan.weights) takes hf:// names."""
    from blendgan.pipeline import BlendGAN

    for name in ("blendgan", "psp_encoder"):
        hub.add("owner/blendgan-tiny", f"{name}.pt", tiny_weights[name].read_bytes())
    by_name = BlendGAN.from_checkpoints(
        "hf://owner/blendgan-tiny/blendgan.pt", "hf://owner/blendgan-tiny/psp_encoder.pt"
    )
    by_path = BlendGAN.from_checkpoints(tiny_weights["blendgan"], tiny_weights["psp_encoder"])
    for a, b in ((by_name.generator, by_path.generator), (by_name.psp_encoder, by_path.psp_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_converting_a_hub_file_writes_here_not_into_the_cache(hub, tiny_weights, tmp_path, monkeypatch, capsys):
    hub.add("owner/blendgan-tiny", "blendgan.pt", tiny_weights["blendgan"].read_bytes())
    monkeypatch.chdir(tmp_path)
    assert main(["convert", "hf://owner/blendgan-tiny/blendgan.pt"]) == 0
    assert (tmp_path / "blendgan.safetensors").is_file()
    assert not list(Path(os.environ["HF_HUB_CACHE"]).rglob("*.safetensors"))
    a, _ = ck.load_generator(tiny_weights["blendgan"])
    b, _ = ck.load_generator(tmp_path / "blendgan.safetensors")
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
