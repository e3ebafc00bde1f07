"""Attack targets: which class the adversarial input should get, and which map it should show."""

from __future__ import annotations

import logging
import math

import torch

from xaisec.utils.checks import XaisecError, check_targets

log = logging.getLogger(__name__)

TARGET_MAPS = ("benign", "patch", "class")


def random_other_class(y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """y_t = (y + U{1..K-1}) mod K: a uniformly random class other than y. y (N,) -> (N,)."""
    if num_classes < 2:
        raise XaisecError("a targeted attack needs at least 2 classes")
    shift = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
    return (y + shift) % num_classes


def resolve_target_class(
    spec: str | int | torch.Tensor | None, y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    """``"random"`` -> a random other class; an int or (N,) tensor -> that class; ``None`` or
    ``"untargeted"`` -> None (untargeted attack)."""
    if spec is None or spec == "untargeted":
        return None
    if spec == "random":
        return random_other_class(y, num_classes, generator)
    if isinstance(spec, str):
        raise XaisecError(f"unknown target class {spec!r}; use 'random', 'untargeted', an int or a tensor")
    return check_targets(spec, y.shape[0], num_classes=num_classes, device=y.device)


def keep_not_already_target(target: torch.Tensor | None, y: torch.Tensor, *, where: str = "") -> torch.Tensor | None:
    """Which images a targeted attack should run on: those whose label ``y`` (N,) is not already their
    target class (N,). An image already in its target class would count as a success without any change.

    Returns a bool mask (N,), or None when every image is kept (also for untargeted attacks, ``target=None``).
    Logs a warning that counts the dropped images.

    Raises:
        XaisecError: when every image already has its target label.
    """
    if target is None:
        return None
    same = target.to(y.device) == y
    k = int(same.sum())
    if k == 0:
        return None
    n = int(y.shape[0])
    cls = sorted({int(t) for t in target[same.to(target.device)].tolist()})
    if k == n:
        raise XaisecError(
            f"{where}all {n} image(s) are already labelled with their target class {cls}; nothing to attack: choose "
            "another --target-class, or 'random' (a class other than each image's own)"
        )
    log.warning("%snot attacking %d of %d image(s) already labelled with their target class %s (they would count as "
                "successes unchanged); attacking the other %d", where, k, n, cls, n - k)
    return ~same


def random_patch_maps(
    n: int, size: tuple[int, int], *, generator: torch.Generator | None = None, device: torch.device | None = None,
    min_frac: float = 0.15, max_frac: float = 0.35,
) -> torch.Tensor:
    """Random binary patch maps (N, H, W): a rotated rectangle or a circle per sample, of random size
    (side / diameter between ``min_frac`` and ``max_frac`` of the image side), angle and position."""
    h, w = size
    side = min(h, w)
    u = torch.rand(n, 6, generator=generator)
    is_circle = u[:, 0] < 0.5
    half_a = (min_frac + (max_frac - min_frac) * u[:, 1]) * side / 2
    half_b = (min_frac + (max_frac - min_frac) * u[:, 2]) * side / 2
    angle = u[:, 3] * math.pi
    margin = torch.maximum(half_a, half_b)
    cy = margin + u[:, 4] * (h - 2 * margin)
    cx = margin + u[:, 5] * (w - 2 * margin)
    yy = torch.arange(h, dtype=torch.float32).view(1, h, 1) + 0.5
    xx = torch.arange(w, dtype=torch.float32).view(1, 1, w) + 0.5
    dy, dx = yy - cy.view(n, 1, 1), xx - cx.view(n, 1, 1)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    ry, rx = cos * dy + sin * dx, -sin * dy + cos * dx
    rect = (ry.abs() <= half_a.view(n, 1, 1)) & (rx.abs() <= half_b.view(n, 1, 1))
    circle = dy * dy + dx * dx <= (half_a.view(n, 1, 1)) ** 2
    return torch.where(is_circle.view(n, 1, 1), circle, rect).float().to(device)


def other_class_partner(y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each sample, the index of another sample in the batch with a different label (N,).

    Raises:
        XaisecError: when the batch holds only one class.
    """
    n = y.shape[0]
    if n < 2 or bool((y == y[0]).all()):
        raise XaisecError("the 'class' target map needs a batch with at least two different labels")
    scores = torch.rand(n, n, generator=generator).to(y.device)
    scores = scores.masked_fill(y.view(n, 1) == y.view(1, n), -1.0)
    return scores.argmax(1)
