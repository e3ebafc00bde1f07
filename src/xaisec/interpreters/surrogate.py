"""The soft-ReLU surrogate for second-order gradients through ReLU networks, and the ReLU-swapping
machinery the propagation interpreters share.

A ReLU network's input gradient is piecewise constant in x, so a loss on a gradient map has a zero
gradient w.r.t. x almost everywhere. Inside ``with soft_relu(model):`` every ReLU still returns the
EXACT ReLU output, but its derivative is the smoothed slope h(z) of ADV^2 (Zhang et al. 2020, Sec. 3.2)

    s'(z) = z / sqrt(z^2 + 1e-4)        for z >= 0
    s'(z) = 1 + z / sqrt(z^2 + 1e-4)    for z < 0

so double backprop sees curvature ``eps / (z^2 + eps)^1.5``. It is one fused autograd operation
(:class:`torch.autograd.Function`: the exact ReLU kernel forward, a backward ``g * h(z)`` that is itself a
Function with a hand-written derivative): a few elementwise kernels per ReLU where the composite form
``y = relu(z).detach() + (s(z) - s(z).detach())`` records many (ResNet-20, batch 64, 1 thread, CPU time of a
grad-map double backprop over the exact-ReLU one: 1.0-1.3x fused, 1.6-1.7x composite), with ``s(z) =
sqrt(z^2 + eps)`` for z >= 0 and ``z + sqrt(z^2 + eps)`` for z < 0 (kept as ``fused=False``: the same
first and second derivatives up to float rounding). The fused op supports first and second derivatives
(a third raises) and no ``torch.func`` transforms (vmap). Note the slope is discontinuous at 0 (1 just
below, 0 just above): that is the reference's definition, kept as is. First-order gradients (hence gradient
maps) computed inside the context only approximate the true ones (slope 0.95 instead of 1 at
z = 0.03, 0.05 instead of 0 at z = -0.03).
Use the surrogate for the map-loss pass only; classification losses and reported numbers should use
the real model.

What is swapped: the ``forward`` of every ``nn.ReLU`` inside ``model`` (in-place or not) and, process-
wide while the context is open, ``torch.nn.functional.relu``/``relu_``, ``torch.relu``/``relu_`` and
``torch.Tensor.relu``/``relu_``. :func:`soft_relu` also smooths the clipped ReLUs (``nn.ReLU6``,
``nn.Hardtanh``, ``F.relu6``, ``F.hardtanh``/``hardtanh_``; hardtanh(z, a, b) = a + relu(z - a) -
relu(z - b), so its slope is h(z - a) - h(z - b)), e.g. for MobileNetV2. Not swapped: a function bound
by ``from torch.nn.functional import relu`` before the context opened, TorchScript/compiled code, and
other activations (GELU, SiLU...).
Inside ``with exact_relu_backward():`` the backward of every fused soft-ReLU node recorded earlier is the
EXACT ReLU (hardtanh) derivative instead, so one surrogate forward pass serves both a map loss (soft) and a
classification loss whose input gradient equals the real model's (attacks: one forward, two backwards).
The functional patch is global, so do not run other models in other threads while a context is open.
Everything is restored on exit, also on exceptions; contexts nest (the innermost wins).
"""

from __future__ import annotations

import copy
import functools
import logging
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)

SOFT_RELU_EPS = 1e-4

# the true kernels, captured once so that patched functions never call themselves
exact_relu = _relu = torch.relu
exact_relu_ = _relu_ = torch.relu_
_hardtanh = F.hardtanh
_MISSING = object()

ReluFn = Callable[[torch.Tensor], torch.Tensor]


def _soft_step(z: torch.Tensor, eps: float) -> torch.Tensor:
    """s(z) with s' = h (the smoothed ReLU slope): sqrt(z^2 + eps) for z >= 0, z + sqrt(z^2 + eps) below."""
    r = torch.hypot(z, z.new_tensor(eps**0.5))  # sqrt(z^2 + eps) without overflow for huge |z|
    return torch.where(z >= 0, r, z + r)


def _composite_soft_relu(z: torch.Tensor, eps: float) -> torch.Tensor:
    """The reference (composite, differentiable-ops) form of :func:`soft_relu_fn`: slower, same derivatives."""
    s = _soft_step(z, eps)
    return _relu(z).detach() + (s - s.detach())


def _composite_soft_hardtanh(z: torch.Tensor, min_val: float, max_val: float, eps: float) -> torch.Tensor:
    """The reference (composite) form of :func:`soft_hardtanh_fn`."""
    s = _soft_step(z - min_val, eps) - _soft_step(z - max_val, eps)
    return _hardtanh(z, min_val, max_val).detach() + (s - s.detach())


# > 0 while exact_relu_backward() is open: fused soft nodes backpropagate the exact derivative. A plain
# module global (not thread-local): autograd may run a backward on its own device threads.
_EXACT_BACKWARD = [0]


@contextmanager
def exact_relu_backward() -> Iterator[None]:
    """Backward passes run inside get the EXACT ReLU / hardtanh derivative at every fused soft node (also
    nodes recorded before the context opened), e.g. a classification loss on logits of a surrogate forward::

        with soft_relu(model):
            maps, logits = interpreter.explain(x, t, create_graph=True)
        with exact_relu_backward():
            (g_pred,) = torch.autograd.grad(ce(logits).sum(), x, retain_graph=True)  # the real model's gradient
        (g_map,) = torch.autograd.grad(map_loss(maps).sum(), x)  # soft-ReLU second-order signal

    Composite (``fused=False``) nodes are not affected. Nests; restored on exit.
    """
    _EXACT_BACKWARD[0] += 1
    try:
        yield
    finally:
        _EXACT_BACKWARD[0] -= 1


def _slope_parts(z: torch.Tensor, kinks: tuple[tuple[float, float], ...], eps: float) -> tuple[
        torch.Tensor, list[torch.Tensor]]:
    """h(z) = sum_k sign_k * h0(z - kink_k) with the soft ReLU slope h0, and the r_k = sqrt((z - kink_k)^2 + eps)."""
    sq = z.new_tensor(eps**0.5)
    h: torch.Tensor | None = None
    rs = []
    for kink, sign in kinks:
        zk = z if kink == 0 else z - kink
        r = torch.hypot(zk, sq)  # no overflow for huge |z|
        hk = torch.remainder(zk / r, 1.0)  # z/r in (-1, 1): z/r for z >= 0, 1 + z/r for z < 0, in one kernel
        rs.append(r)
        h = hk if h is None else (h.add_(hk) if sign > 0 else h.sub_(hk))
    return h, rs


class _SoftSlope(torch.autograd.Function):
    """(g, z) -> g * h(z): the soft nodes' backward, with the hand-written derivatives
    d/dg = h(z) and d/dz = g * sum_k sign_k * eps / r_k^3."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, z: torch.Tensor, kinks: tuple[tuple[float, float], ...],
                eps: float) -> torch.Tensor:
        h, rs = _slope_parts(z, kinks, eps)
        ctx.save_for_backward(g, h, *rs)
        ctx.kinks, ctx.eps = kinks, eps
        return h * g  # h first: the result gets z's memory format (channels-last activations stay so)

    @staticmethod
    @once_differentiable
    def backward(ctx, gg: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        g, h, *rs = ctx.saved_tensors
        grad_g = h * gg if ctx.needs_input_grad[0] else None
        grad_z = None
        if ctx.needs_input_grad[1]:
            gz = gg * g
            if len(rs) == 1:
                grad_z = gz.div_(rs[0].pow(3)).mul_(ctx.eps)
            else:
                curv = None
                for r, (_, sign) in zip(rs, ctx.kinks, strict=True):
                    ck = r.pow(3).reciprocal_()
                    curv = ck if curv is None else (curv.add_(ck) if sign > 0 else curv.sub_(ck))
                grad_z = gz.mul_(curv).mul_(ctx.eps)
        return grad_g, grad_z, None, None


class _FusedSoftReLU(torch.autograd.Function):
    """Exact relu(z) forward; backward g * h(z) through :class:`_SoftSlope` (or exact, see exact_relu_backward)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.eps = eps
        return _relu(z)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (z,) = ctx.saved_tensors
        if _EXACT_BACKWARD[0]:
            return torch.ops.aten.threshold_backward(g, z, 0), None
        return _SoftSlope.apply(g, z, ((0.0, 1.0),), ctx.eps), None


class _FusedSoftHardtanh(torch.autograd.Function):
    """Exact hardtanh(z, lo, hi) forward; backward g * (h(z - lo) - h(z - hi))."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, lo: float, hi: float, eps: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.lo, ctx.hi, ctx.eps = lo, hi, eps
        return _hardtanh(z, lo, hi)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (z,) = ctx.saved_tensors
        if _EXACT_BACKWARD[0]:
            return torch.ops.aten.hardtanh_backward(g, z, ctx.lo, ctx.hi), None, None, None
        return _SoftSlope.apply(g, z, ((ctx.lo, 1.0), (ctx.hi, -1.0)), ctx.eps), None, None, None


def soft_relu_fn(z: torch.Tensor, eps: float = SOFT_RELU_EPS, *, fused: bool = True) -> torch.Tensor:
    """Exact ``relu(z)`` forward; derivative ``z/sqrt(z^2+eps)`` (z >= 0) or ``1 + z/sqrt(z^2+eps)`` (z < 0).

    Any shape; the output equals ``torch.relu(z)`` bit for bit and is differentiable twice. ``fused=False``:
    the slower composite form (same derivatives up to rounding; differentiable any number of times).
    """
    if eps <= 0:
        raise XaisecError(f"soft ReLU eps must be positive, got {eps}")
    return _FusedSoftReLU.apply(z, eps) if fused else _composite_soft_relu(z, eps)


def soft_hardtanh_fn(z: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0,
                     eps: float = SOFT_RELU_EPS, *, fused: bool = True) -> torch.Tensor:
    """Exact ``hardtanh(z, min_val, max_val)`` forward (ReLU6: 0, 6); derivative h(z - min) - h(z - max)."""
    if eps <= 0:
        raise XaisecError(f"soft ReLU eps must be positive, got {eps}")
    if fused:
        return _FusedSoftHardtanh.apply(z, float(min_val), float(max_val), eps)
    return _composite_soft_hardtanh(z, min_val, max_val, eps)


def _call(fn: ReluFn, z: torch.Tensor, inplace: bool, exact: ReluFn = _relu, exact_: ReluFn = _relu_) -> torch.Tensor:
    """Route one activation call through ``fn``; keeps in-place semantics (``z`` is overwritten and returned)."""
    if not (torch.is_grad_enabled() and z.requires_grad):
        return exact_(z) if inplace else exact(z)  # nothing to differentiate: the exact kernel
    if not inplace:
        return fn(z)
    y = fn(z.clone())  # fn may save its input for backward: give it a copy we never overwrite
    return z.copy_(y)


def _hardtanh_call(z: torch.Tensor, min_val: float, max_val: float, inplace: bool, eps: float,
                   fused: bool = True) -> torch.Tensor:
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _call(lambda v: soft_hardtanh_fn(v, min_val, max_val, eps, fused=fused), z, inplace,
                 lambda v: _hardtanh(v, min_val, max_val), lambda v: _hardtanh(v, min_val, max_val, True))


@contextmanager
def _patched(items: list[tuple[object, str, object]]) -> Iterator[None]:
    """Set attributes for the duration of the context; restore (or delete) them in reverse order."""
    saved: list[tuple[object, str, object]] = []
    try:
        for owner, attr, new in items:
            saved.append((owner, attr, vars(owner).get(attr, _MISSING)))
            setattr(owner, attr, new)
        yield
    finally:
        for owner, attr, old in reversed(saved):
            if old is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, old)


@contextmanager
def soft_hardtanh(model: nn.Module | None, eps: float = SOFT_RELU_EPS, *, fused: bool = True) -> Iterator[None]:
    """Smooth the clipped ReLUs (``nn.Hardtanh``/``nn.ReLU6`` modules of ``model``, ``F.hardtanh``,
    ``F.hardtanh_``, ``F.relu6``) like :func:`soft_relu` does for ReLU; exact forward values."""

    def hardtanh(input: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0,
                 inplace: bool = False) -> torch.Tensor:
        return _hardtanh_call(input, min_val, max_val, inplace, eps, fused)

    def hardtanh_(input: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0) -> torch.Tensor:
        return _hardtanh_call(input, min_val, max_val, True, eps, fused)

    def relu6(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        return _hardtanh_call(input, 0.0, 6.0, inplace, eps, fused)

    def module_forward(m: nn.Hardtanh) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda input: _hardtanh_call(input, m.min_val, m.max_val, m.inplace, eps, fused)

    items: list[tuple[object, str, object]] = [(F, "hardtanh", hardtanh), (F, "hardtanh_", hardtanh_),
                                               (F, "relu6", relu6)]
    if model is not None:
        items += [(m, "forward", module_forward(m)) for m in model.modules() if isinstance(m, nn.Hardtanh)]
    with _patched(items):
        yield


@contextmanager
def replace_relu(model: nn.Module | None, fn: ReluFn) -> Iterator[None]:
    """Route every ReLU (``model``'s ``nn.ReLU`` modules and functional relu calls) through ``fn``.

    ``fn(z)`` must return a new tensor equal to ``relu(z)``; it is only called when autograd records
    (otherwise the exact kernel runs). In-place calls keep their semantics. Restored on exit.
    """

    def functional(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        return _call(fn, input, inplace)

    def functional_(input: torch.Tensor) -> torch.Tensor:
        return _call(fn, input, True)

    def plain(input: torch.Tensor) -> torch.Tensor:
        return _call(fn, input, False)

    patches: list[tuple[object, str, object]] = [
        (F, "relu", functional), (F, "relu_", functional_), (torch, "relu", plain), (torch, "relu_", functional_),
        (torch.Tensor, "relu", plain), (torch.Tensor, "relu_", functional_),
    ]
    if model is not None:
        patches += [(m, "forward", _module_forward(m, fn)) for m in model.modules() if isinstance(m, nn.ReLU)]
    with _patched(patches):
        yield


def _module_forward(m: nn.ReLU, fn: ReluFn) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(input: torch.Tensor) -> torch.Tensor:
        return _call(fn, input, m.inplace)

    return forward


@contextmanager
def soft_relu(model: nn.Module | None = None, *, eps: float = SOFT_RELU_EPS,
              fused: bool = True) -> Iterator[nn.Module | None]:
    """Context in which ``model``'s ReLUs (modules and functional calls) use the soft-ReLU derivative.

    Forward outputs are unchanged bit for bit. Yields ``model``. Example::

        with soft_relu(model):
            maps = Gradient(model)(x, t, create_graph=True)
            loss = ((maps - target_maps) ** 2).sum()
        loss.backward()  # non-zero second-order signal w.r.t. x
    """
    if eps <= 0:
        raise XaisecError(f"soft ReLU eps must be positive, got {eps}")
    if model is not None and not isinstance(model, nn.Module):
        raise XaisecError(f"soft_relu expects an nn.Module (or None), got {type(model).__name__}")
    with replace_relu(model, lambda z: soft_relu_fn(z, eps, fused=fused)), soft_hardtanh(model, eps, fused=fused):
        yield model


class SoftReLU(nn.ReLU):
    """Drop-in ``nn.ReLU`` replacement: exact ReLU forward, soft-ReLU derivative (see module docstring).

    A subclass of ``nn.ReLU``, so :func:`replace_relu` (guided backprop, DeepLIFT) still finds it.
    """

    def __init__(self, inplace: bool = False, eps: float = SOFT_RELU_EPS) -> None:
        super().__init__(inplace=inplace)
        if eps <= 0:
            raise XaisecError(f"soft ReLU eps must be positive, got {eps}")
        self.eps = eps

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _call(lambda z: soft_relu_fn(z, self.eps), input, self.inplace)

    def extra_repr(self) -> str:
        return f"inplace={self.inplace}, eps={self.eps}"


def with_soft_relu(model: nn.Module, *, eps: float = SOFT_RELU_EPS) -> nn.Module:
    """A deep copy of ``model`` whose ``nn.ReLU`` modules are :class:`SoftReLU` and whose ``forward``
    also routes functional relu calls and clipped ReLUs (ReLU6, hardtanh) through the surrogate (the
    global patch is active only during each forward call of the copy). The original model is untouched.
    """
    if not isinstance(model, nn.Module):
        raise XaisecError(f"with_soft_relu expects an nn.Module, got {type(model).__name__}")
    soft = copy.deepcopy(model)
    for parent in soft.modules():
        for name, child in parent.named_children():
            if type(child) is nn.ReLU:
                setattr(parent, name, SoftReLU(inplace=child.inplace, eps=eps))
    soft._soft_relu_eps = eps
    soft.forward = types.MethodType(_soft_forward, soft)  # a bound method: survives deepcopy and pickle
    return soft


def _soft_forward(self: nn.Module, *args: object, **kwargs: object) -> object:
    eps = self._soft_relu_eps
    with replace_relu(None, functools.partial(soft_relu_fn, eps=eps)), soft_hardtanh(None, eps):
        return type(self).forward(self, *args, **kwargs)


__all__ = [
    "SOFT_RELU_EPS", "SoftReLU", "exact_relu", "exact_relu_", "exact_relu_backward", "replace_relu", "soft_hardtanh",
    "soft_hardtanh_fn",
    "soft_relu", "soft_relu_fn", "with_soft_relu",
]
