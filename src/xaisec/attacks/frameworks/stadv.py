"""StAdv: spatially transformed adversarial examples (Xiao et al. 2018).

A per-pixel flow field f (N, 2, H, W), in pixels, moves where each output pixel samples the clean
image (bilinear interpolation, border padding). The penalty is ``tau`` times the flow-smoothness loss
sum_p sum_{q in N(p)} sqrt(||f_p - f_q||^2 + eps) over right and lower neighbours. Optimised with Adam.
Edge weights scale the flow, so AdvEdge+ only moves edge pixels.

StAdv has no L-inf budget on pixel values. With ``max_flow`` it has a hard flow budget: every flow
component is clamped to [-max_flow, max_flow] pixels after each step; without it the flow is only
penalised for roughness.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xaisec.attacks.frameworks.base import AdamFramework
from xaisec.utils.checks import XaisecError, check_finite


def flow_smoothness(flow: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample flow loss (N,) of a flow field (N, 2, H, W)."""
    dh = flow[:, :, 1:, :] - flow[:, :, :-1, :]
    dw = flow[:, :, :, 1:] - flow[:, :, :, :-1]
    return torch.sqrt(dh.pow(2).sum(1) + eps).flatten(1).sum(1) + torch.sqrt(dw.pow(2).sum(1) + eps).flatten(1).sum(1)


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinearly resample x (N, C, H, W) at pixel positions displaced by flow (N, 2, H, W) = (dy, dx)."""
    h, w = x.shape[-2:]
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    scale_y, scale_x = 2.0 / max(h - 1, 1), 2.0 / max(w - 1, 1)
    grid = torch.stack((gx + flow[:, 1] * scale_x, gy + flow[:, 0] * scale_y), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


class StAdv(AdamFramework):
    name = "stadv"
    description = "per-pixel flow field, bilinear warping, flow-smoothness penalty (Xiao et al.)"

    def __init__(self, *, lr: float = 0.01, tau: float = 0.0005, max_flow: float | None = None,
                 generator: torch.Generator | None = None) -> None:
        if not (lr > 0 and tau >= 0):  # also False for NaN
            raise XaisecError(f"StAdv needs lr > 0 and tau >= 0, got lr={lr}, tau={tau}")
        check_finite(lr, "StAdv lr")
        check_finite(tau, "StAdv tau")
        if max_flow is not None:
            max_flow = check_finite(max_flow, "StAdv max_flow (flow budget in pixels)", low=0.0, low_open=True)
        super().__init__(lr)
        self.tau, self.max_flow, self.generator = tau, max_flow, generator
        self._flow: torch.Tensor | None = None

    @property
    def threat_model(self) -> str:
        if self.max_flow is None:
            return f"StAdv: no hard budget, flow roughness penalised (tau {self.tau:g})"
        return f"StAdv: every pixel moved by at most {self.max_flow:g} px per axis"

    def _init_param(self) -> None:
        assert self.x is not None
        n, _, h, w = self.x.shape
        # a tiny random start breaks the symmetry of the zero flow, where bilinear sampling is not smooth
        init = (torch.rand((n, 2, h, w), generator=self.generator) - 0.5) * 1e-3
        self._flow = init.to(self.x).requires_grad_(True)
        self.reset_optimizer()

    @property
    def param(self) -> torch.Tensor:
        assert self._flow is not None
        return self._flow

    def effective_flow(self) -> torch.Tensor:
        return self.param if self.weights is None else self.param * self.weights

    def adversarial(self) -> torch.Tensor:
        assert self.x is not None
        return warp(self.x, self.effective_flow())

    def penalty(self, x_adv: torch.Tensor) -> torch.Tensor:
        return self.tau * flow_smoothness(self.effective_flow())

    def after_update(self) -> None:
        if self.max_flow is not None:
            with torch.no_grad():
                self.param.clamp_(-self.max_flow, self.max_flow)
