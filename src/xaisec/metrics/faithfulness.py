"""Faithfulness of attribution maps: deletion and insertion curves (Petsiuk et al., RISE, BMVC 2018).

Pixels are ordered by map value, highest first (ties: lower row-major index first). For the
deletion curve they are replaced, in that order, by a baseline image; for the insertion curve the
image starts as the baseline and the original pixels are put back in that order. At ``steps + 1``
points (0, 1/steps, ..., 1 of the pixels changed; ``floor(i * H*W / steps + 1/2)`` pixels at point i)
the softmax probability of the target class is recorded. The AUC is the trapezoid rule over the
x-axis [0, 1], so it lies in [0, 1].

A faithful map gives a LOW deletion AUC (lower is better) and a HIGH insertion AUC (higher is better).
All channels of a pixel change together. Baselines (RISE's choices are the defaults): deletion
replaces pixels by zeros (black), insertion starts from a Gaussian-blurred copy (11 x 11, sigma 5,
replicate padding); either accepts "zeros", "blur" or an image tensor.

Batched: all N x (steps + 1) perturbed images are built on the fly in chunks of ``batch_size`` and
evaluated with one forward pass per chunk; there is no loop over images.
"""

from __future__ import annotations

import torch
from torch import nn

from xaisec.metrics._validate import as_maps
from xaisec.metrics.images import gaussian_filter
from xaisec.utils.checks import XaisecError, check_images, check_targets, module_device

BASELINES = ("zeros", "blur")
BLUR_SIZE, BLUR_SIGMA = 11, 5.0




def make_baseline(x: torch.Tensor, baseline: str | torch.Tensor) -> torch.Tensor:
    """The (N, C, H, W) baseline image for ``x``: "zeros", "blur" or a tensor broadcast to x's shape."""
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(device=x.device, dtype=x.dtype)
        if b.dim() == 3:
            b = b.unsqueeze(0)
        try:
            return b.expand_as(x)
        except RuntimeError as exc:
            raise XaisecError(
                f"baseline tensor of shape {tuple(baseline.shape)} does not broadcast to "
                f"images {tuple(x.shape)}"
            ) from exc
    if baseline == "zeros":
        return torch.zeros_like(x)
    if baseline == "blur":
        return gaussian_filter(x, BLUR_SIZE, BLUR_SIGMA, padding="replicate")
    raise XaisecError(f"unknown baseline {baseline!r}; choose from {BASELINES} or pass an image tensor")


@torch.no_grad()
def faithfulness_curve(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor | int | None = None,
    *,
    mode: str = "deletion",
    steps: int = 50,
    baseline: str | torch.Tensor | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Target-class probability along the deletion or insertion path, (N, steps + 1) in [0, 1].

    Args:
        model: classifier on [0, 1] (N, C, H, W) images returning logits (put it in eval mode).
        x: images (N, C, H, W) in [0, 1].
        maps: attribution maps (N, H, W) or (N, 1, H, W) at the input resolution.
        target: class (N,) or int; None uses the model's prediction on ``x``.
        mode: "deletion" (column 0 is the original image, the last the baseline) or "insertion"
            (column 0 is the baseline, the last the original image).
        steps: number of intervals of the curve (``steps + 1`` points, N * (steps + 1) forward rows).
        baseline: "zeros", "blur" or an image tensor; None means "zeros" for deletion and "blur" for
            insertion.
        batch_size: rows per forward pass.
    """
    if mode not in ("deletion", "insertion"):
        raise XaisecError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if not isinstance(steps, int) or steps < 1:
        raise XaisecError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise XaisecError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = module_device(model)
    x = check_images(x).to(device)
    maps = as_maps(maps, "maps").to(device)
    n, _, h, w = x.shape
    if maps.shape != (n, h, w):
        raise XaisecError(
            f"maps must have shape ({n}, {h}, {w}) to match the images, got {tuple(maps.shape)} "
            "(resize with xaisec.interpreters.resize_maps)"
        )
    if target is None:
        target = torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, n, batch_size)])
    t = check_targets(target, n, num_classes=getattr(model, "num_classes", None), device=device)
    base = make_baseline(x, baseline if baseline is not None else ("zeros" if mode == "deletion" else "blur"))

    p = h * w
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(p, device=device).expand(n, p))
    # number of pixels changed at each point: floor(i * P / steps + 1/2)
    changed_at = (torch.arange(steps + 1, device=device) * p + steps // 2) // steps

    points = steps + 1
    probs = torch.empty(n * points, dtype=x.dtype, device=device)
    for start in range(0, n * points, batch_size):
        j = torch.arange(start, min(start + batch_size, n * points), device=device)
        img, step = j // points, j % points
        changed = (rank[img] < changed_at[step, None]).view(-1, 1, h, w)
        if mode == "insertion":
            changed = ~changed  # pixels not yet restored show the baseline
        xb = torch.where(changed, base[img], x[img])
        probs[j] = model(xb).softmax(1).gather(1, t[img, None])[:, 0].to(x.dtype)
    return probs.view(n, points)


def curve_auc(curve: torch.Tensor) -> torch.Tensor:
    """Area under (N, steps + 1) curves sampled evenly on [0, 1], trapezoid rule, (N,)."""
    if curve.dim() != 2 or curve.shape[1] < 2:
        raise XaisecError(f"curve must have shape (N, steps + 1) with steps >= 1, got {tuple(curve.shape)}")
    return (curve[:, :-1] + curve[:, 1:]).sum(1) / (2 * (curve.shape[1] - 1))


def deletion_auc(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor | int | None = None,
    *,
    steps: int = 50,
    baseline: str | torch.Tensor = "zeros",
    batch_size: int = 256,
) -> torch.Tensor:
    """Deletion AUC, (N,) in [0, 1]: top-ranked pixels replaced by ``baseline`` first. Lower is better.

    See :func:`faithfulness_curve` for the arguments.
    """
    return curve_auc(faithfulness_curve(model, x, maps, target, mode="deletion", steps=steps,
                                        baseline=baseline, batch_size=batch_size))


def insertion_auc(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor | int | None = None,
    *,
    steps: int = 50,
    baseline: str | torch.Tensor = "blur",
    batch_size: int = 256,
) -> torch.Tensor:
    """Insertion AUC, (N,) in [0, 1]: top-ranked pixels restored onto ``baseline`` first. Higher is better.

    See :func:`faithfulness_curve` for the arguments.
    """
    return curve_auc(faithfulness_curve(model, x, maps, target, mode="insertion", steps=steps,
                                        baseline=baseline, batch_size=batch_size))
