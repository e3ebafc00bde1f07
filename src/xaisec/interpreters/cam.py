"""Class activation maps: CAM (Zhou et al. 2016), Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++
(Chattopadhyay et al. 2018), batched, on the model's device, differentiable with ``create_graph=True``.

All three read the activations A (N, K, h, w) of one layer (``layer=``, default ``model.cam_layer``) and
return raw maps (N, h, w) at that layer's resolution from :meth:`attribute` / :meth:`raw_maps`; calling
the interpreter upsamples them bilinearly to the input size and normalises them (min-max by default).

Cost: one forward pass with a hook on the layer and, for the gradient methods, one
``torch.autograd.grad(score, A)`` that stops at the layer (it never backpropagates to the input).
With ``create_graph=False`` the part of the network before the layer runs without recording a graph.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.interpreters.base import Interpreter
from xaisec.interpreters.hooks import resolve_layer
from xaisec.utils.checks import XaisecError, check_images


def _resolve_fc(model: nn.Module, fc: str | nn.Module | None) -> nn.Module:
    """The linear head after global average pooling: ``fc`` itself, a dotted name, ``model.fc_layer``, or
    the model's only ``nn.Linear``."""
    if fc is None:
        fc = getattr(model, "fc_layer", None)
    if fc is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if len(linears) != 1:
            raise XaisecError(
                "CAM needs the linear layer after global average pooling: pass fc='name' or wrap the model "
                f"with fc_layer= (found {len(linears)} nn.Linear layers, cannot choose)"
            )
        return linears[0]
    module = resolve_layer(model, fc)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (2, 4):
        raise XaisecError(
            f"fc layer {fc!r} must be an nn.Linear (or a 1x1 convolution) with a (classes, channels) weight"
        )
    return module


class _LayerCAM(Interpreter):
    """Shared machinery: hook the layer, run one forward, optionally take d score / d A.

    Args:
        model: a classifier on [0, 1] images.
        layer: the layer whose output A (N, K, h, w) the map is built from: a module, a dotted name inside
            ``model.net`` (or ``model``), or None for ``model.cam_layer``.
        normalize: ``"minmax"`` (default), ``"sum"`` or ``"none"``; applied after upsampling.
    """

    differentiable: ClassVar[bool] = True
    needs_gradient: ClassVar[bool] = True
    detach_weights: bool = False  # gradient CAMs: channel weights without a graph (see _GradientCAM)

    def __init__(
        self, model: nn.Module, *, layer: str | nn.Module | None = None, normalize: str = "minmax"
    ) -> None:
        super().__init__(model, normalize=normalize)
        self.layer = resolve_layer(model, layer)
        self.layer_name = layer if isinstance(layer, str) else (
            getattr(model, "cam_layer", None) if layer is None else type(layer).__name__
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(layer={self.layer_name!r}, normalize={self.normalize!r})"

    def prepare(
        self, x: torch.Tensor, target: torch.Tensor | int | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:  # type: ignore[override]
        # target=None is resolved from the logits of the forward pass the map needs anyway (one pass, not two)
        if target is None:
            check_images(x)
            return x.to(self.device), None
        return super().prepare(x, target)

    def raw_maps(
        self, x: torch.Tensor, target: torch.Tensor | int | None = None, *, create_graph: bool = False
    ) -> torch.Tensor:
        """Maps (N, h, w) at the layer's resolution, before upsampling and normalisation."""
        x, t = self.prepare(x, target)
        maps = self.attribute(x, t, create_graph=create_graph)
        return maps if create_graph else maps.detach()

    def _forward(
        self, x: torch.Tensor, target: torch.Tensor | None, create_graph: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """One forward with the layer hooked.

        Returns (A (N, K, h, w), d sum_n score_n / d A or None, target (N,)).
        """
        store: dict[str, torch.Tensor] = {}
        grads = self.needs_gradient

        def hook(_m: nn.Module, _i: tuple, out: object) -> torch.Tensor:
            if not isinstance(out, torch.Tensor) or out.dim() != 4:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise XaisecError(f"the CAM layer must output an (N, K, h, w) tensor, got {shape}; "
                                  "pass layer=")
            if "a" in store:
                raise XaisecError("the CAM layer runs more than once per forward pass; pass another layer=")
            if grads and not create_graph:
                torch.set_grad_enabled(True)  # the forward ran under no_grad up to here; restored on exit
                a = out.detach().requires_grad_(True)
            elif grads and not out.requires_grad:  # frozen model and an input without grad
                a = out.detach().requires_grad_(True)
            else:
                a = out
            store["a"] = a
            # downstream layers get a copy, so an in-place op after the layer cannot alter A or its graph
            return a.clone()

        handle = self.layer.register_forward_hook(hook)
        try:
            with torch.set_grad_enabled(create_graph):
                logits = self.model(x)
                self._last_logits = logits  # handed to attacks by Interpreter.explain: no second forward
                if "a" not in store:
                    raise XaisecError("the CAM layer did not run in the forward pass; pass another layer=")
                a = store["a"]
                if target is None:
                    target = logits.detach().argmax(1)
                if not grads:
                    return a, None, target
                score = logits.gather(1, target.view(-1, 1)).sum()
                try:
                    (g,) = torch.autograd.grad(score, a, create_graph=create_graph and not self.detach_weights,
                                               retain_graph=create_graph)
                except RuntimeError as exc:
                    raise XaisecError(f"the class score does not depend on the CAM layer: {exc}") from exc
        finally:
            handle.remove()
        if not create_graph:
            a = a.detach()
        return a, g, target


class CAM(_LayerCAM):
    """Class activation map: ``sum_k W[c, k] A_k`` with W the linear head after global average pooling.

    No ReLU (the ADV^2 convention: the fc weight of the class times the last-layer features, then per-sample
    min-max), so negative evidence stays in the map; the bias is left out. Same as torchcam's ``CAM``.

    Args:
        model, layer, normalize: see :class:`_LayerCAM`.
        fc: the linear head (module or dotted name); default ``model.fc_layer``, else the model's only
            ``nn.Linear``. Its weight must be (classes, K) with K the layer's channels.

    Raw maps: (N, h, w), any sign.
    """

    name: ClassVar[str] = "cam"
    needs_gradient: ClassVar[bool] = False

    def __init__(
        self,
        model: nn.Module,
        *,
        layer: str | nn.Module | None = None,
        fc: str | nn.Module | None = None,
        normalize: str = "minmax",
    ) -> None:
        super().__init__(model, layer=layer, normalize=normalize)
        self.fc = _resolve_fc(model, fc)

    def attribute(
        self, x: torch.Tensor, target: torch.Tensor | None, *, create_graph: bool = False
    ) -> torch.Tensor:
        a, _, target = self._forward(x, target, create_graph)
        w = self.fc.weight
        w = w.flatten(1) if w.dim() == 4 else w
        if w.shape[1] != a.shape[1]:
            raise XaisecError(
                f"the fc layer takes {w.shape[1]} features but the CAM layer has {a.shape[1]} channels; "
                "pass the layer right before global pooling (layer=) and its linear head (fc=)"
            )
        if not create_graph:
            w = w.detach()
        return torch.einsum("nk,nkhw->nhw", w[target], a)


class _GradientCAM(_LayerCAM):
    """A CAM weighted by the gradient of the class score, with an optional ReLU on the final map.

    ``detach_weights=True``: with ``create_graph=True`` the map is differentiated through the activations only,
    the gradient weights taken as constants; exact for piecewise-linear heads (ReLU, max-pool, GAP, linear),
    whose weights are piecewise constant in x, and one double backward cheaper.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layer: str | nn.Module | None = None,
        relu: bool = True,
        normalize: str = "minmax",
        detach_weights: bool = False,
    ) -> None:
        super().__init__(model, layer=layer, normalize=normalize)
        self.relu = relu
        self.detach_weights = detach_weights


class GradCAM(_GradientCAM):
    """Grad-CAM: channel weights ``w_k = mean_ij d y_c / d A_k(i, j)`` (y_c the logit), map
    ``ReLU(sum_k w_k A_k)``.

    Args:
        model, layer, normalize: see :class:`_LayerCAM`.
        relu: apply the ReLU (default True, as in the paper; Captum's ``LayerGradCam`` default is False).

    Raw maps: (N, h, w), >= 0 with ``relu=True``.
    """

    name: ClassVar[str] = "gradcam"

    def attribute(
        self, x: torch.Tensor, target: torch.Tensor | None, *, create_graph: bool = False
    ) -> torch.Tensor:
        a, g, _ = self._forward(x, target, create_graph)
        assert g is not None
        maps = torch.einsum("nk,nkhw->nhw", g.mean((2, 3)), a)
        return F.relu(maps) if self.relu else maps


class GradCAMpp(_GradientCAM):
    """Grad-CAM++ with the paper's closed form for the exponential score ``S = exp(y_c)``.

    With g = d y_c / d A, the derivatives of S are exp(y_c) g, exp(y_c) g^2, exp(y_c) g^3 (exact when y_c is
    piecewise linear in A, e.g. global pooling + linear head), so

        alpha_k(i, j) = g^2 / (2 g^2 + sum_ab A_k(a, b) g^3)      (0 where the denominator is 0)
        w_k = sum_ij alpha_k(i, j) ReLU(g(i, j)),   map = ReLU(sum_k w_k A_k).

    The common factor exp(y_c) of the weights is dropped (it overflows for large logits and cancels under
    per-sample normalisation). No epsilon is added to the denominator. Note: torchcam 0.5.0's ``GradCAMpp``
    does not apply its alpha division (an in-place divide on a masked copy), so it differs from this;
    torchcam's ``SmoothGradCAMpp`` with one noise-free sample equals this on global-pooling heads.

    Args:
        model, layer, normalize: see :class:`_LayerCAM`.
        relu: ReLU on the final map (default True).
    """

    name: ClassVar[str] = "gradcam_pp"

    def attribute(
        self, x: torch.Tensor, target: torch.Tensor | None, *, create_graph: bool = False
    ) -> torch.Tensor:
        a, g, _ = self._forward(x, target, create_graph)
        assert g is not None
        g2 = g * g
        denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g2 * g
        nonzero = denom != 0
        alpha = torch.where(nonzero, g2 / torch.where(nonzero, denom, torch.ones_like(denom)), 0.0)
        w = (alpha * F.relu(g)).sum((2, 3))
        maps = torch.einsum("nk,nkhw->nhw", w, a)
        return F.relu(maps) if self.relu else maps
