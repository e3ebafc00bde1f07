"""Modified-backward interpreters: guided backpropagation and DeepLIFT (rescale rule).

Both swap the ReLU's backward for the duration of one call with :func:`~xaisec.interpreters.surrogate.
replace_relu`, so they see ``nn.ReLU`` modules (in-place or not) AND functional ``F.relu`` /
``torch.relu`` / ``Tensor.relu`` calls inside ``forward`` (Captum hooks modules only). Forward values
are the exact ReLU. Other nonlinearities (max-pooling, sigmoid...) keep their ordinary gradient;
linear layers (conv, linear, eval-mode batch norm, average pooling, additions) need no rule.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from xaisec.interpreters.gradient import AttributionInterpreter, check_baseline, input_gradients
from xaisec.interpreters.surrogate import exact_relu, replace_relu
from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)


class _GuidedReLU(torch.autograd.Function):
    """relu forward; backward passes only positive gradients through active units."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, z: torch.Tensor) -> torch.Tensor:
        out = exact_relu(z)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return torch.where(out > 0, grad.clamp(min=0), torch.zeros_like(grad))


class _RescaleReLU(torch.autograd.Function):
    """relu on a batch [inputs; references] (2n rows); backward uses the DeepLIFT rescale multiplier
    (y - y_ref) / (z - z_ref) for the input rows, the gradient where |z - z_ref| < eps; the reference
    rows get their ordinary gradient (which is zero: only the input rows' logits are explained)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, z: torch.Tensor, n: int, eps: float) -> torch.Tensor:
        out = exact_relu(z)
        ctx.save_for_backward(z, out)
        ctx.n, ctx.eps = n, eps
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        z, out = ctx.saved_tensors
        n = ctx.n
        dz = z[:n] - z[n:]
        small = dz.abs() < ctx.eps
        ratio = (out[:n] - out[n:]) / torch.where(small, torch.ones_like(dz), dz)
        mult = torch.where(small, (z[:n] > 0).to(grad.dtype), ratio)
        ref = torch.where(z[n:] > 0, grad[n:], torch.zeros_like(grad[n:]))
        return torch.cat([grad[:n] * mult, ref]), None, None


class GuidedBackprop(AttributionInterpreter):
    """Guided backpropagation (Springenberg et al. 2015): the input gradient where every ReLU passes only
    positive gradients through active units.

    ``attributions`` = that modified gradient (N, C, H, W) (Captum ``GuidedBackprop``); the map reduces it
    with ``reduce``, default ``"max_abs"`` (max over channels of the absolute value, like :class:`Gradient`).
    """

    name = "guided_backprop"
    default_reduce = "max_abs"

    def _attributions(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        with replace_relu(self.model, _GuidedReLU.apply):
            g, self._last_logits = input_gradients(self.model, x, target, return_logits=True)
        return g  # the logits are exact (only the backward is modified); kept, detached, for explain()


class DeepLift(AttributionInterpreter):
    """DeepLIFT with the rescale rule (Shrikumar et al. 2017), as Captum's ``DeepLift``.

    Inputs and references run through the model in one concatenated batch (2N rows); each ReLU's
    multiplier is (relu(z) - relu(z_ref)) / (z - z_ref), falling back to the gradient where
    |z - z_ref| < ``eps``. ``attributions`` = (x - baseline) * multipliers (N, C, H, W), which sum to
    f_c(x) - f_c(baseline) for ReLU networks. The map is their signed sum over channels by default.

    Args:
        baseline: float (default 0: a black image) or a tensor broadcastable to (N, C, H, W), in [0, 1].
        eps: threshold of the gradient fallback (default 1e-10, as Captum).

    A relu applied to a tensor whose first dimension is not the 2N batch (e.g. to parameters) keeps its
    ordinary gradient. The model must not mix batch rows (batch norm in eval mode).
    """

    name = "deeplift"
    default_reduce = "sum"

    def __init__(
        self,
        model: nn.Module,
        *,
        baseline: float | torch.Tensor = 0.0,
        eps: float = 1e-10,
        reduce: str | None = None,
        normalize: str = "minmax",
    ) -> None:
        super().__init__(model, reduce=reduce, normalize=normalize)
        if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
            raise XaisecError(f"baseline must be a float or a tensor in [0, 1], got {type(baseline).__name__}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < float("inf"):
            raise XaisecError(f"eps must be a finite float >= 0, got {eps!r}")
        self.baseline = baseline
        self.eps = float(eps)

    def _attributions(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        base = check_baseline(self.baseline, x)
        n = x.shape[0]

        def rescale(z: torch.Tensor) -> torch.Tensor:
            if z.dim() == 0 or z.shape[0] != 2 * n:
                return exact_relu(z)
            return _RescaleReLU.apply(z, n, self.eps)

        with torch.enable_grad(), replace_relu(self.model, rescale):
            xx = x.detach().requires_grad_(True)
            logits = self.model(torch.cat([xx, base]))
            sel = logits[:n].gather(1, target.view(-1, 1)).sum()
            (g,) = torch.autograd.grad(sel, xx)
        self._last_logits = logits[:n].detach()  # exact forward values, for explain()
        return (x - base) * g


__all__ = ["DeepLift", "GuidedBackprop"]
