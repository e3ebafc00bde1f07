"""Input validation with messages that say what is wrong and how to fix it."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

log = logging.getLogger(__name__)


class XaisecError(ValueError):
    """A user-facing error: bad input, unknown name, unreadable file. The message says the fix."""


def check_images(
    x: torch.Tensor, *, channels: int | None = None, size: tuple[int, int] | None = None, name: str = "x"
) -> torch.Tensor:
    """Check that ``x`` is a float (N, C, H, W) batch in [0, 1] without NaN; return it unchanged. (float64 input,
    what ``torch.from_numpy`` gives, is fine: xaisec models convert it to their own dtype.)

    Args:
        channels: the channel count the model takes (checked when given).
        size: the (H, W) the model takes (checked when given).

    Raises:
        XaisecError: on a wrong type, rank, layout, channel count, size, dtype, NaN/inf, or values outside [0, 1].
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
    if x.numel() == 0:
        raise XaisecError(f"{name} is empty: shape {tuple(x.shape)} (no images were selected)")
    check_layout(x, channels=channels, size=size, name=name)
    x_values = x.detach()
    if not torch.isfinite(x_values).all():
        raise XaisecError(f"{name} contains NaN or infinite values (images must be finite, in [0, 1])")
    lo, hi = float(x_values.min()), float(x_values.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        hint = " (0-255 images: divide by 255)" if hi > 2 else ""
        raise XaisecError(
            f"{name} must be in [0, 1] (normalisation lives inside the model), got range [{lo:.3g}, {hi:.3g}]{hint}"
        )
    return x


def check_layout(
    x: torch.Tensor, *, channels: int | None = None, size: tuple[int, int] | None = None, name: str = "x"
) -> None:
    """Check the channel count and spatial size of an (N, C, H, W) tensor; spot channels-last input."""
    if channels is not None and x.shape[1] != channels:
        if x.shape[-1] == channels and x.shape[1] not in (1, 3, 4):
            raise XaisecError(
                f"{name} looks channels-last (N, H, W, C) {tuple(x.shape)}; the model takes (N, C, H, W): "
                "pass x.permute(0, 3, 1, 2)"
            )
        fix = ""
        if x.shape[1] == 1 and channels == 3:
            fix = " (grey images: x.expand(-1, 3, -1, -1))"
        elif x.shape[1] == 4 and channels == 3:
            fix = " (RGBA images: drop alpha with x[:, :3])"
        elif x.shape[1] == 3 and channels == 1:
            fix = " (colour images: x.mean(1, keepdim=True))"
        raise XaisecError(f"{name} has {x.shape[1]} channels but the model expects {channels}{fix}")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise XaisecError(
            f"{name} is {tuple(x.shape[-2:])} pixels but the model takes {tuple(size)}: resize the images, e.g. "
            f"torch.nn.functional.interpolate(x, size={tuple(size)}, mode='bilinear')"
        )


def check_targets(
    target: torch.Tensor | int, n: int, *, num_classes: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Return ``target`` as a LongTensor (n,) on ``device``; an int broadcasts over the batch."""
    if isinstance(target, bool):
        raise XaisecError("target must be an int class index or a LongTensor, got a bool")
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
    if num_classes is not None and t.numel() and ((t < 0).any() or (t >= num_classes).any()):
        raise XaisecError(f"target classes must be in [0, {num_classes - 1}], got {t.tolist()[:8]}...")
    return t


def check_finite(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float within the given bounds, else an XaisecError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise XaisecError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise XaisecError(f"{name} must be a finite number, got {value!r}")
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        rng = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise XaisecError(f"{name} must be in {rng}, got {value!r}")
    return v


def check_budget(eps: Any, name: str = "eps") -> float:
    """A perturbation budget in [0, 1] image units: finite and >= 0. Values > 1 are almost surely meant as
    /255 (write 8 / 255, not 8): they are accepted with a warning, since the whole [0, 1] range is then free."""
    v = check_finite(eps, name, low=0.0)
    if v > 1:
        log.warning("%s=%g is larger than the whole [0, 1] pixel range (no budget at all); did you mean %g/255 = "
                    "%.4f?", name, v, v, v / 255)
    return v


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed: a non-negative int below 2**63."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise XaisecError(f"{name} must be an int in [0, 2**63), got {seed!r}")
    return seed


def module_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a module without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"`` -> CUDA when available, else CPU. Unknown or unavailable devices are errors."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise XaisecError(f"unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise XaisecError(f"device {device!r}: CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise XaisecError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise XaisecError(f"device {device!r}: MPS is not available on this machine; use --device cpu")
    elif dev.type != "cpu":
        raise XaisecError(f"device {device!r} is not supported: use cpu, cuda, cuda:N, mps or auto")
    return dev
