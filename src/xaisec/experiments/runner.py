"""Run an attack over many images in batches, and pick the images an attack is measured on."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from xaisec.attacks import AttackResult
from xaisec.attacks import get as get_attack
from xaisec.data.dataset import ImageDataset
from xaisec.interpreters import Interpreter
from xaisec.interpreters import get as get_interpreter
from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)


@torch.no_grad()
def correctly_classified(model: nn.Module, data: ImageDataset, n: int, seed: int = 0,
                         batch_size: int = 500) -> ImageDataset:
    """A seeded random sample of ``n`` images that ``model`` classifies correctly (fewer if there are not
    enough). The papers measure attacks on such images."""
    if n < 1:
        raise XaisecError(f"n must be >= 1, got {n}")
    device = next(model.parameters()).device
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    chosen: list[torch.Tensor] = []
    count = 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x = data.images[idx].to(device).float().div_(255)
        ok = (model(x).argmax(1).cpu() == data.labels[idx])
        chosen.append(idx[ok])
        count += int(ok.sum())
        if count >= n:
            break
    picked = torch.cat(chosen)[:n] if chosen else torch.empty(0, dtype=torch.long)
    if len(picked) < n:
        log.warning("only %d of the requested %d images are correctly classified", len(picked), n)
    if len(picked) == 0:
        raise XaisecError("the model classifies none of these images correctly")
    return data.subset(picked)


def run_attack(
    model: nn.Module, interpreter: str | Interpreter, attack: str, x: torch.Tensor, y: torch.Tensor, *,
    framework: str | None = None, batch_size: int = 50, seed: int = 0, progress: bool = False,
    interpreter_options: dict[str, Any] | None = None, **options: Any,
) -> AttackResult:
    """Attack x (N, C, H, W) in [0, 1] with labels y, ``batch_size`` images at a time; returns one result.

    Each batch gets the seed ``seed + batch index`` so the result does not depend on how many batches
    ran before (a resumed run gives the same numbers).
    """
    if batch_size < 1:
        raise XaisecError(f"batch size must be >= 1, got {batch_size}")
    if isinstance(interpreter, str):
        interpreter = get_interpreter(interpreter, model, **(interpreter_options or {}))
    results = []
    for b, start in enumerate(range(0, x.shape[0], batch_size)):
        atk = get_attack(attack, model, interpreter, framework=framework, seed=seed + b, progress=progress,
                         **options)
        results.append(atk(x[start:start + batch_size], y[start:start + batch_size]))
    return AttackResult.concat(results)
