"""Budget scaling of raw generator outputs and the projection of stored perturbations.

Norms are per perturbation over (C, H, W), in [0, 1] pixel units (the perturbation is added before the
model's mean/std normalisation).

* ``"cap"`` (the paper's Eq. 6): n_hat = min(1, eps / ||g||_p) * g, a perturbation inside the ball stays.
* ``"exact"``: n_hat = eps / ||g||_p * g, always on the sphere (GAP's scaling).
"""

from __future__ import annotations

import math

import torch

from xaisec.utils.checks import XaisecError

NORMS = ("linf", "l2")
SCALINGS = ("cap", "exact")
L2_SAFETY = 1 - 2e-6  # float32 rounding margin so the stored L2 norm never exceeds eps


def check_budget(norm: str, eps: float) -> float:
    """Validate the norm name and budget; return eps as a float."""
    if norm not in NORMS:
        raise XaisecError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")
    try:
        eps = float(eps)
    except (TypeError, ValueError) as exc:
        raise XaisecError(f"the budget eps must be a number, got {eps!r}") from exc
    if math.isnan(eps) or eps <= 0 or math.isinf(eps):
        raise XaisecError(f"the budget eps must be a finite number > 0 (e.g. 10/255 for linf, 1.12 for l2), "
                          f"got {eps}")
    return eps


def lp_norm(v: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-perturbation norm of (N, C, H, W) -> (N,)."""
    flat = v.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def scale_to_budget(g: torch.Tensor, norm: str, eps: float, scaling: str = "cap") -> torch.Tensor:
    """Scale raw (N, C, H, W) perturbations to the budget (differentiable); see the module docstring."""
    if scaling not in SCALINGS:
        raise XaisecError(f"unknown budget scaling {scaling!r}; choose from {', '.join(SCALINGS)}")
    eps = check_budget(norm, eps)
    n = lp_norm(g, norm).clamp_min(1e-12)
    factor = eps / n
    if scaling == "cap":
        factor = factor.clamp(max=1.0)
    return g * factor.view(-1, *([1] * (g.dim() - 1)))


def project(v: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project (N, C, H, W) perturbations onto the eps-ball (not differentiable), so that the float32 norm
    holds: ``|v| <= eps`` element-wise (linf) or ``||v||_2 <= eps`` (l2) exactly."""
    eps = check_budget(norm, eps)
    v = v.detach().float()
    if norm == "linf":
        bound = torch.tensor(eps, dtype=torch.float32)
        if float(bound) > eps:  # float32(eps) rounded up: take the float32 just below
            bound = torch.nextafter(bound, torch.tensor(0.0))
        return v.clamp(-float(bound), float(bound))
    n = lp_norm(v.double(), "l2").float()
    factor = torch.where(n > eps * L2_SAFETY, eps * L2_SAFETY / n.clamp_min(1e-30), torch.ones_like(n))
    return v * factor.view(-1, *([1] * (v.dim() - 1)))


__all__ = ["NORMS", "SCALINGS", "check_budget", "lp_norm", "project", "scale_to_budget"]
