"""Input checks shared by the metric modules; every failure raises XaisecError with the fix."""

from __future__ import annotations

import torch

from xaisec.utils.checks import XaisecError, check_images


def as_maps(m: torch.Tensor, name: str) -> torch.Tensor:
    """Return attribution maps as a float (N, H, W) tensor; (N, 1, H, W) is squeezed."""
    if not isinstance(m, torch.Tensor):
        raise XaisecError(f"{name} must be a torch.Tensor of shape (N, H, W), got {type(m).__name__}")
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.dim() != 3:
        hint = " (add a batch dimension with m.unsqueeze(0))" if m.dim() == 2 else ""
        raise XaisecError(f"{name} must have shape (N, H, W) or (N, 1, H, W), got {tuple(m.shape)}{hint}")
    if m.numel() == 0:
        raise XaisecError(f"{name} is empty: shape {tuple(m.shape)}")
    if not m.is_floating_point():
        m = m.float()
    if not torch.isfinite(m).all():
        raise XaisecError(f"{name} contains NaN or infinite values")
    return m


def map_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two batches of maps of the same shape; ``b`` is moved to ``a``'s device and dtype."""
    a, b = as_maps(a, "the first map batch"), as_maps(b, "the second map batch")
    if a.shape != b.shape:
        raise XaisecError(
            f"maps must have the same shape, got a {tuple(a.shape)} and b {tuple(b.shape)} "
            "(resize with xaisec.interpreters.resize_maps)"
        )
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(device=a.device, dtype=dtype)


def image_pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two (N, C, H, W) batches in [0, 1] of the same shape; ``y`` moves to ``x``'s device."""
    check_images(x, name="clean")
    check_images(y, name="adversarial")
    if x.shape != y.shape:
        raise XaisecError(f"images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(device=x.device, dtype=dtype)


def as_predictions(p: torch.Tensor, name: str) -> torch.Tensor:
    """Class predictions (N,) from logits/probabilities (N, K) (argmax) or from integer labels (N,)."""
    if not isinstance(p, torch.Tensor):
        raise XaisecError(f"{name} must be a tensor of logits (N, K) or predicted labels (N,)")
    if p.dim() == 2 and p.is_floating_point():
        if p.shape[0] == 0:
            raise XaisecError(f"{name} is empty: shape {tuple(p.shape)}")
        return p.argmax(1)
    if p.dim() == 1 and not p.is_floating_point() and p.dtype != torch.bool:
        return p.long()
    raise XaisecError(
        f"{name} must be float logits of shape (N, K) or integer labels of shape (N,), "
        f"got dtype {p.dtype} and shape {tuple(p.shape)}"
    )


def as_labels(t: torch.Tensor | int, n: int, name: str, device: torch.device) -> torch.Tensor:
    """Integer labels (n,) on ``device``; an int broadcasts over the batch."""
    if isinstance(t, int) and not isinstance(t, bool):
        return torch.full((n,), t, dtype=torch.long, device=device)
    if not isinstance(t, torch.Tensor) or t.is_floating_point() or t.dtype == torch.bool:
        raise XaisecError(f"{name} must be an int or an integer tensor of shape ({n},)")
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise XaisecError(f"{name} must have shape ({n},) to match the batch, got {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.long)
