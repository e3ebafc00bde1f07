"""Input validation with messages that say what is wrong and how to fix it."""

from __future__ import annotations

import torch


class XaisecError(ValueError):
    """A user-facing error: bad input, unknown name, unreadable file. The message says the fix."""


def check_images(x: torch.Tensor, *, channels: int | None = None, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a float (N, C, H, W) batch in [0, 1] without NaN; return it unchanged.

    Raises:
        XaisecError: on a wrong type, rank, channel count, dtype, NaN/inf, or values outside [0, 1].
    """
    if not isinstance(x, torch.Tensor):
        raise XaisecError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
        raise XaisecError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise XaisecError(
            f"{name} must be a float tensor with values in [0, 1], got dtype {x.dtype} "
            "(convert uint8 images with x.float() / 255)"
        )
    if channels is not None and x.shape[1] != channels:
        raise XaisecError(f"{name} has {x.shape[1]} channels but the model expects {channels}")
    if x.numel() == 0:
        raise XaisecError(f"{name} is empty: shape {tuple(x.shape)}")
    x_values = x.detach()
    if not torch.isfinite(x_values).all():
        raise XaisecError(f"{name} contains NaN or infinite values")
    lo, hi = float(x_values.min()), float(x_values.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise XaisecError(
            f"{name} must be in [0, 1] (normalisation lives inside the model), got range [{lo:.3g}, {hi:.3g}]"
        )
    return x


def check_targets(
    target: torch.Tensor | int, n: int, *, num_classes: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Return ``target`` as a LongTensor (n,) on ``device``; an int broadcasts over the batch."""
    if isinstance(target, int):
        t = torch.full((n,), target, dtype=torch.long, device=device)
    elif isinstance(target, torch.Tensor):
        if target.dim() == 0:
            target = target.expand(n)
        if target.dim() != 1 or target.shape[0] != n:
            raise XaisecError(f"target must be an int or a tensor of shape ({n},), got {tuple(target.shape)}")
        if target.is_floating_point():
            raise XaisecError(f"target must hold integer class indices, got dtype {target.dtype}")
        t = target.to(device=device, dtype=torch.long)
    else:
        raise XaisecError(f"target must be an int or a LongTensor, got {type(target).__name__}")
    if num_classes is not None and ((t < 0).any() or (t >= num_classes).any()):
        raise XaisecError(f"target classes must be in [0, {num_classes - 1}], got {t.tolist()[:8]}...")
    return t


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"`` -> CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
