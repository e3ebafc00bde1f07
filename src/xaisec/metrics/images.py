"""Image-side metrics: how much the attack changed the input.

Inputs are two float batches (N, C, H, W) in [0, 1] of the same shape (clean, adversarial); each
function returns a tensor (N,) on the clean batch's device (``aggregate`` gives the mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xaisec.metrics._validate import image_pair
from xaisec.utils.checks import XaisecError


def gaussian_kernel1d(size: int, sigma: float, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian weights (size,) centred on the middle tap (size odd)."""
    if size < 1 or size % 2 == 0:
        raise XaisecError(f"kernel size must be a positive odd integer, got {size}")
    if sigma <= 0:
        raise XaisecError(f"sigma must be positive, got {sigma}")
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    w = torch.exp(-0.5 * (r / sigma) ** 2)
    return w / w.sum()


def gaussian_filter(x: torch.Tensor, size: int, sigma: float, *, padding: str = "reflect") -> torch.Tensor:
    """Depthwise separable Gaussian filter of (N, C, H, W) -> same shape (``padding``: reflect, replicate)."""
    c = x.shape[1]
    w = gaussian_kernel1d(size, sigma, dtype=x.dtype, device=x.device)
    pad = (size - 1) // 2
    x = F.pad(x, (pad, pad, pad, pad), mode=padding)
    x = F.conv2d(x, w.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return F.conv2d(x, w.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)


def ssim(
    clean: torch.Tensor,
    adv: torch.Tensor,
    *,
    kernel_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per sample, (N,), at most 1 (1 for identical images).

    Gaussian window 11 x 11 with sigma 1.5, constants C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with
    ``data_range`` L = 1, reflect padding so the SSIM map has the input size, and the mean over
    channels and all pixels: the defaults of ``torchmetrics.functional.structural_similarity_index_measure``
    with ``data_range=1.0`` (agreement within 1e-5 is tested). Higher is more similar. Needs H, W > 5.
    """
    clean, adv = image_pair(clean, adv)
    pad = (kernel_size - 1) // 2
    if min(clean.shape[-2:]) <= pad:
        raise XaisecError(
            f"ssim with kernel_size {kernel_size} needs images larger than {pad} pixels per side, "
            f"got {tuple(clean.shape[-2:])}; use a smaller kernel_size"
        )
    n = clean.shape[0]
    moments = torch.cat([clean, adv, clean * clean, adv * adv, clean * adv])
    stats = gaussian_filter(moments, kernel_size, sigma)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(n)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = (e_xx - mu_xx).clamp_min(0)
    var_y = (e_yy - mu_yy).clamp_min(0)
    cov = e_xy - mu_xy
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


def noise_rate(clean: torch.Tensor, adv: torch.Tensor, **ssim_options: float) -> torch.Tensor:
    """AdvEdge's noise rate ``1 - SSIM(clean, adv)``, (N,), 0 for identical images. Lower is stealthier."""
    return 1 - ssim(clean, adv, **ssim_options)  # type: ignore[arg-type]


def image_mse(clean: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel difference over C*H*W, (N,) in [0, 1]. Lower is stealthier."""
    clean, adv = image_pair(clean, adv)
    return (adv - clean).pow(2).flatten(1).mean(1)


def linf_norm(clean: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """L-infinity norm of the perturbation ``max |adv - clean|``, (N,) in [0, 1]. Lower is stealthier."""
    clean, adv = image_pair(clean, adv)
    return (adv - clean).abs().flatten(1).max(1).values


def l2_norm(clean: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """L2 norm of the perturbation ``sqrt(sum (adv - clean)^2)`` over C*H*W (not normalised), (N,).

    Lower is stealthier.
    """
    clean, adv = image_pair(clean, adv)
    return (adv - clean).flatten(1).norm(dim=1)
