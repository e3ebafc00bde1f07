"""Gradient-family interpreters: vanilla gradient, gradient x input, integrated gradients, SmoothGrad.

Every class here (and the propagation/LRP interpreters built on :class:`AttributionInterpreter`) has
two outputs:

* ``attributions(x, target)`` -> (N, C, H, W): the raw per-pixel, per-channel attribution, before any
  channel reduction or normalisation (what Captum's ``attribute`` returns);
* ``g(x, target)`` -> (N, H, W): the map, i.e. the attributions reduced over channels with ``reduce``
  (``"sum"``: signed sum, ``"abs_sum"``: sum of absolute values, ``"max_abs"``: max of absolute
  values), then resized and normalised by the base class (min-max by default).

Gradients are of the target logit (pre-softmax) w.r.t. the [0, 1] input image (normalisation is part
of the model). All computations are batched over images (and over integration / noise points).
"""

from __future__ import annotations

import abc
import functools
import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xaisec.interpreters.base import Interpreter
from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)

REDUCTIONS = ("sum", "abs_sum", "max_abs")
IG_METHODS = ("gausslegendre", "riemann_trapezoid")


def reduce_channels(a: torch.Tensor, mode: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): ``sum``, ``abs_sum`` or ``max_abs`` over channels (differentiable)."""
    if mode == "sum":
        return a.sum(1)
    if mode == "abs_sum":
        return a.abs().sum(1)
    if mode == "max_abs":
        return a.abs().amax(1)
    raise XaisecError(f"unknown channel reduction {mode!r}; choose from {REDUCTIONS}")


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise XaisecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_baseline(baseline: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A float or a tensor broadcastable to x's (N, C, H, W), in [0, 1] -> a tensor of x's shape."""
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
        raise XaisecError(f"baseline must be a float or a tensor in [0, 1], got {type(baseline).__name__}")
    b = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    if not torch.isfinite(b).all() or (b < 0).any() or (b > 1).any():
        raise XaisecError("baseline must be finite and in [0, 1] (an image, like x)")
    try:
        return b.expand_as(x)
    except RuntimeError as exc:
        raise XaisecError(
            f"baseline of shape {tuple(b.shape)} does not broadcast to the images' shape {tuple(x.shape)}; "
            "pass a float, a (C, H, W) image, or one baseline per image (N, C, H, W)"
        ) from exc


def input_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    create_graph: bool = False,
    weight: torch.Tensor | None = None,
    return_logits: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """d f_target / d x for a batch: x (P, C, H, W) (any float range), target (P,), optional per-row
    ``weight`` (P,) multiplying each row's logit. Returns (P, C, H, W), and the logits (P, K) of the same
    forward pass with ``return_logits`` (attached to x's graph only in the create_graph case).

    With ``create_graph`` and an ``x`` that requires grad, the result stays a differentiable function of
    ``x``; otherwise ``x`` is detached first.
    """
    keep = create_graph and x.requires_grad
    with torch.enable_grad():
        xx = x if keep else x.detach().requires_grad_(True)
        # channels-last activations run the CPU (oneDNN) convolutions about 15% faster, same values
        logits = model(xx.contiguous(memory_format=torch.channels_last) if xx.dim() == 4 else xx)
        sel = logits.gather(1, target.view(-1, 1)).squeeze(1)
        if weight is not None:
            sel = sel * weight
        (g,) = torch.autograd.grad(sel.sum(), xx, create_graph=create_graph)
    if return_logits:
        return g, (logits if keep else logits.detach())
    return g


def sum_over_points(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    n_points: int,
    make_points: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    transform: Callable[[torch.Tensor], torch.Tensor],
    *,
    chunk: int,
    create_graph: bool = False,
) -> torch.Tensor:
    """Sum over k of ``transform(weight_k * grad f(point_{i,k}))`` for every image i, batched.

    The N * n_points (image, point) pairs are flattened (image-major) and processed ``chunk`` at a
    time: ``make_points(i, k)`` with index tensors (P,) returns the points (P, C, H, W) and an optional
    weight (P,). Returns (N, ...) with the shape of ``transform``'s per-row output.
    """
    n = x.shape[0]
    total: torch.Tensor | None = None
    for start in range(0, n * n_points, chunk):
        p = torch.arange(start, min(start + chunk, n * n_points), device=x.device)
        i, k = p // n_points, p % n_points
        points, weight = make_points(i, k)
        g = input_gradients(model, points, target[i], create_graph=create_graph, weight=weight)
        v = transform(g)
        part = torch.zeros((n, *v.shape[1:]), dtype=v.dtype, device=v.device).index_add(0, i, v)
        total = part if total is None else total + part
    assert total is not None
    return total


class AttributionInterpreter(Interpreter):
    """An interpreter with (N, C, H, W) attributions reduced over channels into its map.

    Subclasses implement :meth:`_attributions`. ``reduce`` picks the channel reduction (see module doc).
    """

    default_reduce: str = "sum"

    def __init__(self, model: nn.Module, *, reduce: str | None = None, normalize: str = "minmax") -> None:
        super().__init__(model, normalize=normalize)
        reduce = self.default_reduce if reduce is None else reduce
        if reduce not in REDUCTIONS:
            raise XaisecError(f"unknown channel reduction {reduce!r}; choose from {REDUCTIONS}")
        self.reduce = reduce

    def attributions(
        self, x: torch.Tensor, target: torch.Tensor | int | None = None, *, create_graph: bool = False
    ) -> torch.Tensor:
        """Raw attributions (N, C, H, W) for x (N, C, H, W) in [0, 1], before channel reduction."""
        if create_graph and not self.differentiable:
            raise XaisecError(f"interpreter {self.name!r} has no differentiable mode (create_graph=True)")
        x, t = self.prepare(x, target)
        a = self._attributions(x, t, create_graph=create_graph)
        return a if create_graph else a.detach()

    def attribute(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        return reduce_channels(self._attributions(x, target, create_graph=create_graph), self.reduce)

    @abc.abstractmethod
    def _attributions(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        """(N, C, H, W) attributions for validated x on the device and target (N,)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduce={self.reduce!r}, normalize={self.normalize!r})"


class Gradient(AttributionInterpreter):
    """Vanilla gradient (saliency): map = |d f_c / d x| max over channels (the ADV^2 convention).

    Args:
        pool: average-pooling kernel (= stride) applied to the (N, H, W) map before it is resized back
            to the input size; the ADV^2 reference uses 4 (4x4 pooling at 224 px). 1 (default): none.
        reduce: channel reduction, default ``"max_abs"``.

    ``attributions`` returns the signed gradient (N, C, H, W) (Captum ``Saliency(abs=False)``).
    Differentiable: with ``create_graph=True`` the map is a function of x; for ReLU networks its
    derivative is zero almost everywhere, so attacks wrap the model in :func:`soft_relu`.
    The logits of the same forward pass are kept for :meth:`explain` (inside ``soft_relu`` their
    values are exact but their gradient is the surrogate's).
    """

    name = "grad"
    differentiable = True
    default_reduce = "max_abs"

    def __init__(
        self, model: nn.Module, *, pool: int = 1, reduce: str | None = None, normalize: str = "minmax"
    ) -> None:
        super().__init__(model, reduce=reduce, normalize=normalize)
        self.pool = check_positive_int(pool, "pool")

    def _attributions(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        g, self._last_logits = input_gradients(self.model, x, target, create_graph=create_graph, return_logits=True)
        return g

    def attribute(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        maps = super().attribute(x, target, create_graph=create_graph)
        if self.pool > 1:
            maps = F.avg_pool2d(maps.unsqueeze(1), self.pool, ceil_mode=True).squeeze(1)
        return maps


class GradientXInput(AttributionInterpreter):
    """Gradient times input: attributions = x * d f_c / d x (x in [0, 1]); map = signed sum over channels
    (``reduce="abs_sum"`` gives the AttaXAI convention |a| summed). Differentiable like :class:`Gradient`;
    keeps the logits of its forward pass for :meth:`explain` likewise.
    """

    name = "grad_x_input"
    differentiable = True
    default_reduce = "sum"

    def _attributions(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        g, self._last_logits = input_gradients(self.model, x, target, create_graph=create_graph, return_logits=True)
        return x * g


@functools.lru_cache(maxsize=32)
def quadrature(method: str, steps: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes alpha_k in [0, 1] and weights w_k (summing to 1) for integrating over [0, 1].

    ``gausslegendre``: Gauss-Legendre nodes/weights mapped from [-1, 1]. ``riemann_trapezoid``: the
    trapezoid rule on ``steps`` equally spaced nodes including both ends (``torch.linspace``, float32,
    as Captum) with weights 1/(steps-1), halved at the ends. Note Captum's trapezoid weights are
    1/steps (halved at the ends), which sum to (steps-1)/steps, so Captum's result is ours times
    (steps-1)/steps.
    """
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return tuple(float(a) for a in 0.5 * (nodes + 1)), tuple(float(w) for w in 0.5 * weights)
    if method == "riemann_trapezoid":
        w = np.full(steps, 1.0 / (steps - 1))
        w[0] /= 2
        w[-1] /= 2
        return tuple(torch.linspace(0.0, 1.0, steps).tolist()), tuple(float(v) for v in w)
    raise XaisecError(f"unknown integration method {method!r}; choose from {IG_METHODS}")


class IntegratedGradients(AttributionInterpreter):
    """Integrated gradients (Sundararajan et al. 2017):
    a = (x - b) * integral_0^1 d f_c(b + alpha (x - b)) / dx d alpha.

    Args:
        steps: number of integration points (default 50).
        baseline: float (default 0: a black image) or a tensor broadcastable to (N, C, H, W), in [0, 1].
        method: ``"gausslegendre"`` (default, as Captum) or ``"riemann_trapezoid"`` (see :func:`quadrature`).
        internal_batch_size: interpolation points per forward pass, batched over images and steps
            together (default 128).
        reduce: channel reduction of the map, default ``"sum"`` (signed).

    Completeness: ``attributions(x).sum() ~ f_c(x) - f_c(b)`` up to the quadrature error.
    Differentiable with ``create_graph=True`` (keeps every chunk's graph: memory grows with N * steps).
    """

    name = "integrated_gradients"
    differentiable = True
    default_reduce = "sum"

    def __init__(
        self,
        model: nn.Module,
        *,
        steps: int = 50,
        baseline: float | torch.Tensor = 0.0,
        method: str = "gausslegendre",
        internal_batch_size: int = 128,
        reduce: str | None = None,
        normalize: str = "minmax",
    ) -> None:
        super().__init__(model, reduce=reduce, normalize=normalize)
        if method not in IG_METHODS:
            raise XaisecError(f"unknown integration method {method!r}; choose from {IG_METHODS}")
        self.steps = check_positive_int(steps, "steps", 2 if method == "riemann_trapezoid" else 1)
        self.method = method
        self.internal_batch_size = check_positive_int(internal_batch_size, "internal_batch_size")
        if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
            raise XaisecError(f"baseline must be a float or a tensor in [0, 1], got {type(baseline).__name__}")
        self.baseline = baseline

    def _attributions(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        base = check_baseline(self.baseline, x)
        nodes, weights = quadrature(self.method, self.steps)
        alpha = torch.tensor(nodes, dtype=x.dtype, device=x.device)
        w = torch.tensor(weights, dtype=x.dtype, device=x.device)
        delta = x - base

        def make_points(i: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return base[i] + alpha[k].view(-1, 1, 1, 1) * delta[i], w[k]

        total = sum_over_points(self.model, x, target, self.steps, make_points, lambda g: g,
                                chunk=self.internal_batch_size, create_graph=create_graph)
        return delta * total


class SmoothGrad(AttributionInterpreter):
    """SmoothGrad (Smilkov et al. 2017): gradients averaged over noisy copies x + N(0, sigma^2).

    Args:
        samples: noisy copies per image (default 25).
        sigma: noise standard deviation as a fraction of each image's value range max(x) - min(x)
            (default 0.15, the paper's 10-20%). Noisy copies are not clipped to [0, 1].
        seed: seed of a fresh generator on every call (default 0: the same noise on every call, so
            maps are deterministic); None uses torch's global RNG. The same ``samples`` standard-normal
            draws (C, H, W) are shared by all images of a batch (scaled by each image's sigma), so an
            image's map does not depend on the other images in its batch.
        internal_batch_size: noisy copies per forward pass, batched over images and samples (default 128).
        reduce: channel reduction, default ``"max_abs"``.

    Map = mean over the noisy copies of reduce(grad) (mean of |grad| max over channels by default);
    ``attributions`` = the mean signed gradient (N, C, H, W) (Captum NoiseTunnel "smoothgrad" on
    Saliency(abs=False)). Differentiable with ``create_graph=True``.
    """

    name = "smoothgrad"
    differentiable = True
    default_reduce = "max_abs"

    def __init__(
        self,
        model: nn.Module,
        *,
        samples: int = 25,
        sigma: float = 0.15,
        seed: int | None = 0,
        internal_batch_size: int = 128,
        reduce: str | None = None,
        normalize: str = "minmax",
    ) -> None:
        super().__init__(model, reduce=reduce, normalize=normalize)
        self.samples = check_positive_int(samples, "samples")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 <= sigma < float("inf"):
            raise XaisecError(f"sigma must be a finite float >= 0 (a fraction of the input range), got {sigma!r}")
        self.sigma = float(sigma)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise XaisecError(f"seed must be an int or None, got {seed!r}")
        self.seed = seed
        self.internal_batch_size = check_positive_int(internal_batch_size, "internal_batch_size")

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """The (samples, C, H, W) standard-normal draws used for x (shared over the batch)."""
        gen = None
        if self.seed is not None:
            gen = torch.Generator(device=x.device).manual_seed(self.seed)
        return torch.randn((self.samples, *x.shape[1:]), generator=gen, dtype=x.dtype, device=x.device)

    def _mean(self, x: torch.Tensor, target: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor],
              create_graph: bool) -> torch.Tensor:
        eps = self.noise(x)
        flat = x.detach().flatten(1)
        scale = (self.sigma * (flat.amax(1) - flat.amin(1))).view(-1, 1, 1, 1)

        def make_points(i: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, None]:
            return x[i] + scale[i] * eps[k], None

        total = sum_over_points(self.model, x, target, self.samples, make_points, transform,
                                chunk=self.internal_batch_size, create_graph=create_graph)
        return total / self.samples

    def _attributions(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        return self._mean(x, target, lambda g: g, create_graph)

    def attribute(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        return self._mean(x, target, lambda g: reduce_channels(g, self.reduce), create_graph)


__all__ = [
    "IG_METHODS",
    "REDUCTIONS",
    "AttributionInterpreter",
    "Gradient",
    "GradientXInput",
    "IntegratedGradients",
    "SmoothGrad",
    "input_gradients",
    "quadrature",
    "reduce_channels",
]
