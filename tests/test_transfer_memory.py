"""Folder transfer hands the encoders' memory back once their codes are made, with the same images."""

from pathlib import Path

import torch

from blendgan import jobs
from blendgan.cli._common import RunReport
from blendgan.io import images
from blendgan.pipeline import BlendGAN

ROOT = Path(__file__).resolve().parents[1]
FACES = sorted((ROOT / "test_imgs" / "face_imgs").glob("*.jpg"))
STYLES = sorted((ROOT / "test_imgs" / "style_imgs").glob("*.jpg"))[:1]
SIZE = 64


def test_transfer_releases_encoders_and_writes_the_face_by_face_images(recipe_checkpoints, tmp_path):
    weights = recipe_checkpoints(SIZE, tiny=True)
    bg = BlendGAN.from_checkpoints(weights["blendgan"], weights["psp_encoder"], device="cpu", batch_size=2)
    out, expected = tmp_path / "out", tmp_path / "expected"
    out.mkdir()
    expected.mkdir()
    jobs.style_transfer_folder(bg, FACES, STYLES, out, RunReport("transfer"))
    assert bg.psp_encoder is None  # dropped after the faces were encoded

    # the straightforward order (encode a face, stylize it, next face) in a fresh pipeline: same bytes
    ref = BlendGAN.from_checkpoints(weights["blendgan"], weights["psp_encoder"], device="cpu", batch_size=2)
    style_bgr = [images.read_image_bgr(p) for p in STYLES]
    zs = torch.cat([ref.embed_style_bgr(s) for s in style_bgr])
    for face_path in FACES:
        face = images.read_image_bgr(face_path)
        result = images.tensors_to_bgr(ref.stylize(ref.encode_face_bgr(face), zs, add_weight_index=6))
        for style_path, s, r in zip(STYLES, style_bgr, result):
            panel = images.hconcat([images.resize_square(face, SIZE), images.resize_square(s, SIZE), r])
            images.write_image_atomic(expected / f"{face_path.stem}_v_{style_path.stem}.jpg", panel)
    names = sorted(p.name for p in expected.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names and len(names) == len(FACES) * len(STYLES)
    for name in names:
        assert (out / name).read_bytes() == (expected / name).read_bytes(), name

    # paged-out weights keep their values: a style embedded again gives the same code, bit for bit
    bg.clear_caches()
    assert torch.equal(bg.embed_style_bgr(style_bgr[0]), zs[:1])
