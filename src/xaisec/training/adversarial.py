"""Adversarial training ([AE] section V-G, scaled to a CPU): train on clean images plus PGD examples.

[AE] generates PGD examples of the training set at three iteration counts (50 / 100 / 150) and trains on
the triple-size adversarial set. Here the set is made on the fly, per batch, against the current model,
at ``steps`` = (5, 10, 15) by default (step 2/255, eps 8/255): one PGD run of max(steps) iterations whose
iterates at each k are exactly what a k-step PGD from the same start gives, so the three adversarial
copies cost 15 gradient steps, not 30. The batch loss is the cross-entropy on [x, x_adv(5), x_adv(10),
x_adv(15)] (clean + 3x adversarial, the spec's "clean u 3x adv").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.training.defenses import BatchContext, BatchLoss, check_eps
from xaisec.utils.checks import XaisecError


def pgd_iterates(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    record: Sequence[int],
    random_start: bool = False,
    generator: torch.Generator | None = None,
    amp: bool = False,
) -> list[torch.Tensor]:
    """Untargeted L-inf PGD on the cross-entropy, returning the iterate after each step count in ``record``.

    x (N, C, H, W) in [0, 1], y (N,) true labels. Each returned x_adv satisfies ||x_adv - x||_inf <= eps and
    lies in [0, 1]. The model's mode is left as it is (the caller chooses eval or train batch norm); its
    parameters receive no gradient. ``random_start`` draws the start uniformly in the eps-ball (seeded by
    ``generator``, a CPU generator).
    """
    record = sorted({int(k) for k in record})
    if not record or record[0] < 0:
        raise XaisecError(f"PGD step counts must be >= 0, got {record}")
    x = x.detach()
    if random_start and eps > 0:
        noise = torch.rand(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
        x_adv = (x + (2 * noise - 1) * eps).clamp(0, 1)
    else:
        x_adv = x.clone()
    out: list[torch.Tensor] = [x_adv.clone()] * (record[0] == 0)
    for step in range(1, record[-1] + 1):
        x_adv.requires_grad_(True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x_adv)
        loss = F.cross_entropy(logits.float(), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = x_adv + alpha * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)
        if step in record:
            out.append(x_adv.detach().clone())
    return out


class AdversarialTraining(BatchLoss):
    """PGD adversarial training: cross-entropy on clean images plus PGD-k examples for every k in ``steps``.

    Args:
        eps: L-inf budget (8/255).
        alpha: PGD step (2/255).
        steps: PGD iteration counts, one adversarial copy of the batch each ((5, 10, 15): [AE]'s 50/100/150
            scaled down).
        attack: only ``"pgd"``.
        random_start: uniform start in the eps-ball (off: [AE]'s PGD starts at x).
        clean: include the clean batch in the loss (on).
        eval_bn: craft the examples with batch norm in eval mode (running statistics), then train in train
            mode on the mixed batch (on).
    """

    name = "adversarial"

    def __init__(
        self,
        *,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: Sequence[int] = (5, 10, 15),
        attack: str = "pgd",
        random_start: bool = False,
        clean: bool = True,
        eval_bn: bool = True,
    ) -> None:
        if attack != "pgd":
            raise XaisecError(f"adversarial training supports attack 'pgd' only, got {attack!r}")
        self.eps = check_eps(eps)
        self.alpha = check_eps(alpha, "alpha")
        self.steps = tuple(sorted({int(k) for k in steps}))
        if not self.steps or self.steps[0] < 1:
            raise XaisecError(f"steps must be positive PGD iteration counts such as 5,10,15, got {tuple(steps)}")
        self.attack, self.random_start, self.clean, self.eval_bn = attack, random_start, clean, eval_bn

    def settings(self) -> dict[str, Any]:
        return {"attack": self.attack, "eps": self.eps, "alpha": self.alpha, "steps": list(self.steps),
                "random_start": self.random_start, "clean": self.clean, "eval_bn": self.eval_bn}

    def adversarial_examples(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                             generator: torch.Generator | None = None, amp: bool = False) -> list[torch.Tensor]:
        """One adversarial copy of x (N, C, H, W) per entry of ``steps``, each within eps of x."""
        was_training = model.training
        if self.eval_bn:
            model.eval()
        try:
            return pgd_iterates(model, x, y, eps=self.eps, alpha=self.alpha, record=self.steps,
                                random_start=self.random_start, generator=generator, amp=amp)
        finally:
            model.train(was_training)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: BatchContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        advs = self.adversarial_examples(model, x, y, ctx.generator, ctx.amp)
        batch = torch.cat(([x] if self.clean else []) + advs)
        batch = batch.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else batch
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=ctx.amp):
            logits = model(batch)
        copies = len(advs) + int(self.clean)
        loss = F.cross_entropy(logits.float(), y.repeat(copies), weight=ctx.class_weight,
                               label_smoothing=ctx.label_smoothing)
        return loss, logits[: len(y)]


__all__ = ["AdversarialTraining", "pgd_iterates"]
