"""The interpretation attack of Boopathy et al. (ICML 2020) used for [AE] Table VI's Kendall tau.

Signed L-inf steps push down the share of the true-class map's mass on the top-k cells of the benign map
while the prediction stays: per image, the iterate with the lowest top-k mass among those still classified
as y is kept. Maps are the interpreter's raw maps at its native resolution (8x8 for CAM on ResNet-20),
min-max normalised per sample; the mass is the normalised map's sum over the k cells divided by its total.
``tau`` is Kendall's tau-b between the benign and the kept adversarial map, for images where some iterate
kept the prediction (``found``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xaisec.interpreters.base import Interpreter
from xaisec.metrics.maps import kendall_tau
from xaisec.utils.checks import XaisecError, check_images, check_targets


@dataclass
class InterpAttackResult:
    """x_adv (N, C, H, W); maps_benign / maps_adv (N, h, w) normalised native maps; mass_benign / mass_adv
    (N,) top-k mass share; found (N,) bool (an iterate kept the prediction and moved); tau (N,), NaN where
    not found."""

    x_adv: torch.Tensor
    maps_benign: torch.Tensor
    maps_adv: torch.Tensor
    mass_benign: torch.Tensor
    mass_adv: torch.Tensor
    found: torch.Tensor
    tau: torch.Tensor


def _normalised(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(maps)


def _topk_mass(maps: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    return flat.gather(1, cells).sum(1) / flat.sum(1).clamp_min(1e-12)


def topk_interpretation_attack(
    model: torch.nn.Module,
    interpreter: Interpreter,
    x: torch.Tensor,
    y: torch.Tensor | int,
    *,
    eps: float = 8 / 255,
    steps: int = 50,
    alpha: float | None = None,
    k: int = 8,
    random_start: bool = True,
    seed: int = 0,
) -> InterpAttackResult:
    """Attack the true-class map of x (N, C, H, W) in [0, 1], labels y, within the L-inf ball of ``eps``.

    ``alpha`` defaults to max(eps / 10, 0.25 / 255); ``k`` cells of the benign map define the mass. The
    interpreter must be differentiable. eps = 0 returns the benign maps (tau 1 where defined).
    """
    check_images(x)
    if not getattr(interpreter, "differentiable", False):
        raise XaisecError(f"interpreter {interpreter.name!r} has no differentiable mode; the attack needs one")
    if steps < 0 or k < 1 or eps < 0:
        raise XaisecError(f"need steps >= 0, k >= 1, eps >= 0; got {steps}, {k}, {eps}")
    device = interpreter.device
    x = x.to(device)
    y = check_targets(y, x.shape[0], num_classes=getattr(model, "num_classes", None), device=device)
    alpha = alpha if alpha is not None else max(eps / 10, 0.25 / 255)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            benign = _normalised(interpreter.attribute(x, y))
        cells = benign.flatten(1).topk(min(k, benign[0].numel()), dim=1).indices
        mass_benign = _topk_mass(benign, cells)
        best_x, best_maps, best_mass = x.clone(), benign.clone(), mass_benign.clone()
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=device)
        if eps > 0 and steps > 0:
            g = torch.Generator().manual_seed(seed)
            x_adv = x.clone()
            if random_start:
                noise = torch.rand(x.shape, generator=g).to(device=device, dtype=x.dtype)
                x_adv = (x + (2 * noise - 1) * eps).clamp(0, 1)
            for _ in range(steps):
                x_adv.requires_grad_(True)
                maps = _normalised(interpreter.attribute(x_adv, y, create_graph=True))
                mass = _topk_mass(maps, cells)
                (grad,) = torch.autograd.grad(mass.sum(), x_adv)
                with torch.no_grad():
                    x_adv = torch.min(torch.max(x_adv - alpha * grad.sign(), x - eps), x + eps).clamp_(0, 1)
                    maps = _normalised(interpreter.attribute(x_adv, y))
                    mass = _topk_mass(maps, cells)
                    logits = getattr(interpreter, "_last_logits", None)  # CAM-type: the same pass's logits
                    if logits is None or logits.shape[0] != x.shape[0]:
                        logits = model(x_adv)
                    keep = (logits.argmax(1) == y) & (mass < best_mass)
                    best_x[keep], best_maps[keep], best_mass[keep] = x_adv[keep], maps[keep], mass[keep]
                    found |= keep
        else:
            found = torch.ones_like(found)
        tau = kendall_tau(benign, best_maps)
        tau = torch.where(found, tau, torch.full_like(tau, float("nan")))
        return InterpAttackResult(best_x.detach(), benign, best_maps, mass_benign, best_mass, found, tau)
    finally:
        model.train(was_training)


__all__ = ["InterpAttackResult", "topk_interpretation_attack"]
