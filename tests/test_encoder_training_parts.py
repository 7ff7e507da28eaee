"""Parts of the encoder trainers: projection head, NT-Xent and its cross-rank gather, retrieval accuracy,
style-preserving views, VGG19 weight mapping, and the pSp losses."""

import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from blendgan.errors import CheckpointError, UsageError
from blendgan.losses import contrastive
from blendgan.losses.identity import identity_crop, load_arcface
from blendgan.losses.psp import PSPLossWeights, build_psp_loss, w_norm
from blendgan.losses.vgg_weights import load_vgg19_features
from blendgan.models.arcface import ArcFaceIRSE50
from blendgan.models.projector import Projector
from blendgan.models.style_encoder import vgg19_features
from blendgan.training import views

# ------------------------------------------------------------------------------ projection head


def test_projector_has_the_original_keys_and_shapes():
    sd = Projector().state_dict()
    assert list(sd) == [f"projector.{i}.{p}" for i in range(4) for p in ("weight", "bias")]
    assert all(tuple(v.shape) == ((512, 512) if k.endswith("weight") else (512,)) for k, v in sd.items())


def test_projector_applies_fused_lrelu_on_the_first_three_layers_only():
    torch.manual_seed(0)
    p = Projector()
    with torch.no_grad():
        for i in range(4):
            p.projector[i].bias.normal_()
    x = torch.randn(3, 512, dtype=torch.float64)
    h = x
    for i in range(4):
        w, b = p.projector[i].weight.double(), p.projector[i].bias.double()
        h = h @ (w / math.sqrt(512)).t() + b
        if i < 3:
            h = math.sqrt(2) * torch.where(h >= 0, h, 0.2 * h)
    assert torch.allclose(p.double()(x), h, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------ NT-Xent


def hand_nt_xent(z1, z2, t):
    """Term by term with Python floats."""
    views_ = [list(map(float, v)) for v in list(z1) + list(z2)]
    n = len(z1)

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denom = sum(math.exp(cos(views_[i], views_[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(cos(views_[i], views_[j]) / t) / denom)
    return total / (2 * n)


@pytest.mark.parametrize("t", [0.5, 0.1])
def test_nt_xent_matches_a_hand_computation(t):
    z1 = torch.tensor([[1.0, 0.0, 0.5], [0.2, 1.0, -0.3]], dtype=torch.float64)
    z2 = torch.tensor([[0.9, 0.1, 0.4], [-0.5, 0.8, 0.1]], dtype=torch.float64)
    assert contrastive.nt_xent(z1, z2, t).item() == pytest.approx(hand_nt_xent(z1, z2, t), rel=1e-12)


def test_nt_xent_is_low_when_partners_agree_and_high_when_they_are_swapped():
    z = torch.eye(4, dtype=torch.float64)
    good = contrastive.nt_xent(z, z + 0.01, 0.1).item()
    bad = contrastive.nt_xent(z, z.flip(0), 0.1).item()
    assert good < 0.01 < 5 < bad


def test_retrieval_top1():
    z = torch.eye(4)
    assert contrastive.retrieval_top1(z, z + 0.01) == 1.0
    assert contrastive.retrieval_top1(z, z.flip(0)) == 0.0
    half = z.clone()
    half[2:] = z[2:].flip(0)  # views 2, 3 match each other's partner
    assert contrastive.retrieval_top1(z, half) == 0.5


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank, world, port, x, w, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        b = x.shape[0] // (2 * world)
        n = x.shape[0] // 2
        w = w.clone().requires_grad_(True)
        z1 = x[:n][rank * b : (rank + 1) * b] @ w
        z2 = x[n:][rank * b : (rank + 1) * b] @ w
        loss = contrastive.nt_xent(contrastive.gather_with_grad(z1), contrastive.gather_with_grad(z2), 0.2)
        loss.backward()
        grad = w.grad.clone()
        dist.all_reduce(grad)
        out[rank] = (loss.item(), grad / world)  # gradient averaged over the ranks, as DDP does
    finally:
        dist.destroy_process_group()


def test_gathered_negatives_of_two_ranks_equal_one_batch():
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 6, generator=g, dtype=torch.float64)  # views 1 of 4 artworks, then views 2
    w = torch.randn(6, 5, generator=g, dtype=torch.float64)
    ref_w = w.clone().requires_grad_(True)
    ref = contrastive.nt_xent(x[:4] @ ref_w, x[4:] @ ref_w, 0.2)
    ref.backward()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_gather_worker, args=(2, _free_port(), x, w, out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        loss, grad = results[rank]
        assert loss == pytest.approx(ref.item(), rel=1e-12)
        assert torch.allclose(grad, ref_w.grad, rtol=1e-10, atol=1e-12)


def test_gather_without_a_process_group_is_the_identity():
    x = torch.randn(3, 2)
    assert contrastive.gather_with_grad(x) is x


# ------------------------------------------------------------------------------ views


def _art(n=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_views_are_deterministic_under_a_generator_and_differ_across_seeds():
    imgs = _art()
    a = views.random_views(imgs, torch.Generator().manual_seed(5), 24)
    b = views.random_views(imgs, torch.Generator().manual_seed(5), 24)
    c = views.random_views(imgs, torch.Generator().manual_seed(6), 24)
    assert a.shape == (3, 3, 24, 24)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_identity_and_flip_parameters_reproduce_the_image():
    imgs = _art()
    ident = {k: torch.zeros(3, dtype=torch.float64) for k in ("cx", "cy", "angle", "flip")}
    ident.update(half_w=torch.ones(3, dtype=torch.float64), half_h=torch.ones(3, dtype=torch.float64))
    assert torch.allclose(views.apply_views(imgs, ident, 32), imgs, atol=1e-5)
    flipped = dict(ident, flip=torch.ones(3, dtype=torch.float64))
    assert torch.allclose(views.apply_views(imgs, flipped, 32), imgs.flip(-1), atol=1e-5)


def test_views_keep_colours_and_a_ranks_slice_equals_the_global_batch():
    flat = torch.tensor([0.3, -0.6, 0.9]).reshape(1, 3, 1, 1).expand(4, 3, 32, 32).contiguous()
    out = views.random_views(flat, torch.Generator().manual_seed(1), 16)
    assert torch.allclose(out, flat[:, :, :16, :16], atol=1e-6)  # no colour change, no foreign borders
    imgs = _art(4)
    params = views.sample_view_params(4, torch.Generator().manual_seed(2))
    whole = views.apply_views(imgs, params, 20)
    part = views.apply_views(imgs[2:], views.slice_params(params, 2, 4), 20)
    assert torch.equal(whole[2:], part)
    assert (params["half_w"] <= 1.1 + 1e-9).all() and (params["angle"].abs() <= math.radians(10) + 1e-9).all()


# ------------------------------------------------------------------------------ VGG19 weights


def _torchvision_vgg19_file(path, seed=0):
    """A file with torchvision's vgg19 key names (features.N.*, classifier.*)."""
    torch.manual_seed(seed)
    sd = {f"features.{k}": v for k, v in vgg19_features().state_dict().items()}
    sd["classifier.6.weight"] = torch.zeros(10, 4)  # ignored by the mapping
    torch.save(sd, path)
    return sd


def test_torchvision_vgg19_file_is_mapped_by_key_name(tmp_path):
    sd = _torchvision_vgg19_file(tmp_path / "vgg19.pth")
    vgg = load_vgg19_features(tmp_path / "vgg19.pth")
    got = vgg.state_dict()
    assert set(got) == {k[len("features.") :] for k in sd if k.startswith("features.")}
    assert all(torch.equal(got[k], sd[f"features.{k}"]) for k in got)
    assert not any(p.requires_grad for p in vgg.parameters())


def test_a_broken_vgg19_file_is_one_line(tmp_path):
    sd = _torchvision_vgg19_file(tmp_path / "vgg19.pth")
    del sd["features.34.weight"]
    torch.save(sd, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError) as err:
        load_vgg19_features(tmp_path / "cut.pth")
    assert "features.34.weight" in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------ pSp losses


def test_w_norm_is_the_mean_frobenius_norm_of_the_offsets():
    off = torch.zeros(2, 3, 4)
    off[0, 0, 0], off[1] = 3.0, 1.0
    assert w_norm(off).item() == pytest.approx((3.0 + math.sqrt(12)) / 2)


def test_missing_loss_weights_are_refused_with_the_flag_or_disabled_explicitly(tmp_path):
    with pytest.raises(UsageError) as err:
        build_psp_loss(PSPLossWeights(lpips_lambda=0, id_lambda=0.1))
    assert "--id_weights" in str(err.value) and "--id_lambda 0" in str(err.value)
    with pytest.raises(UsageError) as err:
        build_psp_loss(PSPLossWeights(lpips_lambda=0), id_weights=tmp_path / "model_ir_se50.pth")
    assert "model_ir_se50.pth" in str(err.value) and "--id_weights" in str(err.value)
    with pytest.raises(UsageError) as err:
        build_psp_loss(PSPLossWeights(id_lambda=0), vgg_weights=tmp_path / "none.pt")
    assert "--vgg_weights" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UsageError, match="--w_norm_lambda"):
        build_psp_loss(PSPLossWeights(lpips_lambda=0, id_lambda=0, w_norm_lambda=-1))
    loss = build_psp_loss(PSPLossWeights(lpips_lambda=0, id_lambda=0, w_norm_lambda=0.5))
    y, y_hat, off = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), torch.full((1, 2, 2), 0.5)
    total, terms = loss(y_hat, y, off)
    assert set(terms) == {"l2", "w_norm"} and total.item() == pytest.approx(1.0 + 0.5 * 1.0)


def test_perceptual_loss_uses_the_given_vgg_and_vanishes_on_identical_images(tmp_path):
    _torchvision_vgg19_file(tmp_path / "vgg19.pth")
    loss = build_psp_loss(PSPLossWeights(l2_lambda=0, id_lambda=0), vgg_weights=tmp_path / "vgg19.pth")
    y = _art(2, 32)
    y_hat = y.clone().requires_grad_(True)
    same, _ = loss(y_hat, y, None)
    other, terms = loss(y.flip(-2), y, None)
    assert same.item() == pytest.approx(0.0, abs=1e-6) and other.item() > 0.01
    assert other.item() == pytest.approx(0.8 * terms["perceptual"].item())
    (loss(y_hat + 0.1 * torch.randn_like(y), y, None)[0]).backward()
    assert y_hat.grad.abs().sum() > 0


def test_identity_loss_with_arcface_weights(tmp_path):
    torch.manual_seed(0)
    net = ArcFaceIRSE50()
    torch.save(net.state_dict(), tmp_path / "model_ir_se50.pth")
    loss = build_psp_loss(
        PSPLossWeights(l2_lambda=0, lpips_lambda=0, id_lambda=1.0), id_weights=tmp_path / "model_ir_se50.pth"
    )
    y = _art(2, 64, seed=1)
    same, _ = loss(y, y, None)
    other, _ = loss(y.flip(0), y, None)
    assert same.item() == pytest.approx(0.0, abs=1e-5)
    e = net.eval()(identity_crop(y))
    expected = (1 - (e.flip(0) * e).sum(1)).mean()
    assert other.item() == pytest.approx(expected.item(), rel=1e-5) and other.item() > 0
    crop = identity_crop(y)
    ref = F.adaptive_avg_pool2d(F.adaptive_avg_pool2d(y, 256)[:, :, 35:223, 32:220], 112)
    assert crop.shape == (2, 3, 112, 112) and torch.allclose(crop, ref)


def test_a_wrong_identity_weights_file_is_one_line(tmp_path):
    _torchvision_vgg19_file(tmp_path / "vgg19.pth")
    with pytest.raises(CheckpointError) as err:
        load_arcface(tmp_path / "vgg19.pth")
    assert "ArcFace" in str(err.value) and "--id_weights" in str(err.value) and "\n" not in str(err.value)
