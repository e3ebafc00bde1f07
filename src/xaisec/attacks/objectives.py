"""Attack objectives: a prediction term and a map term, both per sample (N,)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xaisec.utils.checks import XaisecError

PREDICTION_LOSSES = ("ce", "cw")


def soft_targets(target: torch.Tensor, num_classes: int, confidence: float) -> torch.Tensor:
    """Smoothed one-hot labels (N, K): ``confidence`` on the target, the rest spread evenly over the other
    K-1 classes, so every row sums to 1."""
    if not 0 < confidence <= 1:
        raise XaisecError(f"label confidence must be in (0, 1], got {confidence}")
    off = (1 - confidence) / max(num_classes - 1, 1)
    soft = torch.full((target.shape[0], num_classes), off, device=target.device)
    return soft.scatter_(1, target.view(-1, 1), confidence)


def prediction_loss(
    logits: torch.Tensor, target: torch.Tensor | None, y: torch.Tensor, *, kind: str = "ce",
    confidence: float = 1.0, kappa: float = 0.0,
) -> torch.Tensor:
    """Per-sample loss to minimise (N,).

    Targeted (``target`` given): ``"ce"`` is cross-entropy to (smoothed, see :func:`soft_targets`) target
    labels; ``"cw"`` the C&W margin max(max_{j != t} z_j - z_t, -kappa). Untargeted (``target`` None):
    ``"ce"`` is minus the cross-entropy of the true class y; ``"cw"`` is max(z_y - max_{j != y} z_j, -kappa).
    """
    if kind not in PREDICTION_LOSSES:
        raise XaisecError(f"unknown prediction loss {kind!r}; choose from {PREDICTION_LOSSES}")
    logits = logits.float()
    if kind == "ce":
        if target is None:
            return -F.cross_entropy(logits, y, reduction="none")
        if confidence >= 1.0:
            return F.cross_entropy(logits, target, reduction="none")
        return -(soft_targets(target, logits.shape[1], confidence) * logits.log_softmax(1)).sum(1)
    cls = y if target is None else target
    own = logits.gather(1, cls.view(-1, 1)).squeeze(1)
    other = logits.masked_fill(F.one_hot(cls, logits.shape[1]).bool(), float("-inf")).amax(1)
    margin = own - other if target is None else other - own
    return margin.clamp_min(-kappa)


def map_loss(maps: torch.Tensor, target_maps: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per sample between (N, H, W) maps: sum of squares / (H * W)."""
    return (maps - target_maps).pow(2).flatten(1).mean(1)
