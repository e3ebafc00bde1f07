"""Evaluating a universal perturbation on held-out images: fooling ratio, map L1 and IoU (the paper's
Eq. 18-20), per image and as means.

The benign map is I(x) explaining the clean prediction, the adversarial map I(x_hat) explaining the
adversarial prediction (the maps a deployed system shows), both min-max normalised at input resolution. L1 is
the mean |difference| per pixel; IoU is reported two ways (the paper does not give its binarisation): the
top-20% pixels of each map (``iou``, chance about 0.11) and the threshold 0.5 (``iou_threshold``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from xaisec.interpreters.base import Interpreter
from xaisec.metrics import map_iou, map_l1, minmax_normalize
from xaisec.universal.objective import resolve_interpreter
from xaisec.universal.result import UniversalPerturbation
from xaisec.utils.checks import XaisecError


def threshold_iou(a: torch.Tensor, b: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """IoU of {a >= t} and {b >= t} for (N, H, W) maps (min-max normalised first); 1 when both are empty."""
    ma = minmax_normalize(a).flatten(1) >= threshold
    mb = minmax_normalize(b).flatten(1) >= threshold
    inter = (ma & mb).sum(1).float()
    union = (ma | mb).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


@dataclass
class UniversalEvaluation:
    """Per-image results (all (N,) on the CPU) and, optionally, the images and maps for reports."""

    fooled: torch.Tensor
    l1: torch.Tensor
    iou: torch.Tensor
    iou_threshold: torch.Tensor
    pred_clean: torch.Tensor
    pred_adv: torch.Tensor
    labels: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.fooled.shape[0])

    def summary(self) -> dict[str, Any]:
        out = {"n": len(self), "fooling_ratio": float(self.fooled.float().mean()), "l1": float(self.l1.mean()),
               "iou": float(self.iou.mean()), "iou_threshold": float(self.iou_threshold.mean())}
        if self.labels is not None:
            out["accuracy_clean"] = float((self.pred_clean == self.labels).float().mean())
            out["accuracy_adv"] = float((self.pred_adv == self.labels).float().mean())
        return out

    def records(self) -> list[dict[str, Any]]:
        return [{"index": i, "pred_clean": int(self.pred_clean[i]), "pred_adv": int(self.pred_adv[i]),
                 "fooled": bool(self.fooled[i]), "l1": float(self.l1[i]), "iou": float(self.iou[i]),
                 "iou_threshold": float(self.iou_threshold[i])} for i in range(len(self))]


def evaluate(uap: UniversalPerturbation, model: nn.Module, interpreter: str | Interpreter | None, images: Any, *,
             labels: torch.Tensor | None = None, batch_size: int = 100, keep: int = 0,
             interpreter_options: dict[str, Any] | None = None) -> UniversalEvaluation:
    """Apply ``uap`` to (N, C, H, W) images (or an ImageDataset) and measure fooling, L1 and IoU.

    ``interpreter`` None measures fooling only (L1 and IoU are NaN). ``keep``: the first ``keep`` images,
    perturbed images and both maps are returned in ``extras`` (for reports).
    """
    from xaisec.universal.train import as_images

    x_all, y = as_images(images, labels)
    uap.check_compatible(x_all)
    interp = None if interpreter is None else resolve_interpreter(model, interpreter, interpreter_options,
                                                                  differentiable=False)
    device = next(iter(model.parameters()), torch.zeros(0)).device
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in ("fooled", "l1", "iou", "iou_t", "pc", "pa")}
    kept: dict[str, list[torch.Tensor]] = {k: [] for k in ("x", "x_adv", "maps_benign", "maps_adv")}
    was_training = model.training
    model.eval()
    try:
        for i in range(0, x_all.shape[0], batch_size):
            x = x_all[i: i + batch_size].to(device)
            xa = uap.apply(x)
            with torch.no_grad():
                pc, pa = model(x).argmax(1), model(xa).argmax(1)
            cols["pc"].append(pc.cpu())
            cols["pa"].append(pa.cpu())
            cols["fooled"].append((pc != pa).cpu())
            if interp is None:
                nan = torch.full((x.shape[0],), float("nan"))
                for k in ("l1", "iou", "iou_t"):
                    cols[k].append(nan)
                continue
            mb, ma = interp(x, pc), interp(xa, pa)
            cols["l1"].append(map_l1(ma, mb).cpu())
            cols["iou"].append(map_iou(ma, mb).cpu())
            cols["iou_t"].append(threshold_iou(ma, mb).cpu())
            have = sum(t.shape[0] for t in kept["x"])
            if have < keep:
                take = keep - have
                for k, v in (("x", x), ("x_adv", xa), ("maps_benign", mb), ("maps_adv", ma)):
                    kept[k].append(v[:take].detach().cpu())
    finally:
        model.train(was_training)
    if not cols["pc"]:
        raise XaisecError("no images to evaluate")
    return UniversalEvaluation(
        fooled=torch.cat(cols["fooled"]), l1=torch.cat(cols["l1"]), iou=torch.cat(cols["iou"]),
        iou_threshold=torch.cat(cols["iou_t"]), pred_clean=torch.cat(cols["pc"]), pred_adv=torch.cat(cols["pa"]),
        labels=None if y is None else y.cpu(), extras={k: torch.cat(v) for k, v in kept.items() if v},
    )


__all__ = ["UniversalEvaluation", "evaluate", "threshold_iou"]
