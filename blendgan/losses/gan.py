"""StyleGAN2 loss terms as small functions (rosinality's train.py / stylegan2-ada's loss.py)."""

import math

import torch
import torch.nn.functional as F


def d_logistic_loss(real_pred, fake_pred):
    """Discriminator's logistic loss: E[softplus(-D(real))] + E[softplus(D(fake))]."""
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def g_nonsaturating_loss(fake_pred):
    """Generator's non-saturating loss: E[softplus(-D(G(z)))] = -E[log sigmoid(D(G(z)))]."""
    return F.softplus(-fake_pred).mean()


def r1_penalty(real_pred, real_images):
    """R1 (Mescheder et al. 2018): E over samples of ||∂ΣD/∂x||² at real images (`real_images` must
    require grad and `real_pred` come from them). Differentiable (create_graph) for the D update."""
    (grad,) = torch.autograd.grad(real_pred.sum(), real_images, create_graph=True)
    return grad.square().reshape(grad.shape[0], -1).sum(1).mean()


def path_lengths(fake_images, latents, noise):
    """Per-sample path length |J_wᵀ y| (StyleGAN2 §3.2): y = noise / sqrt(H·W) ~ N(0, I/(H·W)), J the
    Jacobian of the image w.r.t. the per-layer latents [N, L, 512]; the norm is over 512, averaged over L."""
    h, w = fake_images.shape[2:]
    y = noise / math.sqrt(h * w)
    (grad,) = torch.autograd.grad((fake_images * y).sum(), latents, create_graph=True)
    return torch.sqrt(grad.square().sum(2).mean(1))


def path_length_penalty(lengths, mean_path_length, decay=0.01, batch_mean=None):
    """(penalty, new running mean): penalty = E[(|J_wᵀy| − a)²] with a the running mean of the lengths,
    updated as a + decay·(mean − a) (`batch_mean`: the mean over all processes, default this batch's)."""
    m = lengths.detach().mean() if batch_mean is None else batch_mean
    new_mean = mean_path_length + decay * (float(m) - mean_path_length)
    return (lengths - new_mean).square().mean(), new_mean


def lazy_regularization(lr, betas, every):
    """Adam settings for a network regularised every `every` minibatches (StyleGAN2 App. B): the
    regularisation step then counts as 1/every of a step, so lr and betas are scaled by c = every/(every+1)
    (beta ** c keeps the averaging horizon in images)."""
    if every <= 0:
        return lr, tuple(betas)
    c = every / (every + 1)
    return lr * c, tuple(b**c for b in betas)
