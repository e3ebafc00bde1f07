"""Prediction-side attack metrics: success, misclassification confidence, fooling ratio.

Each function returns one value per sample, shape (N,); ``xaisec.metrics.aggregate`` gives the mean
(for the boolean results, the rate). Higher is better for the attacker in all three.
"""

from __future__ import annotations

import torch

from xaisec.metrics._validate import as_labels, as_predictions
from xaisec.utils.checks import XaisecError


def attack_success_rate(
    adv: torch.Tensor, *, target: torch.Tensor | int | None = None, label: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Per-sample attack success, bool (N,); its mean (``aggregate``) is the attack success rate.

    Args:
        adv: the model's output on the adversarial inputs, logits (N, K) (argmax is taken) or
            predicted labels (N,).
        target: targeted attack: success when the prediction equals ``target`` (N,) or an int.
        label: untargeted attack: success when the prediction differs from the true ``label``.

    Give exactly one of ``target`` and ``label``. Higher is better (for the attacker).
    """
    if (target is None) == (label is None):
        raise XaisecError(
            "give exactly one of target= (targeted attack: success = prediction == target) or "
            "label= (untargeted attack: success = prediction != true label)"
        )
    pred = as_predictions(adv, "adv")
    if target is not None:
        return pred == as_labels(target, pred.shape[0], "target", pred.device)
    return pred != as_labels(label, pred.shape[0], "label", pred.device)  # type: ignore[arg-type]


def misclassification_confidence(
    adv_logits: torch.Tensor, *, target: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Softmax probability on the adversarial inputs, float (N,) in [0, 1].

    With ``target`` (targeted attacks, as in ADV^2 and AdvEdge): the probability of the target class,
    whether or not the attack succeeded. Without it: the probability of the predicted class (the
    maximum softmax probability). Average it over successful samples by indexing first
    (``values[success]``) if that is the number you want. Higher is better (for the attacker).

    Args:
        adv_logits: logits (N, K) of the model on the adversarial inputs (not probabilities).
    """
    is_logits = isinstance(adv_logits, torch.Tensor) and adv_logits.dim() == 2
    if not is_logits or not adv_logits.is_floating_point():
        raise XaisecError(
            "adv_logits must be a float tensor of logits with shape (N, K); "
            f"got {getattr(adv_logits, 'shape', type(adv_logits).__name__)}"
        )
    probs = adv_logits.softmax(1)
    if target is None:
        return probs.max(1).values
    t = as_labels(target, probs.shape[0], "target", probs.device)
    if (t < 0).any() or (t >= probs.shape[1]).any():
        raise XaisecError(f"target classes must be in [0, {probs.shape[1] - 1}]")
    return probs.gather(1, t[:, None])[:, 0]


def fooling_ratio(clean: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Per-sample prediction change between clean and adversarial inputs, bool (N,).

    ``clean`` and ``adv`` are logits (N, K) or predicted labels (N,) (they may be mixed). The mean is
    the fooling ratio, in [0, 1]. Higher is better (for the attacker).
    """
    p0, p1 = as_predictions(clean, "clean"), as_predictions(adv, "adv")
    if p0.shape != p1.shape:
        raise XaisecError(
            f"clean and adv must describe the same batch, got {p0.shape[0]} and {p1.shape[0]} samples"
        )
    return p0 != p1.to(p0.device)
