"""Measuring an attack's outcome with the papers' metrics, on the real model and interpreter."""

from __future__ import annotations

import torch

from xaisec.interpreters.base import Interpreter
from xaisec.metrics import map_iou, map_l1, map_l2, noise_rate

METRIC_NOTES = {
    "success": "1 if the attack reached its goal (target class, or any wrong class when untargeted); higher is better",
    "confidence": "softmax probability of the adversarial prediction; higher is better for the attacker",
    "l1": "mean |g(x_adv) - g(x)| per pixel, maps min-max normalised; lower = adversarial map closer to benign",
    "l2": "sqrt(sum (g(x_adv) - g(x))^2) / sqrt(pixels), maps min-max normalised; lower is closer",
    "iou": "IoU of the top-20% pixels of g(x_adv) and g(x); higher is closer",
    "l1_target": "L1 (as l1) between g(x_adv) and the target map; lower is closer to the attacker's goal",
    "iou_target": "IoU (as iou) between g(x_adv) and the target map",
    "noise_rate": "1 - SSIM(x, x_adv) (Gaussian window 11, sigma 1.5); lower is less visible",
    "linf": "max |x_adv - x|",
    "l2_dist": "||x_adv - x||_2",
    "seconds_per_image": "wall time of the attack divided by the number of images",
}


@torch.no_grad()
def _predict(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    probs = model(x).softmax(1)
    conf, pred = probs.max(1)
    return pred, conf


def measure(
    model: torch.nn.Module, interpreter: Interpreter, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
    target: torch.Tensor | None, maps_target: torch.Tensor, seconds: float, *, iou_k: float = 20.0,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Metrics (name -> (N,)) and tensors (predictions, maps) of an attack outcome.

    The benign map is g(x, clean prediction) and the adversarial map g(x_adv, adversarial prediction): the
    maps the deployed system would show. Both come from the real model (no surrogate).
    """
    pred_clean, _ = _predict(model, x)
    pred_adv, conf = _predict(model, x_adv)
    maps_benign = interpreter(x, pred_clean)
    maps_adv = interpreter(x_adv, pred_adv)
    success = pred_adv == target if target is not None else pred_adv != y
    n = x.shape[0]
    diff = (x_adv - x).flatten(1)
    metrics = {
        "success": success.float(),
        "confidence": conf,
        "l1": map_l1(maps_adv, maps_benign),
        "l2": map_l2(maps_adv, maps_benign),
        "iou": map_iou(maps_adv, maps_benign, k=iou_k),
        "l1_target": map_l1(maps_adv, maps_target),
        "iou_target": map_iou(maps_adv, maps_target, k=iou_k),
        "noise_rate": noise_rate(x, x_adv),
        "linf": diff.abs().amax(1),
        "l2_dist": diff.norm(dim=1),
        "seconds_per_image": torch.full((n,), seconds / max(n, 1)),
    }
    tensors = {"pred_clean": pred_clean, "pred_adv": pred_adv, "success": success, "maps_benign": maps_benign,
               "maps_adv": maps_adv}
    return {k: v.detach().float().cpu() for k, v in metrics.items()}, tensors
