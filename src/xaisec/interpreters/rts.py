"""Real-time saliency (RTS, Dabkowski & Gal 2017): a trained masking network predicts the map in one pass.

The network (:class:`SaliencyNet`, defined in :mod:`xaisec.models.saliency_net` and re-exported here) has
its own small ResNet encoder (multi-scale features and class logits of its own) and a U-Net decoder
conditioned on the requested class; it maps [0, 1] images and a class index to a mask m in [0, 1] at input
resolution (1 = salient). Its objective and training loop (and the AID defense) are in
:mod:`xaisec.training.rts` (``xaisec train-rts``); ``get("rts", model)`` loads the shipped network.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from xaisec.interpreters.base import Interpreter
from xaisec.models.saliency_net import SaliencyNet
from xaisec.models.weights import WEIGHTS_DIR
from xaisec.utils.checks import XaisecError, check_images


def rts_weights_path(model_name: str) -> Path:
    """Where the package ships the RTS network trained for the zoo model ``model_name``."""
    return WEIGHTS_DIR / f"rts_{model_name}.safetensors"


class RTS(Interpreter):
    """Real-time saliency: the map is the class-conditional mask of a trained :class:`SaliencyNet`.

    Args:
        model: the classifier the network was trained for (an xaisec ``Classifier``).
        weights: path to an ``rts_*.safetensors`` file; default: the shipped
            ``models/weights/rts_<model.name>.safetensors``.
        saliency_net: an already built :class:`SaliencyNet` (takes precedence over ``weights``).
        normalize: default ``"none"``: the mask is already in [0, 1] and an empty mask (class absent)
            stays empty; ``"minmax"`` rescales each map.

    Maps: (N, H, W) in [0, 1], 1 = salient (kept). ``create_graph=True`` keeps the graph to x.
    :meth:`encoder_logits` gives the network's own class logits (N, K), differentiable in x.
    The network is put in eval mode; its weights are frozen when loaded from a file.
    """

    name = "rts"
    differentiable = True

    def __init__(
        self,
        model: nn.Module,
        *,
        weights: str | Path | None = None,
        saliency_net: SaliencyNet | None = None,
        normalize: str = "none",
    ) -> None:
        super().__init__(model, normalize=normalize)
        if saliency_net is not None:
            if not isinstance(saliency_net, SaliencyNet):
                raise XaisecError(f"saliency_net must be a SaliencyNet, got {type(saliency_net).__name__}")
            net = saliency_net
        else:
            if weights is None:
                name = getattr(model, "name", None)
                path = rts_weights_path(name) if name else None
                if path is None or not path.is_file():
                    raise XaisecError(
                        f"no RTS weights shipped for model {name or type(model).__name__!r}: train them with "
                        f"`xaisec train-rts --model {name or 'NAME'}` (add --install to ship them), "
                        "or pass weights=PATH or saliency_net=SaliencyNet(...)"
                    )
                weights = path
            net = SaliencyNet.from_file(weights)
            net.requires_grad_(False)
        k = self.num_classes
        if k is not None and net.num_classes != k:
            raise XaisecError(f"the RTS network has {net.num_classes} classes but the model has {k}: "
                              "train one for this model with `xaisec train-rts`")
        self.saliency_net = net.to(self.device).eval()

    def _check_channels(self, x: torch.Tensor) -> None:
        if x.shape[1] != self.saliency_net.in_channels:
            raise XaisecError(f"x has {x.shape[1]} channels but the RTS network takes "
                              f"{self.saliency_net.in_channels}")

    def prepare(self, x: torch.Tensor, target: torch.Tensor | int | None) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            self._check_channels(x)
        return super().prepare(x, target)

    def attribute(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        self._check_channels(x)
        self.saliency_net.eval()
        with torch.set_grad_enabled(create_graph):
            mask, _ = self.saliency_net(x, target)
        return mask[:, 0]

    def mask_and_logits(
        self, x: torch.Tensor, target: torch.Tensor | int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask (N, H, W) in [0, 1] (not normalised) and encoder logits (N, K) in one pass, with graph."""
        x, t = self.prepare(x, target)
        self.saliency_net.eval()
        mask, logits = self.saliency_net(x, t)
        return mask[:, 0], logits

    def encoder_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The RTS encoder's own class logits (N, K) for [0, 1] images x, differentiable in x."""
        check_images(x, channels=self.saliency_net.in_channels)
        self.saliency_net.eval()
        return self.saliency_net.encode(x.to(self.device))[1]

    def __repr__(self) -> str:
        return f"RTS(normalize={self.normalize!r}, net={self.saliency_net.config})"


__all__ = ["RTS", "SaliencyNet", "rts_weights_path"]
