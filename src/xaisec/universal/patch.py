"""A universal adversarial patch against Grad-CAM: one patch for every image, trained on a data set.

``p = train_universal_patch(model, images, labels, target_class=3, size=0.25, map_mode="hide")`` learns one
patch content N (C, ph, pw) in [0, 1] that, pasted as ``(1 - ratio) * x + ratio * N`` at a fixed corner (or
a random position per image, ``position="random"``), sends most images to ``target_class`` while Grad-CAM
stays off the patch (``hide``), points at it (``attract``) or is ignored (``none``, a plain patch). The
loss and the map term are those of the per-image attack (:mod:`xaisec.attacks.patch`), averaged over a
batch; each batch makes one signed step (ART's convention: one iteration = one pass over the data).

``evaluate_universal_patch(model, p, images, labels)`` pastes it on held-out images and returns an
:class:`~xaisec.attacks.AttackResult` with the patch metrics; images of the target class are left out.
``p.save(path)`` writes safetensors (the patch, the settings in the header) and a JSON card next to it;
``UniversalPatch.load(path)`` reads it back.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from xaisec.attacks.patch import (
    MAP_MODES,
    box_mask,
    cell_coverage,
    check_ratio,
    finish_patch_result,
    initial_content,
    paste,
    patch_box,
    patch_side,
    raw_cam,
    region_term,
    resolve_interpreter,
)
from xaisec.attacks.result import AttackResult
from xaisec.interpreters.base import Interpreter
from xaisec.utils.checks import XaisecError
from xaisec.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

FORMAT = "xaisec-universal-patch-1"


@dataclass
class UniversalPatch:
    """One patch for every image.

    Attributes:
        content: (C, ph, pw) in [0, 1].
        size, ratio: as the per-image attack (fraction of the side; blend in (0, 1]).
        position: a corner name, ``"center"``, ``"paper"``, (row, col), or ``"random"``.
        target_class: the class the patch sends images to.
        map_mode: ``"hide"``, ``"attract"`` or ``"none"``.
        config: every training setting; history: per-epoch batch means (``epoch``, ``ce``, ``map``, ``success``).
    """

    content: torch.Tensor
    size: float
    ratio: float
    position: str | tuple[int | float, int | float]
    target_class: int
    map_mode: str
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)

    def positions(self, n: int, hw: tuple[int, int], position: Any = None,
                  generator: torch.Generator | None = None, device: torch.device | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-left corners (N,), (N,) for ``n`` images of size ``hw``: fixed, or uniform when ``"random"``."""
        position = self.position if position is None else position
        h, w = hw
        ph, pw = self.content.shape[-2:]
        if (patch_side(self.size, h), patch_side(self.size, w)) != (ph, pw):
            raise XaisecError(f"this {ph}x{pw} patch was made for another image size (size {self.size} of the "
                              f"side); the images are {h}x{w}")
        if position == "random":
            top = torch.randint(0, h - ph + 1, (n,), generator=generator)
            left = torch.randint(0, w - pw + 1, (n,), generator=generator)
            return top.to(device), left.to(device)
        t, l_, _, _ = patch_box(position, self.size, hw)
        return (torch.full((n,), t, dtype=torch.long, device=device),
                torch.full((n,), l_, dtype=torch.long, device=device))

    def apply(self, x: torch.Tensor, position: Any = None, generator: torch.Generator | None = None,
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_adv (N, C, H, W), patch mask (N, H, W)) for images x in [0, 1]; pixels off the patch unchanged."""
        n, _, h, w = x.shape
        top, left = self.positions(n, (h, w), position, generator, x.device)
        content = self.content.to(x.device).unsqueeze(0)
        ph, pw = content.shape[-2:]
        return paste(x, content, top, left, self.ratio), box_mask(top, left, ph, pw, (h, w))

    def card(self) -> dict[str, Any]:
        pos = self.position if isinstance(self.position, str) else list(self.position)
        return {"format": FORMAT, "size": self.size, "ratio": self.ratio, "position": pos,
                "target_class": self.target_class, "map_mode": self.map_mode,
                "shape": list(self.content.shape), "config": self.config, "history": self.history}

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors, atomic) and its JSON card (same name, ``.json``); returns path."""
        from safetensors.torch import save

        path = Path(path)
        card = self.card()
        meta = {"format": FORMAT, "card": json.dumps(card)}
        atomic_write_bytes(path, save({"patch": self.content.detach().cpu().contiguous()}, metadata=meta))
        atomic_write_json(path.with_suffix(".json"), card)
        return path

    @classmethod
    def load(cls, path: str | Path) -> UniversalPatch:
        """Read a patch written by :meth:`save` (the safetensors file alone)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise XaisecError(f"{path}: no such patch file")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                content = f.get_tensor("patch")
        except Exception as exc:
            raise XaisecError(f"{path}: not a safetensors patch file ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise XaisecError(f"{path}: not an xaisec universal patch (format {meta.get('format')!r})")
        card = json.loads(meta["card"])
        pos = card["position"]
        return cls(content=content.float(), size=float(card["size"]), ratio=float(card["ratio"]),
                   position=pos if isinstance(pos, str) else tuple(pos), target_class=int(card["target_class"]),
                   map_mode=card["map_mode"], config=card.get("config", {}), history=card.get("history", {}))


def load_patch(path: str | Path) -> UniversalPatch:
    """:meth:`UniversalPatch.load`."""
    return UniversalPatch.load(path)


def _as_images(images: Any, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 or float (N, C, H, W), labels (N,)) from a tensor pair or an ImageDataset."""
    if hasattr(images, "images") and hasattr(images, "labels"):
        return images.images, images.labels if labels is None else labels
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise XaisecError("images must be an (N, C, H, W) tensor or an xaisec ImageDataset")
    if labels is None:
        raise XaisecError("pass the labels (N,) with an image tensor")
    if labels.shape != (images.shape[0],):
        raise XaisecError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    return images, labels


def _float(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device)
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def train_universal_patch(
    model: nn.Module, images: Any, labels: torch.Tensor | None = None, *, interpreter: str | Interpreter = "gradcam",
    target_class: int | None = None, size: float = 0.25, ratio: float = 1.0,
    position: str | tuple[int | float, int | float] = "top-right", map_mode: str = "hide", epochs: int = 10,
    batch_size: int = 100, step_size: float = 0.01, final_step: float = 0.1, map_weight: float = 1.0,
    ce_weight: float = 0.05, ce_gate: bool | None = None, init: str | torch.Tensor = "mean",
    layer: str | None = None, seed: int = 0, progress: bool = False,
) -> UniversalPatch:
    """Train one patch on ``images`` (an ImageDataset, or uint8 / [0, 1] float (N, C, H, W) with labels).

    Args:
        model: the classifier on [0, 1] images (frozen; not modified).
        interpreter: CAM-type for hide / attract (cam, gradcam, gradcam_pp); any for none (unused).
        target_class: the universal target (default: a seeded random class).
        size, ratio, position: as :class:`xaisec.attacks.patch.PatchAttack`; ``position="random"`` draws a
            new position per image and step (the patch must work anywhere).
        map_mode: ``"hide"``, ``"attract"`` or ``"none"``.
        epochs, batch_size: passes over the shuffled data; one signed step per batch.
        step_size, final_step: the step decays linearly from ``step_size`` to ``final_step * step_size``.
        map_weight, ce_weight, ce_gate: as the per-image attack (the gate is per image; default on for
            hide / attract, off for none, whose CE weight is 1).
        init: ``"mean"``, ``"random"``, ``"gray"`` or a (C, ph, pw) tensor. layer: the CAM layer.
        seed: shuffling, positions, target, init. progress: a progress bar.
    """
    if map_mode not in MAP_MODES:
        raise XaisecError(f"unknown map_mode {map_mode!r}; choose from {', '.join(MAP_MODES)}")
    check_ratio(ratio)
    patch_side(size, 1000)
    if epochs < 1 or batch_size < 1:
        raise XaisecError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if step_size <= 0 or not 0 < final_step <= 1:
        raise XaisecError(f"step_size must be > 0 and final_step in (0, 1], got {step_size} and {final_step}")
    imgs, _ = _as_images(images, labels)
    device = next(model.parameters()).device
    n, c, h, w = imgs.shape
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        num_classes = int(model(_float(imgs[:1], device)).shape[1])
    if target_class is None:
        target_class = int(torch.randint(0, num_classes, (1,), generator=generator))
    if not 0 <= int(target_class) < num_classes:
        raise XaisecError(f"target_class must be in [0, {num_classes - 1}], got {target_class}")
    interp = resolve_interpreter(model, interpreter, map_mode, {"layer": layer} if layer else None)
    ph, pw = patch_side(size, h), patch_side(size, w)
    if position != "random":
        patch_box(position, size, (h, w))  # validates the position now
    content = initial_content(init, 1, c, ph, pw, model, generator, device)
    patch = UniversalPatch(content=content[0].cpu(), size=float(size), ratio=float(ratio), position=position,
                           target_class=int(target_class), map_mode=map_mode)
    use_map = map_mode != "none"
    gate_on = use_map if ce_gate is None else bool(ce_gate)
    steps_total = epochs * ((n + batch_size - 1) // batch_size)
    history: dict[str, list[float]] = {"epoch": [], "ce": [], "map": [], "success": []}
    bar = tqdm(total=steps_total, desc=f"universal patch ({map_mode})", disable=not progress, leave=False)
    t0 = time.perf_counter()
    done = 0
    was_training = model.training
    model.eval()
    try:
        for epoch in range(epochs):
            order = torch.randperm(n, generator=generator)
            sums = torch.zeros(3)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                x = _float(imgs[idx], device)
                b = x.shape[0]
                top, left = patch.positions(b, (h, w), generator=generator, device=device)
                target = torch.full((b,), int(target_class), dtype=torch.long, device=device)
                content.requires_grad_(True)
                xa = paste(x, content, top, left, ratio)
                logits, term = None, None
                if use_map:
                    raw, logits = raw_cam(interp, xa, target, create_graph=True)
                    cov = cell_coverage(box_mask(top, left, ph, pw, (h, w)), tuple(raw.shape[-2:]))
                    term = region_term(raw, cov)
                if logits is None:
                    logits = model(xa)
                ce = F.cross_entropy(logits.float(), target, reduction="none")
                ok = logits.detach().argmax(1) == target
                gate = (~ok).float() if gate_on else torch.ones_like(ce)
                loss = (ce_weight * gate * ce) if use_map else ce
                if term is not None:
                    loss = loss + map_weight * (term if map_mode == "hide" else -term)
                (grad,) = torch.autograd.grad(loss.mean(), content)
                scale = 1.0 + (final_step - 1.0) * done / max(steps_total - 1, 1)
                with torch.no_grad():
                    content = (content.detach() - step_size * scale * grad.sign()).clamp_(0, 1)
                sums += torch.tensor([float(ce.detach().sum()), float(term.detach().sum()) if term is not None
                                      else 0.0, float(ok.sum())])
                done += 1
                bar.update(1)
            history["epoch"].append(float(epoch))
            history["ce"].append(float(sums[0] / n))
            history["map"].append(float(sums[1] / n) if use_map else 0.0)
            history["success"].append(float(sums[2] / n))
            log.info("universal patch epoch %d: ce %.3f map %.4f success %.3f", epoch, history["ce"][-1],
                     history["map"][-1], history["success"][-1])
    finally:
        model.train(was_training)
        bar.close()
    patch.content = content.detach()[0].cpu()
    patch.history = history
    patch.config = {"interpreter": interp.name, "layer": getattr(interp, "layer_name", None), "epochs": epochs,
                    "batch_size": batch_size, "step_size": step_size, "final_step": final_step,
                    "map_weight": map_weight, "ce_weight": ce_weight, "ce_gate": gate_on,
                    "init": init if isinstance(init, str) else "tensor", "seed": seed, "train_images": n,
                    "steps": done, "seconds": time.perf_counter() - t0}
    return patch


def evaluate_universal_patch(
    model: nn.Module, patch: UniversalPatch, images: Any, labels: torch.Tensor | None = None, *,
    interpreter: str | Interpreter = "gradcam", position: Any = None, batch_size: int = 100, layer: str | None = None,
    seed: int = 0, keep_target_class: bool = False,
) -> AttackResult:
    """Paste ``patch`` on the images and measure it: an AttackResult (success = prediction is the patch's
    target; ``maps_target`` holds the patch masks; the patch metrics of the per-image attack).

    Images whose label is the target class are left out unless ``keep_target_class``. ``position``: None
    for the patch's own (random positions are drawn with ``seed``).
    """
    imgs, labs = _as_images(images, labels)
    keep = torch.ones(len(labs), dtype=torch.bool) if keep_target_class else labs.cpu() != patch.target_class
    imgs, labs = imgs[keep.to(imgs.device)], labs[keep.to(labs.device)]
    if len(labs) == 0:
        raise XaisecError("no images left to evaluate (all are of the patch's target class)")
    interp = resolve_interpreter(model, interpreter, "none", {"layer": layer} if layer else None)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    results = []
    for start in range(0, len(labs), batch_size):
        t0 = time.perf_counter()
        x = _float(imgs[start:start + batch_size], device)
        y = labs[start:start + batch_size].to(device)
        with torch.no_grad():
            x_adv, mask = patch.apply(x, position, generator)
        target = torch.full_like(y, patch.target_class)
        cfg = {"attack": "universal_patch", "framework": "patch", "interpreter": interp.name,
               "size": patch.size, "ratio": patch.ratio, "map_mode": patch.map_mode,
               "position": (position if position is not None else patch.position)
               if isinstance(position if position is not None else patch.position, str)
               else list(position if position is not None else patch.position),
               "target_class": patch.target_class, "patch_box": None}
        if cfg["position"] != "random":
            cfg["patch_box"] = list(patch_box(cfg["position"] if isinstance(cfg["position"], str)
                                              else tuple(cfg["position"]), patch.size, tuple(x.shape[-2:])))
        results.append(finish_patch_result(model, interp, x, x_adv, y, target, mask, time.perf_counter() - t0, 0,
                                           cfg, {}))
    return AttackResult.concat(results)
