"""blendgan.weights: the original file layouts load into models that compute exactly what the recipe
weights compute; every kind of bad file is refused with one line naming the file and the fix; nothing in
a checkpoint can run code; safetensors round-trips bit for bit; manifests are enforced."""

import argparse
import json
import os
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from blendgan import weights as ck
from blendgan.cli import convert as convert_cli
from blendgan.cli import info as info_cli
from blendgan.cli import run_module
from blendgan.errors import CheckpointError
from blendgan.models import Generator, PSPEncoder
from blendgan.models.loading import from_state_dict
from blendgan.weights import manifest

import helpers

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def files(tmp_path_factory):
    return helpers.session_recipe_files(tmp_path_factory)


def reference_generator(files, size, narrow=False):
    return from_state_dict(
        helpers.model_factory("generator", size, narrow), files.generator_state_dict(size, tiny=narrow)
    )


# The layout and round-trip tests run on the narrow test weights (`helpers.TINY`: the same keys and code) in
# test-fast, and on the published widths, whose 1.3 GB style matrix goes through every converter, in `make test`.
WIDTHS = [pytest.param(True, id="narrow"), pytest.param(False, id="published", marks=pytest.mark.slow)]


def reference_psp(inner, latent_avg):
    sd = {f"encoder.{k}": v for k, v in inner.items()}
    sd["latent_avg"] = latent_avg
    return from_state_dict(lambda: PSPEncoder(latent_avg.shape[0]), sd)


def generate(g, seed=0):
    """One image through the whole generator path: face mapping, style mapping + blending, synthesis."""
    gen = torch.Generator().manual_seed(seed)
    z, z_embed = torch.randn(1, 512, generator=gen), torch.randn(1, 512, generator=gen)
    with torch.no_grad():
        return g([z], z_embed=z_embed, add_weight_index=6, randomize_noise=False)[0]


def image(size=64, seed=1):
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def save(obj, path):
    return helpers.save(obj, path)


@pytest.fixture
def tiny(tmp_path):
    """Small files with the right keys and shapes (stride-0 zeros), one per kind, size 64."""
    return {kind: save(helpers.shape_only_checkpoint(kind, 64), tmp_path / f"{kind}.pt") for kind in ck.KINDS}


def refused(fn, *args, **kwargs):
    with pytest.raises(CheckpointError) as err:
        fn(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def reference_64(files):
    """narrow -> what the 64 px recipe generator computes, made once for the tests that compare files with it:
    {'image': generate(ref), 'style': ref.embedder(image())}."""
    made = {}

    def get(narrow=False):
        if narrow not in made:
            ref = reference_generator(files, 64, narrow)
            with torch.no_grad():
                made[narrow] = {"image": generate(ref), "style": ref.embedder(image())}
        return made[narrow]

    return get


# --------------------------------------------------------------------------- recipe files load exactly
@pytest.mark.parametrize("size", [64, 256])
def test_generator_file_computes_like_the_recipe(files, size, reference_64):
    model, info = ck.load_generator(files.blendgan(size))
    assert info["size"] == size and info["truncation"] is None and info["path"] == files.blendgan(size)
    torch.testing.assert_close(info["latent_avg"], helpers.blendgan_checkpoint({})["latent_avg"], rtol=0, atol=0)
    assert all(p.dtype == torch.float32 and not p.is_meta and not p.requires_grad for p in model.parameters())
    assert not model.training
    if size == 64:  # the style encoder inside the generator (same tensors for every size)
        with torch.no_grad():
            assert torch.equal(model.embedder(image()), reference_64()["style"])
        expected = reference_64()["image"]
    else:
        expected = generate(reference_generator(files, size))
    assert torch.equal(generate(model), expected)


def test_generator_size_is_read_from_the_file_and_checked(files):
    path = files.blendgan(64)
    assert ck.load_generator(path, size=64)[0].size == 64
    message = refused(ck.load_generator, path, size=256)
    assert message == f"{path} is a 64 generator but --size 256 was given; pass --size 64 (or omit it)"


@pytest.fixture(scope="module")
def psp_recipes():
    """{size: psp_state_dict(size)} for 64 and 256 from one draw: every entry of the 64 px encoder is an
    entry of the 256 px one with the same key and shape (the latter has 4 more style heads), and a recipe
    value depends on its key, shape and seed alone."""
    inner, _ = big = helpers.psp_state_dict(256)
    keys = [
        (k[len("encoder.") :], shape)
        for k, shape, _ in helpers.model_keys("psp_encoder", 64)
        if k.startswith("encoder.")
    ]
    assert all(tuple(inner[k].shape) == shape for k, shape in keys)
    seed = helpers.GENERATOR_SEED + 1  # psp_state_dict's default
    small = (OrderedDict((k, inner[k]) for k, _ in keys), helpers.recipe_tensor("latent_avg", [10, 512], seed).float())
    return {64: small, 256: big}


@pytest.mark.parametrize("size", [64, 256])
def test_psp_file_computes_like_the_recipe(files, psp_recipes, size):
    inner, latent_avg = psp_recipes[size]
    ref = reference_psp(inner, latent_avg)
    model = ck.load_psp_encoder(files.psp_encoder(size, state=(inner, latent_avg)))
    assert torch.equal(model.latent_avg, latent_avg)
    assert not model.training
    assert same_tensors(model, ref)
    # what the file's weights compute, through every layer and style head: the inner encoder on a 64 px
    # image (the wrapper would first pool any image to 256 px, 16x the work; pooling and adding
    # latent_avg use no weights but latent_avg, compared above)
    with torch.no_grad():
        out = model.encoder(image(64))
        assert out.shape == (1, helpers.n_styles_for(size), 512)
        assert torch.equal(out, ref.encoder(image(64)))


@pytest.mark.parametrize("shape", [[10, 512], [1, 512], [512]])
def test_psp_latent_avg_shapes_broadcast(files, shape):
    ckpt = dict(ck.read_checkpoint(files.psp_encoder(64)))
    full = ckpt["latent_avg"]
    ckpt["latent_avg"] = full[: shape[0]] if len(shape) == 2 else full[0]
    model = ck.psp_encoder_from_checkpoint(ckpt)
    # PSPEncoder.forward adds its latent_avg buffer, like the original's latent_avg.repeat(N, 1, 1)
    assert torch.equal(model.latent_avg, ckpt["latent_avg"].reshape(-1, 512).expand(10, 512))


def test_psp_latent_avg_wrong_or_missing(files):
    ckpt = dict(ck.read_checkpoint(files.psp_encoder(64)))
    ckpt["latent_avg"] = ckpt["latent_avg"][:3]
    assert "latent_avg has shape [3, 512]; expected [10, 512], [1, 512] or [512]" in refused(
        ck.psp_encoder_from_checkpoint, ckpt, source="p.pt"
    )
    del ckpt["latent_avg"]
    assert "has no 'latent_avg' tensor" in refused(ck.psp_encoder_from_checkpoint, ckpt, source="p.pt")


def test_psp_ignores_other_prefixes_and_reads_top_level(files):
    ckpt = ck.read_checkpoint(files.psp_encoder(64))
    flat = {**ckpt["state_dict"], "decoder.style.1.weight": torch.zeros(3), "latent_avg": ckpt["latent_avg"]}
    model = ck.psp_encoder_from_checkpoint(flat)  # no 'state_dict' entry: the top-level dict is filtered
    sd = model.state_dict()
    assert sd.keys() == {*ckpt["state_dict"], "latent_avg"}
    assert all(sd[k].data_ptr() == v.data_ptr() for k, v in ckpt["state_dict"].items())  # adopted, not copied


@pytest.fixture(scope="module")
def style_encoder_file(files, tmp_path_factory):
    """narrow -> a bare style_encoder.pt cut from the 64 px recipe generator file."""
    made = {}

    def get(narrow=False):
        if narrow not in made:
            g_ema = ck.read_checkpoint(files.blendgan(64, tiny=narrow))["g_ema"]
            bare = {k[len("embedder.") :]: v for k, v in g_ema.items() if k.startswith("embedder.")}
            made[narrow] = save(bare, tmp_path_factory.mktemp("style") / "style_encoder.pt")
        return made[narrow]

    return get


@pytest.mark.parametrize("narrow", WIDTHS)
def test_style_encoder_layouts(files, style_encoder_file, reference_64, narrow):
    expected = reference_64(narrow)["style"]
    for path in (style_encoder_file(narrow), files.blendgan(64, tiny=narrow)):
        with torch.no_grad():
            assert torch.equal(ck.load_style_encoder(path)(image()), expected), path

    blendgan = ck.read_checkpoint(files.blendgan(64, tiny=narrow))
    prefixed = {k: v for k, v in blendgan["g_ema"].items() if k.startswith("embedder.")}
    bare = {k[len("embedder.") :]: v for k, v in prefixed.items()}
    layouts = {
        "bare": bare,
        "prefixed": prefixed,
        "state_dict bare": {"state_dict": bare},
        "state_dict prefixed": {"state_dict": prefixed},
        "embedder entry": {"embedder": bare},
        "g_ema prefixed": {"g_ema": prefixed},
        "whole blendgan.pt": blendgan,
    }
    for name, ckpt in layouts.items():
        sd = ck.style_encoder_from_checkpoint(ckpt).state_dict()
        assert sd.keys() == bare.keys(), name
        assert all(sd[k].data_ptr() == v.data_ptr() for k, v in bare.items()), name  # the file's own tensors
    width = f" ({helpers.TINY['style_width']} channels wide)" if narrow else ""  # a narrow file's width is named
    assert (
        f"does not hold a BlendGAN style encoder{width}: keys 2 missing (embedder_mlp.3.weight, "
        "embedder_mlp.3.bias)"
        in refused(ck.style_encoder_from_checkpoint, {k: v for k, v in bare.items() if "mlp.3" not in k})
    )


# --------------------------------------------------------------------------- safetensors
@pytest.mark.parametrize("narrow", WIDTHS)
def test_safetensors_round_trip_is_bit_identical(files, tmp_path, reference_64, narrow):
    original = ck.read_checkpoint(files.blendgan(64, tiny=narrow))
    pt = save({**original, "truncation": 0.7, "opts": argparse.Namespace(lr=0.002, size=64)}, tmp_path / "blendgan.pt")
    del original  # unmap it: keep at most two generators resident
    out = ck.convert_to_safetensors(pt)
    assert out == tmp_path / "blendgan.safetensors" and ck.sniff_file(out) == "safetensors"

    from_pt, info_pt = ck.generator_from_checkpoint(ck.read_checkpoint(pt, prefer_safetensors=False))
    from_st, info_st = ck.load_generator(pt)  # the sibling is preferred
    assert info_st["path"] == out
    assert info_st["size"] == info_pt["size"] == 64 and info_st["truncation"] == info_pt["truncation"] == 0.7
    assert torch.equal(info_st["latent_avg"], info_pt["latent_avg"])
    sd_pt, sd_st = from_pt.state_dict(), from_st.state_dict()
    assert sd_pt.keys() == sd_st.keys() and all(torch.equal(sd_pt[k], sd_st[k]) for k in sd_pt)
    assert torch.equal(generate(from_st), reference_64(narrow)["image"])  # from_pt holds the same tensors (above)
    d = ck.describe_checkpoint(out, sha256=False)
    assert (d["kind"], d["size"], d["latent_avg"], d["truncation"], d["check"]) == (
        "generator",
        64,
        [1, 512],
        0.7,
        "ok",
    )

    # the .pt is replaced, even by a file with an older date: the sibling no longer stands in for it
    os.utime(pt, ns=(pt.stat().st_atime_ns, pt.stat().st_mtime_ns - 10**9))
    with pytest.warns(ck.CheckpointWarning, match="was converted from an earlier blendgan.pt"):
        assert ck.load_generator(pt)[1]["path"] == pt


def same_tensors(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("narrow", WIDTHS)
def test_safetensors_psp_and_style_encoder_round_trip(files, style_encoder_file, tmp_path, capsys, narrow):
    psp, style_encoder_file = files.psp_encoder(64, tiny=narrow), style_encoder_file(narrow)
    out = tmp_path / "psp.safetensors"
    assert run_module(convert_cli, [str(psp), "--out", str(out)]) == 0
    n_tensors = len(ck.read_checkpoint(psp)["state_dict"]) + 1  # encoder.* and latent_avg
    assert f"-> {out} (psp_encoder, size 64, {n_tensors} tensors" in capsys.readouterr().out
    assert same_tensors(ck.load_psp_encoder(out), ck.load_psp_encoder(psp))  # same class: same outputs
    style_out = ck.convert_to_safetensors(style_encoder_file, tmp_path)
    assert style_out == tmp_path / "style_encoder.safetensors"
    assert same_tensors(ck.load_style_encoder(style_out), ck.load_style_encoder(style_encoder_file))


def test_convert_refuses_what_it_cannot_convert(tmp_path):
    st = tmp_path / "x.safetensors"
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, st)
    assert "already a safetensors file" in refused(ck.convert_to_safetensors, st)
    other = save({"a": torch.zeros(2)}, tmp_path / "other.pt")
    assert "not a BlendGAN checkpoint" in refused(ck.convert_to_safetensors, other)


def test_sibling_preference(tmp_path):
    from safetensors.torch import save_file

    pt = save({"w": torch.zeros(3)}, tmp_path / "w.pt")
    st = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(3)}, st)
    os.utime(pt, (time.time() - 10, time.time() - 10))
    assert torch.equal(ck.read_checkpoint(pt)["w"], torch.ones(3))  # newer, valid sibling wins
    assert torch.equal(ck.read_checkpoint(pt, prefer_safetensors=False)["w"], torch.zeros(3))

    os.utime(st, (time.time() - 100, time.time() - 100))  # stale: older than the .pt
    with pytest.warns(ck.CheckpointWarning, match="older than w.pt"):
        assert torch.equal(ck.read_checkpoint(pt)["w"], torch.zeros(3))

    st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")  # damaged header, newer than the .pt
    with pytest.warns(ck.CheckpointWarning, match="not a readable safetensors file"):
        assert torch.equal(ck.read_checkpoint(pt)["w"], torch.zeros(3))

    pt.unlink()
    save_file({"w": torch.ones(3)}, st)
    assert torch.equal(ck.read_checkpoint(pt)["w"], torch.ones(3))  # only the sibling exists


# --------------------------------------------------------------------------- manifest
def test_manifest_is_verified(tmp_path, tiny):
    path = tiny["psp_encoder"]
    digest, size = ck.sha256_file(path), path.stat().st_size
    ck.update_manifest(tmp_path, path.name, {"sha256": digest, "size": size, "kind": "psp_encoder"})
    assert ck.verify_manifest(path) is True
    assert "state_dict" in ck.read_checkpoint(path)

    ck.update_manifest(tmp_path, path.name, {"sha256": "0" * 64, "size": size, "kind": "psp_encoder"})
    message = refused(ck.load_psp_encoder, path)
    assert message.startswith(f"{path} does not match manifest.json (sha256 {digest[:16]}")
    assert "remove its entry" in message

    ck.update_manifest(tmp_path, path.name, {"sha256": digest, "size": size + 1, "kind": "psp_encoder"})
    assert f"has {size} bytes but manifest.json records {size + 1}" in refused(ck.read_checkpoint, path)

    ck.update_manifest(tmp_path, path.name, None)
    assert ck.verify_manifest(path) is None and json.loads((tmp_path / "manifest.json").read_text()) == {}

    (tmp_path / "manifest.json").write_text("{not json")
    assert "is not a valid manifest" in refused(ck.read_checkpoint, path)


def test_manifest_hashes_again_only_after_the_file_changed(tmp_path, tiny, monkeypatch):
    path = tiny["psp_encoder"]
    ck.update_manifest(tmp_path, path.name, {"sha256": ck.sha256_file(path), "size": path.stat().st_size})
    hashed = []
    real_sha256 = ck.sha256_file
    monkeypatch.setattr(manifest, "sha256_file", lambda p: hashed.append(Path(p).name) or real_sha256(p))
    monkeypatch.setattr(manifest, "_VERIFIED", set())  # as in a fresh process

    assert ck.verify_manifest(path) is True and hashed == [path.name]  # first check hashes ...
    assert ck.read_manifest(tmp_path)[path.name]["mtime_ns"] == path.stat().st_mtime_ns  # ... and stamps
    monkeypatch.setattr(manifest, "_VERIFIED", set())
    ck.load_psp_encoder(path)
    assert hashed == [path.name]  # a later run trusts the unchanged file
    assert ck.verify_manifest(path, rehash=True) is True and len(hashed) == 2  # `blendgan info` always hashes

    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # same size, new content, new mtime
    path.write_bytes(bytes(data))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert "does not match manifest.json" in refused(ck.load_psp_encoder, path)
    assert len(hashed) == 3


def test_manifest_mismatch_of_a_sibling_falls_back_to_the_pt(tmp_path):
    from safetensors.torch import save_file

    pt = save({"w": torch.zeros(3)}, tmp_path / "w.pt")
    st = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(3)}, st)
    ck.update_manifest(tmp_path, st.name, {"sha256": "f" * 64, "size": st.stat().st_size})
    with pytest.warns(ck.CheckpointWarning, match="failed its check"):
        assert torch.equal(ck.read_checkpoint(pt)["w"], torch.zeros(3))


# --------------------------------------------------------------------------- bad files
def test_missing_file_says_how_to_get_weights(tmp_path):
    message = refused(ck.load_generator, tmp_path / "blendgan.pt")
    assert message.startswith(f"checkpoint {tmp_path / 'blendgan.pt'} not found")
    assert "blendgan download --only blendgan" in message
    assert "https://drive.google.com/file/d/1eF04jKMLAb9DvzI72m8Akn5ykWf3EafE" in message
    message = refused(ck.load_psp_encoder, tmp_path / "encoder.pt")
    assert "blendgan download" in message and "14nevG94hNkkwaoK5eJLF1iv78cv5O8fN" in message
    assert "no checkpoint file given" in refused(ck.load_generator, "")
    assert "is a directory" in refused(ck.load_generator, tmp_path)


@pytest.mark.parametrize(
    "page, what",
    [
        (
            "<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users have "
            "viewed or downloaded this file recently.</body></html>",
            "download quota exceeded",
        ),
        (
            "\n<html><body>Google Drive can't scan this file for viruses. "
            "blendgan.pt (1.4G) is too large.</body></html>",
            "cannot scan this file for viruses",
        ),
    ],
)
def test_html_page_saved_as_checkpoint(tmp_path, page, what):
    path = tmp_path / "blendgan.pt"
    path.write_text(page)
    message = refused(ck.load_generator, path)
    assert message.startswith(f"{path} is Google Drive's '{what}'")
    assert "blendgan download --force --only blendgan" in message and "drive.google.com" in message


def test_truncated_and_empty_files(tmp_path, tiny):
    data = tiny["psp_encoder"].read_bytes()
    trunc = tmp_path / "psp_encoder_trunc.pt"
    trunc.write_bytes(data[: len(data) // 2])
    assert "is truncated or corrupt (an incomplete download?)" in refused(ck.load_psp_encoder, trunc)

    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(ck.read_checkpoint(legacy)["w"], torch.ones(2))  # old format: readable, not mapped
    legacy.write_bytes(legacy.read_bytes()[:40])
    assert "truncated or corrupt" in refused(ck.read_checkpoint, legacy)

    from safetensors.torch import save_file

    st = tmp_path / "t.safetensors"
    save_file({"w": torch.ones(1000)}, st)
    st.write_bytes(st.read_bytes()[:1000])
    assert "is not a valid safetensors file" in refused(ck.read_checkpoint, st)

    empty = tmp_path / "blendgan.pt"
    empty.write_bytes(b"")
    message = refused(ck.read_checkpoint, empty)
    assert "is empty (0 bytes)" in message and "blendgan download --force --only blendgan" in message

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"GIF89a" + bytes(100))
    assert "is not a PyTorch checkpoint (it starts with b'GIF89a" in refused(ck.read_checkpoint, junk)

    tensor = save(torch.ones(3), tmp_path / "tensor.pt")
    assert "holds a Tensor, not a dict of weights" in refused(ck.read_checkpoint, tensor)


class Payload:
    """Unpickling this calls exec(), which creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "payload_ran"
    evil = save({"g_ema": {"add_weight": torch.ones(1, 10, 1)}, "x": Payload(marker)}, tmp_path / "blendgan.pt")
    # the payload is real: an unrestricted load runs it
    torch.load(evil, weights_only=False)
    assert marker.exists()
    marker.unlink()

    for loader in (ck.read_checkpoint, ck.load_generator, ck.describe_checkpoint, ck.convert_to_safetensors):
        message = refused(loader, evil)
        assert message.startswith(f"{evil} was refused: loading it would run Python code (it references exec)")
        assert not marker.exists()


def test_plain_pickle_is_refused_in_one_line_without_torch_warnings(tmp_path, capsys):
    import pickle
    import warnings

    marker = tmp_path / "payload_ran"
    path = tmp_path / "blendgan.pt"
    path.write_bytes(pickle.dumps({"g_ema": {}, "x": Payload(marker)}, protocol=4))  # not torch.save's format
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_module(info_cli, [str(path)]) == 2
    assert [str(w.message) for w in caught] == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was refused: loading it would run Python code" in err[0]
    assert not marker.exists()


def test_only_namespace_is_allowed(tmp_path):
    from fractions import Fraction

    ok = save({"state_dict": {"a": torch.ones(1)}, "opts": argparse.Namespace(lr=0.1, names=["x"])}, tmp_path / "ok.pt")
    assert ck.read_checkpoint(ok)["opts"] == argparse.Namespace(lr=0.1, names=["x"])
    other = save({"state_dict": {}, "opts": Fraction(1, 3)}, tmp_path / "other.pt")
    assert "references fractions.Fraction" in refused(ck.read_checkpoint, other)


def test_wrong_kind_of_file_names_the_right_flag(tiny, tmp_path):
    message = refused(ck.load_generator, tiny["psp_encoder"])
    assert "has no 'g_ema' generator weights" in message
    assert message.endswith("this looks like a pSp encoder checkpoint (psp_encoder.pt); pass it as --psp_encoder_ckpt")
    assert refused(ck.load_psp_encoder, tiny["generator"]).endswith("pass it as --ckpt")
    assert refused(ck.load_generator, tiny["style_encoder"]).endswith("pass it as --style_encoder_ckpt")

    stylegan2 = helpers.shape_only_checkpoint("generator", 64)
    blend_keys = [k for k in stylegan2["g_ema"] if k.startswith(("embedder.", "embedding.", "add_weight"))]
    stylegan2["g_ema"] = {k: v for k, v in stylegan2["g_ema"].items() if k not in blend_keys}
    message = refused(ck.load_generator, save(stylegan2, tmp_path / "sg2.pt"), size=64)
    assert (
        f"keys {len(blend_keys)} missing (add_weight, embedder.embedder.feature_extractor.vgg_layers.0.weight,"
        in message
    )
    assert "plain StyleGAN2 generator" in message


def test_wrong_keys_and_shapes_are_listed(tmp_path):
    ckpt = helpers.shape_only_checkpoint("generator", 64)
    g = ckpt["g_ema"]
    g["conv1.extra.weight"] = g.pop("conv1.conv.weight")
    message = refused(ck.load_generator, save(ckpt, tmp_path / "keys.pt"))
    assert (
        "does not hold a 64x64 BlendGAN generator (channel multiplier 2): keys 1 missing (conv1.conv.weight)"
        " and 1 unexpected (conv1.extra.weight)" in message
    )

    ckpt = helpers.shape_only_checkpoint("generator", 64)
    ckpt["g_ema"]["style.1.weight"] = torch.zeros(()).expand(512, 256)
    message = refused(ck.load_generator, save(ckpt, tmp_path / "shape.pt"))
    assert "1 tensors have the wrong shape (style.1.weight: file [512, 256], model [512, 512])" in message

    with torch.device("meta"):
        narrow = Generator(64, channel_multiplier=1).state_dict()
    ckpt = {"g_ema": {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in narrow.items()}}
    message = refused(ck.load_generator, save(ckpt, tmp_path / "cm1.pt"))
    assert "wrong shape" in message and message.endswith("pass --channel_multiplier 1")


def test_size_mismatch(tiny, tmp_path):
    big = save(helpers.shape_only_checkpoint("generator", 256), tmp_path / "g256.pt")
    assert (
        refused(ck.load_generator, big, size=1024)
        == f"{big} is a 256 generator but --size 1024 was given; pass --size 256 (or omit it)"
    )
    message = refused(ck.load_psp_encoder, tiny["psp_encoder"], size=1024)
    assert "is a pSp encoder for 64x64 generators (10 styles) but the size in use is 1024" in message


def test_check_and_describe_shape_only_files(tiny):
    for kind, path in tiny.items():
        ckpt = ck.read_checkpoint(path)
        assert ck.guess_kind(ckpt) == kind
        assert ck.check_checkpoint(ckpt, kind, path)["size"] == (None if kind == "style_encoder" else 64)
        d = ck.describe_checkpoint(path)
        assert (d["kind"], d["check"], d["manifest"]) == (kind, "ok", "absent")
        assert d["sha256"] == ck.sha256_file(path)
    assert "has no 'g_ema'" in refused(ck.check_checkpoint, ck.read_checkpoint(tiny["psp_encoder"]), "generator")
    with torch.device("meta"):
        ghost = {"g_ema": Generator(64).state_dict()}
    assert f"holds no data for {len(ghost['g_ema'])} tensors" in refused(ck.check_checkpoint, ghost, "generator")


def test_info_command(tiny, tmp_path, capsys):
    assert run_module(info_cli, [str(tiny["generator"]), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["kind"], d["size"], d["latent_avg"], d["check"]) == ("generator", 64, [1, 512], "ok")
    bad = save({"a": torch.zeros(1)}, tmp_path / "a.pt")
    assert run_module(info_cli, [str(bad)]) == 1
    assert "not a BlendGAN generator, pSp encoder or style encoder" in capsys.readouterr().out
    assert run_module(info_cli, [str(tmp_path / "blendgan.pt")]) == 2
    assert "not found; run `blendgan download" in capsys.readouterr().err


# --------------------------------------------------------------------------- memory: no second copy
RSS_SCRIPT = r"""
import json, sys, time
import psutil, torch
from blendgan import weights as checkpoints


def peak_rss():
    # VmHWM belongs to this program's own address space; ru_maxrss would include the parent's pages
    # counted in the forked child before exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


path = sys.argv[1]
before = psutil.Process().memory_info().rss
t = time.perf_counter()
model, info = checkpoints.load_generator(path)
load_s = time.perf_counter() - t
after_load = peak_rss()
t = time.perf_counter()
total = sum(float(p.double().sum()) if p.numel() < 1e6 else float(p.sum()) for p in model.state_dict().values())
touch_s = time.perf_counter() - t
print(json.dumps({"before": before, "peak_after_load": after_load, "peak": peak_rss(), "load_s": load_s,
                  "touch_s": touch_s, "path": str(info["path"])}))
"""


def measure_load(path):
    """Peak RSS and timings of loading a generator and reading every tensor, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(path)], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_1024_generator_loads_without_a_second_copy(files, tmp_path):
    pt = files.blendgan(1024)
    st = ck.convert_to_safetensors(pt, tmp_path / "blendgan.safetensors")
    for path in (pt, st):
        m = measure_load(path)
        growth = m["peak"] - m["before"]
        assert m["path"] == str(path)
        # loading maps the file and reads no weights: a few MB of code pages (measured ~7 MB), not 1.47 GB
        assert m["peak_after_load"] - m["before"] < 64 * 2**20, (path, m)
        # every tensor was read, so the file's pages are resident once; a copy would double that
        assert growth < 1.6 * path.stat().st_size, (path, m)


def test_loading_a_checkpoint_imports_neither_dynamo_nor_sympy(tmp_path):
    """Building models on the meta device must not run meta-tensor math: its decompositions import
    torch._dynamo and sympy, which made every load ~1 s slower and ~70 MB larger."""
    code = (
        "import sys, torch\n"
        "from blendgan.models import Generator, PSPEncoder, StyleEncoder\n"
        "from blendgan.models.loading import from_state_dict\n"
        "for make in (lambda: Generator(64), lambda: PSPEncoder(10), StyleEncoder):\n"
        "    with torch.device('meta'):\n"
        "        shapes = {k: v.shape for k, v in make().state_dict().items()}\n"
        "    sd = {k: torch.zeros(()).expand(s) for k, s in shapes.items()}  # no memory\n"
        "    assert from_state_dict(make, sd).state_dict().keys() == sd.keys()\n"
        "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
