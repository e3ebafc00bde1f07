"""Run an attack over many images in batches, and pick the images an attack is measured on."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from xaisec.attacks import AttackResult
from xaisec.attacks import get as get_attack
from xaisec.attacks.targets import keep_not_already_target
from xaisec.data.dataset import ImageDataset
from xaisec.data.labels import align_labels
from xaisec.interpreters import Interpreter
from xaisec.interpreters import get as get_interpreter
from xaisec.models.wrapper import ensure_classifier
from xaisec.utils.checks import XaisecError, check_seed

log = logging.getLogger(__name__)


@torch.no_grad()
def correctly_classified(model: nn.Module, data: ImageDataset, n: int, seed: int = 0,
                         batch_size: int = 500) -> ImageDataset:
    """A seeded random sample of ``n`` images that ``model`` classifies correctly (fewer if there are not
    enough). The papers measure attacks on such images. The data's class names are first mapped onto the
    model's (:func:`xaisec.data.labels.align_labels`), so the returned labels are the model's class indices."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise XaisecError(f"n must be an int >= 1, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise XaisecError(f"batch size must be an int >= 1, got {batch_size!r}")
    check_seed(seed)
    if len(data) == 0:
        raise XaisecError(f"{data.name}: the data set holds no images")
    data = align_labels(data, model)
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
    ran before (a resumed run gives the same numbers). With a fixed ``target_class`` (an int or an (N,)
    tensor), the images whose label already is the target are dropped first, with a warning that counts
    them (an error when none remain); ``result.config["dropped_already_target"]`` holds that count.
    Tensor options with one row per image (``target_class``, ``target_map``) are split with the batches.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise XaisecError(f"batch size must be an int >= 1, got {batch_size!r}")
    check_seed(seed)
    ensure_classifier(model, f"attack {attack!r}")
    n = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() == 4 else 0
    if n == 0:
        raise XaisecError("no images to attack (x must be a non-empty (N, C, H, W) batch)")
    if not isinstance(y, torch.Tensor) or y.shape != (n,):
        raise XaisecError(f"y must be a LongTensor of shape ({n},), got "
                          f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    dropped = 0
    tc = options.get("target_class")
    fixed = tc if isinstance(tc, torch.Tensor) and tc.dim() == 1 and tc.shape[0] == n else (
        torch.full((n,), tc, dtype=torch.long) if isinstance(tc, int) and not isinstance(tc, bool) else None)
    if fixed is not None:
        keep = keep_not_already_target(fixed.to(y.device), y)
        if keep is not None:
            dropped = int((~keep).sum())
            x, y = x[keep], y[keep]
            options = {k: (v[keep.to(v.device)] if _per_image(v, n) else v) for k, v in options.items()}
            n = x.shape[0]
    if isinstance(interpreter, str):
        interpreter = get_interpreter(interpreter, model, **(interpreter_options or {}))
    results = []
    for b, start in enumerate(range(0, n, batch_size)):
        batch_options = {k: (v[start:start + batch_size] if _per_image(v, n) else v) for k, v in options.items()}
        atk = get_attack(attack, model, interpreter, framework=framework, seed=seed + b, progress=progress,
                         **batch_options)
        results.append(atk(x[start:start + batch_size], y[start:start + batch_size]))
    res = AttackResult.concat(results)
    res.config = {**res.config, "dropped_already_target": dropped}
    return res


def _per_image(value: Any, n: int) -> bool:
    """Whether an option is a tensor with one row per image (target classes or target maps)."""
    return isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == n
