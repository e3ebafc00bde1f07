"""Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019) that works on residual
networks, including functional additions (``out + shortcut(x)``), zero-padding shortcuts and
functional ReLUs, without per-architecture canonizers.

How it works (the "gradient x input" formulation). Write every relevance as R = a * g, with a the
activation and g the quantity that flows backward as a "gradient". For any layer without a rule --
ReLU, addition, functional average pooling, padding, slicing, flatten, max-pooling, eval batch norm
not merged into a conv -- plain backprop of g is exactly LRP-0 (the z-rule): relevance passes through
a ReLU unchanged, a sum ``u + v`` splits it in proportion to u and v (so residual blocks need no
special code), pooling/padding/slicing redistribute it proportionally, biases absorb their share.
Average-pooling modules get the z-rule with the stabiliser (Zennit's ``Norm``). The conv/linear layers
("rule layers") change the backward: each one's output is rewired, with an exact forward value, so
that its input receives the relevance of the chosen rule:

* ``epsilon``: R_i = x_i sum_j w_ij R_j / (z_j + eps sign(z_j)) (bias included in z_j);
* ``zplus``: R_i = sum_j (x_i^+ w_ij^+ + x_i^- w_ij^-) R_j / z_j^+ with z_j^+ = those contributions plus
  the positive bias (alpha=1, beta=0; inputs of either sign allowed);
* ``alpha2_beta1``: alpha-beta with alpha=2, beta=1 (positive and negative contribution parts);
* ``gamma``: generalised gamma rule, weights w + gamma w^+ (for z_j > 0), w + gamma w^- (z_j < 0);
* first layer only: ``flat`` (R spread uniformly over each unit's receptive field) or ``zbox`` (the
  z^B rule for inputs in a box [low, high]; the bounds default to the image range [0, 1] mapped through
  the Classifier's normalisation).

A conv/linear layer immediately followed by a batch norm (conv -> bn, found by a one-image probe pass
each call) is treated as one layer with the batch norm folded in ("canonizer"), as Zennit's canonizers
do. Stabilisers add eps with the sign of the denominator (+eps at 0). These definitions follow
Zennit 0.5.1's rules, so on networks both support the results agree (tests check it).

Composites (``composite=``): ``epsilon`` (every layer epsilon), ``epsilon_plus`` (default: conv z^+,
linear epsilon), ``epsilon_plus_flat``, ``epsilon_alpha2_beta1``, ``epsilon_alpha2_beta1_flat``,
``epsilon_gamma_box`` (conv gamma, linear epsilon, first layer z^B).

Relevance starts as the target logit f_c(x) and is returned at the input of the first conv/linear
layer (for an xaisec Classifier: the normalised image, pixel-aligned with x). Without biases and
with a small eps it is conserved: ``attributions(x).sum() ~ f_c(x)``.
Limits: batch norm must be in eval mode; other activations (GELU, sigmoid) get their plain gradient;
transposed convolutions get LRP-0; an image that reaches the network other than through the first
rule layer gets LRP-0 along that path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.interpreters.gradient import AttributionInterpreter
from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
RULE_LAYERS = (*CONVS, nn.Linear)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
SUM_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
LAYER_RULES = ("epsilon", "zplus", "alpha2_beta1", "gamma")
FIRST_RULES = ("flat", "zbox")
# name -> (conv rule, linear rule, first-layer rule or None)
COMPOSITES: dict[str, tuple[str, str, str | None]] = {
    "epsilon": ("epsilon", "epsilon", None),
    "epsilon_plus": ("zplus", "epsilon", None),
    "epsilon_plus_flat": ("zplus", "epsilon", "flat"),
    "epsilon_alpha2_beta1": ("alpha2_beta1", "epsilon", None),
    "epsilon_alpha2_beta1_flat": ("alpha2_beta1", "epsilon", "flat"),
    "epsilon_gamma_box": ("gamma", "epsilon", "zbox"),
}


def stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """z + eps * sign(z), with sign(0) = +1."""
    return z + torch.where(z >= 0, eps, -eps)


def _layer_forward(layer: nn.Module, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    if isinstance(layer, nn.Linear):
        return F.linear(x, w, b)
    return layer._conv_forward(x, w, b)  # type: ignore[union-attr]  # honours padding_mode, groups, ...


def _vjp(layer: nn.Module, x: torch.Tensor, w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """W^T s: the gradient of sum(s * layer(x; w)) w.r.t. x (layer is linear in x)."""
    with torch.enable_grad():
        xl = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(_layer_forward(layer, xl, w, None), xl, grad_outputs=s)
    return g


def _clamp(b: torch.Tensor | None, **kw: float) -> torch.Tensor | None:
    return None if b is None else b.clamp(**kw)


def _merged_params(layer: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of ``bn(layer(x))`` as one layer (eval-mode batch norm folded in)."""
    inv_std = torch.rsqrt(bn.running_var + bn.eps)
    scale = bn.weight * inv_std if bn.affine else inv_std
    shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
    w = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))
    b = shift if layer.bias is None else layer.bias * scale + shift
    return w.detach(), b.detach()


@dataclass
class _Plan:
    """What the probe pass found: conv/linear -> the batch norm it feeds, and the first rule layer."""

    merged: dict[nn.Module, nn.Module] = field(default_factory=dict)
    first: nn.Module | None = None


@dataclass
class _State:
    stacks: dict[nn.Module, list[tuple[torch.Tensor, bool]]] = field(default_factory=dict)
    first_seen: bool = False
    x_first: torch.Tensor | None = None
    explicit: tuple | None = None  # first layer with an explicit rule: (layer, x, z, w, b, rule, anchor)


class LRP(AttributionInterpreter):
    """Layer-wise relevance propagation for ReLU networks, residual ones included (see module doc).

    Args:
        composite: rule set, one of :data:`COMPOSITES` (default ``"epsilon_plus"``).
        epsilon: the epsilon rule's eps (default 1e-6).
        stabilizer: denominator stabiliser of the other rules (default 1e-6).
        gamma: the gamma rule's gamma (default 0.25).
        bounds: (low, high) of the first layer's input for ``zbox``, floats or per-channel sequences;
            default: [0, 1] through the Classifier's normalisation (or [0, 1] for a plain module).
        reduce: channel reduction of the map, default ``"sum"``.

    ``attributions(x, target)`` -> relevance (N, C, H, W) at the first conv/linear layer's input.
    """

    name = "lrp"
    default_reduce = "sum"

    def __init__(
        self,
        model: nn.Module,
        *,
        composite: str = "epsilon_plus",
        epsilon: float = 1e-6,
        stabilizer: float = 1e-6,
        gamma: float = 0.25,
        bounds: tuple[float | Sequence[float], float | Sequence[float]] | None = None,
        reduce: str | None = None,
        normalize: str = "minmax",
    ) -> None:
        super().__init__(model, reduce=reduce, normalize=normalize)
        if composite not in COMPOSITES:
            raise XaisecError(f"unknown LRP composite {composite!r}; choose from {', '.join(COMPOSITES)}")
        for name, v in (("epsilon", epsilon), ("stabilizer", stabilizer), ("gamma", gamma)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise XaisecError(f"{name} must be a finite float >= 0, got {v!r}")
        if bounds is not None and (not isinstance(bounds, (tuple, list)) or len(bounds) != 2):
            raise XaisecError(f"bounds must be a (low, high) pair, got {bounds!r}")
        self.composite = composite
        self.conv_rule, self.linear_rule, self.first_rule = COMPOSITES[composite]
        self.epsilon, self.stabilizer, self.gamma = float(epsilon), float(stabilizer), float(gamma)
        self.bounds = bounds

    def __repr__(self) -> str:
        return f"LRP(composite={self.composite!r}, reduce={self.reduce!r}, normalize={self.normalize!r})"

    # ----------------------------------------------------------------------------------------- plan
    def _probe(self, x1: torch.Tensor) -> _Plan:
        for m in self.model.modules():
            if isinstance(m, BATCHNORMS) and (m.training or m.running_mean is None):
                raise XaisecError("LRP needs batch norm layers in eval mode with running statistics: call model.eval()")
        plan = _Plan()
        produced: dict[int, tuple[nn.Module, torch.Tensor]] = {}

        def rule_hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
            if plan.first is None:
                plan.first = m
            produced[id(out)] = (m, out)

        def bn_hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
            src = produced.get(id(inp[0]))
            if src is not None and src[1] is inp[0]:
                plan.merged[src[0]] = m

        handles = [m.register_forward_hook(rule_hook) for m in self.model.modules() if isinstance(m, RULE_LAYERS)]
        handles += [m.register_forward_hook(bn_hook) for m in self.model.modules() if isinstance(m, BATCHNORMS)]
        try:
            with torch.no_grad():
                self.model(x1)
        finally:
            for h in handles:
                h.remove()
        if plan.first is None:
            raise XaisecError("LRP needs a network with at least one Conv or Linear layer")
        return plan

    # ---------------------------------------------------------------------------------------- rules
    def _rule_term(self, rule: str, layer: nn.Module, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor,
                   b: torch.Tensor | None) -> torch.Tensor:
        """A tensor T (values irrelevant) whose vector-Jacobian product w.r.t. x with the incoming
        g = R_z / z gives R_x / x of ``rule``."""
        zd = z.detach()
        st = self.stabilizer
        if rule == "epsilon":
            return z * (zd / stabilize(zd, self.epsilon))
        f: Callable[..., torch.Tensor] = lambda inp, ww, bb=None: _layer_forward(layer, inp, ww, bb)  # noqa: E731
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        if rule == "zplus":
            p = f(xp, wp, _clamp(b, min=0)) + f(xn, wn)
            return p * (zd / stabilize(p.detach(), st))
        if rule == "alpha2_beta1":
            alpha, beta = 2.0, 1.0
            p = f(xp, wp, _clamp(b, min=0)) + f(xn, wn)
            q = f(xp, wn, _clamp(b, max=0)) + f(xn, wp)
            return alpha * p * (zd / stabilize(p.detach(), st)) - beta * q * (zd / stabilize(q.detach(), st))
        if rule == "gamma":
            g = self.gamma
            bp = None if b is None else b + g * b.clamp(min=0)
            bq = None if b is None else b + g * b.clamp(max=0)
            p = f(xp, w + g * wp, bp) + f(xn, w + g * wn)
            q = f(xp, w + g * wn, bq) + f(xn, w + g * wp)
            cp = torch.where(zd > 0, zd / stabilize(p.detach(), st), torch.zeros_like(zd))
            cq = torch.where(zd < 0, zd / stabilize(q.detach(), st), torch.zeros_like(zd))
            return p * cp + q * cq
        raise XaisecError(f"unknown LRP rule {rule!r}")  # pragma: no cover - composites are validated

    def _explicit_first(self, layer: nn.Module, x: torch.Tensor, rz: torch.Tensor, w: torch.Tensor,
                        b: torch.Tensor | None, rule: str) -> torch.Tensor:
        """Relevance at the first layer's input for the flat / z^B rules, from the output relevance rz."""
        st = self.stabilizer
        if rule == "flat":
            ones, w1 = torch.ones_like(x), torch.ones_like(w)
            s = rz / stabilize(_layer_forward(layer, ones, w1, None), st)
            return _vjp(layer, ones, w1, s)
        low, high = self._box(x)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        den = (_layer_forward(layer, x, w, b) - _layer_forward(layer, low, wp, _clamp(b, min=0))
               - _layer_forward(layer, high, wn, _clamp(b, max=0)))
        s = rz / stabilize(den, st)
        return x * _vjp(layer, x, w, s) - low * _vjp(layer, low, wp, s) - high * _vjp(layer, high, wn, s)

    def _box(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) expanded to x's shape, in the first layer's input space."""
        shape = (1, -1, *([1] * (x.dim() - 2))) if x.dim() > 2 else (1, -1)
        if self.bounds is not None:
            lo, hi = (torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in self.bounds)
            lo, hi = (v.view(shape) if v.dim() == 1 else v for v in (lo, hi))
        else:
            norm = getattr(self.model, "normalize", None)
            mean, std = getattr(norm, "mean", None), getattr(norm, "std", None)
            if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
                lo, hi = ((v - mean.flatten()) / std.flatten() for v in (0.0, 1.0))
                lo, hi = lo.to(x).view(shape), hi.to(x).view(shape)
            else:
                lo, hi = torch.zeros((), dtype=x.dtype, device=x.device), torch.ones((), dtype=x.dtype, device=x.device)
        try:
            return lo.expand_as(x), hi.expand_as(x)
        except RuntimeError as exc:
            raise XaisecError(
                f"zbox bounds do not broadcast to the first layer's input {tuple(x.shape)}; pass bounds=(low, high) "
                "as floats or per-channel sequences"
            ) from exc

    def _rewire(self, state: _State, layer: nn.Module, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor,
                b: torch.Tensor | None, is_first: bool) -> torch.Tensor:
        rule = self.conv_rule if isinstance(layer, CONVS) else self.linear_rule
        if is_first and self.first_rule is not None:
            anchor = torch.zeros_like(z, requires_grad=True)
            state.explicit = (layer, x.detach(), z.detach(), w.detach(), None if b is None else b.detach(),
                              self.first_rule, anchor)
            return z.detach() + anchor
        t = self._rule_term(rule, layer, x, z, w.detach(), None if b is None else b.detach())
        return z.detach() + (t - t.detach())  # forward: exactly z; backward: the rule

    # --------------------------------------------------------------------------------- attributions
    def _attributions(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        plan = self._probe(x[:1])
        owner = {bn: layer for layer, bn in plan.merged.items()}
        state = _State(stacks={layer: [] for layer in plan.merged})

        def rule_hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> torch.Tensor | None:
            is_first = m is plan.first and not state.first_seen
            if is_first:
                state.first_seen, state.x_first = True, inp[0]
            if m in plan.merged:
                state.stacks[m].append((inp[0], is_first))
                return None
            return self._rewire(state, m, inp[0], out, m.weight, m.bias, is_first)

        def bn_hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> torch.Tensor | None:
            layer = owner[m]
            if not state.stacks[layer]:
                return None
            xin, is_first = state.stacks[layer].pop()
            w, b = _merged_params(layer, m)
            return self._rewire(state, layer, xin, out, w, b, is_first)

        def pool_hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> torch.Tensor:
            zd = out.detach()
            t = out * (zd / stabilize(zd, self.stabilizer))
            return zd + (t - t.detach())

        modules = list(self.model.modules())
        handles = [m.register_forward_hook(rule_hook) for m in modules if isinstance(m, RULE_LAYERS)]
        handles += [m.register_forward_hook(bn_hook) for m in owner]
        handles += [m.register_forward_hook(pool_hook) for m in modules if isinstance(m, SUM_POOLS)]
        try:
            with torch.enable_grad():
                xx = x.detach().requires_grad_(True)
                logits = self.model(xx)
        finally:
            for h in handles:
                h.remove()
        x_first = state.x_first
        if x_first is None:  # pragma: no cover - the probe found a first layer
            raise XaisecError("LRP: the first layer did not run on this input")
        self._last_logits = logits.detach()  # the rewired forward is exact: these are the model's logits
        sel = logits.gather(1, target.view(-1, 1)).sum()
        inputs = [x_first] + ([state.explicit[-1]] if state.explicit is not None else [])
        with torch.enable_grad():
            grads = torch.autograd.grad(sel, inputs, allow_unused=True)
        rel = x_first.detach() * grads[0] if grads[0] is not None else torch.zeros_like(x_first)
        if state.explicit is not None:
            layer, xe, ze, w, b, rule, _ = state.explicit
            ga = grads[1] if grads[1] is not None else torch.zeros_like(ze)
            rel = rel + self._explicit_first(layer, xe, ze * ga, w, b, rule)
        rel = rel.detach()
        if rel.shape != x.shape:
            if rel.shape[0] == x.shape[0] and rel.numel() == x.numel():
                rel = rel.reshape(x.shape)  # e.g. an MLP's flattened input
            elif rel.dim() != 4:
                raise XaisecError(
                    f"LRP relevance has shape {tuple(rel.shape)} at the first layer, which cannot be mapped to "
                    f"the image shape {tuple(x.shape)}"
                )
        return rel


__all__ = ["COMPOSITES", "LRP"]
