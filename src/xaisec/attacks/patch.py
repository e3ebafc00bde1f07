"""Adversarial patches against Grad-CAM (Le, Kang, Kim, IEEE Access 2021; Subramanya et al., ICCV 2019).

A patch of side ``size`` (a fraction of the image side) at a corner (or any (row, col)) is blended into
the image, ``x_adv = (1 - P) * x + P * N`` with P = ``ratio`` inside the patch and 0 outside, N the free
patch content in [0, 1]. Pixels outside the patch are copied, so they stay bit-exact, and inside the patch
``|x_adv - x| <= ratio``. N is optimised by signed gradient steps (clamped to [0, 1] after every step) on

    loss = ce_weight * [pred != y_t] * L(f(x_adv), y_t) +/- map_weight * region(G(x_adv, y_t))

with L the cross-entropy toward the target (``loss="ce"``, the papers') or the margin
``max(max_{j != y_t} z_j - z_{y_t}, -kappa)`` on the logits (``loss="margin"``, Carlini-Wagner's f6),

with G the ReLU'd target-class CAM map at the interpreter's layer, L1-normalised per image (eps 1e-10),
and region(G) = sum_cells c * G / sum_cells c, c the share of each map cell the patch covers (the baseline's
``G[0:4, 0:4] / 16`` on aligned cells). ``map_mode="hide"`` minimises it (the equation of both papers:
the map stays off the patch), ``"attract"`` maximises it (what Le et al.'s figures show: the map on the
patch), ``"none"`` drops it (a plain CE patch; its CE is not gated).

Works with the CAM-type interpreters ``cam``, ``gradcam`` and ``gradcam_pp`` for hide / attract; any
interpreter for ``none`` (its maps are then only measured).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from xaisec.attacks.evaluate import measure
from xaisec.attacks.result import AttackResult
from xaisec.attacks.targets import resolve_target_class
from xaisec.interpreters.base import Interpreter
from xaisec.utils.checks import XaisecError, check_images, check_targets

log = logging.getLogger(__name__)

MAP_MODES = ("hide", "attract", "none")
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right", "center", "paper")
CAM_INTERPRETERS = ("cam", "gradcam", "gradcam_pp")
REGIONS = ("patch", "paper_literal")
INITS = ("mean", "random", "gray")
LOSSES = ("ce", "margin")

# The papers' settings. Sizes are fractions of the image side (64 and 32 px of 224); step sizes are in [0, 1]
# pixel units: Le et al.'s "lr 0.05" and Subramanya's sign step 0.005 are in ImageNet-normalised units,
# i.e. times the channel std (about 0.226).
PRESETS: dict[str, dict[str, Any]] = {
    "le2021_visible": {"size": 64 / 224, "ratio": 1.0, "position": "top-right", "map_mode": "attract",
                       "steps": 1000, "step_size": 0.05 * 0.226},
    "le2021_faint": {"size": 32 / 224, "ratio": 0.2, "position": "top-right", "map_mode": "attract",
                     "steps": 1000, "step_size": 0.05 * 0.226},
    "subramanya2019": {"size": 64 / 224, "ratio": 1.0, "position": "top-left", "map_mode": "hide",
                       "steps": 750, "step_size": 0.005 * 0.226},
    "plain": {"map_mode": "none"},
}


# -- geometry ------------------------------------------------------------------------------------------------
def patch_side(size: float, side: int) -> int:
    """Patch side in pixels for ``size`` (a fraction of the image side in (0, 1]) on a ``side``-pixel image."""
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise XaisecError(f"patch size must be a fraction of the image side, got {size!r}")
    if size <= 0:
        raise XaisecError(f"patch size must be > 0 (a fraction of the image side, e.g. 0.25), got {size}")
    if size > 1:
        raise XaisecError(
            f"patch size {size} is larger than the image (sizes are fractions of the image side, at most 1.0)"
        )
    return max(1, round(size * side))


def check_ratio(ratio: float) -> float:
    if not 0 < ratio <= 1:
        raise XaisecError(f"patch ratio must be in (0, 1] (1 replaces the pixels, 0.2 blends 20%), got {ratio}")
    return float(ratio)


def patch_box(position: str | tuple[int | float, int | float], size: float,
              image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) in pixels of the patch.

    ``position``: a corner name (flush with that corner), ``"center"``, ``"paper"`` (Le et al.'s placement:
    row 0, column round(150/224 W)), or (row, col) of the top-left pixel: ints are pixels, floats
    fractions of the image side.
    """
    h, w = image_hw
    ph, pw = patch_side(size, h), patch_side(size, w)
    if isinstance(position, str):
        corners = {"top-left": (0, 0), "top-right": (0, w - pw), "bottom-left": (h - ph, 0),
                   "bottom-right": (h - ph, w - pw), "center": ((h - ph) // 2, (w - pw) // 2),
                   "paper": (0, min(round(150 / 224 * w), w - pw))}
        if position not in corners:
            raise XaisecError(f"unknown patch position {position!r}; choose from {', '.join(CORNERS)} or (row, col)")
        top, left = corners[position]
    else:
        try:
            r, c = position
        except (TypeError, ValueError) as exc:
            raise XaisecError(f"patch position must be a corner name or (row, col), got {position!r}") from exc
        top = r if isinstance(r, int) else round(float(r) * h)
        left = c if isinstance(c, int) else round(float(c) * w)
        if top < 0 or left < 0 or top + ph > h or left + pw > w:
            raise XaisecError(
                f"patch at (row {top}, col {left}) of {ph}x{pw} px lies outside the {h}x{w} image; rows must be "
                f"in [0, {h - ph}] and columns in [0, {w - pw}]"
            )
    return int(top), int(left), int(ph), int(pw)


def box_mask(top: torch.Tensor, left: torch.Tensor, ph: int, pw: int, hw: tuple[int, int]) -> torch.Tensor:
    """Binary patch masks (N, H, W) for per-image top-left corners ``top``, ``left`` (N,)."""
    h, w = hw
    rows = torch.arange(h, device=top.device).view(1, h, 1)
    cols = torch.arange(w, device=top.device).view(1, 1, w)
    t, l_ = top.view(-1, 1, 1), left.view(-1, 1, 1)
    return ((rows >= t) & (rows < t + ph) & (cols >= l_) & (cols < l_ + pw)).float()


def paste(x: torch.Tensor, content: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
          ratio: float) -> torch.Tensor:
    """``(1 - ratio) * x + ratio * content`` inside each image's patch box, ``x`` copied outside.

    x (N, C, H, W); content (N or 1, C, ph, pw) in [0, 1]; top, left (N,) long. Differentiable in content
    (and x); no Python loop over images.
    """
    n = x.shape[0]
    ph, pw = content.shape[-2:]
    dev = x.device
    ri = (top.view(n, 1, 1) + torch.arange(ph, device=dev).view(1, ph, 1)).expand(n, ph, pw)
    ci = (left.view(n, 1, 1) + torch.arange(pw, device=dev).view(1, 1, pw)).expand(n, ph, pw)
    ni = torch.arange(n, device=dev).view(n, 1, 1).expand(n, ph, pw)
    xh = x.permute(0, 2, 3, 1)
    old = xh[ni, ri, ci]  # (N, ph, pw, C)
    new = content.permute(0, 2, 3, 1).expand_as(old)
    mixed = new if ratio == 1.0 else (1 - ratio) * old + ratio * new
    return xh.index_put((ni, ri, ci), mixed).permute(0, 3, 1, 2).contiguous()


def cell_coverage(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Share of each map cell (N, h, w) the pixel mask (N, H, W) covers (adaptive average pooling)."""
    return F.adaptive_avg_pool2d(mask.unsqueeze(1), hw).squeeze(1)


def region_term(raw: torch.Tensor, coverage: torch.Tensor, *, literal: bool = False) -> torch.Tensor:
    """Normalised map mass in the region (N,): raw (N, h, w) maps, ReLU'd and L1-normalised (eps 1e-10),
    weighted by the cell coverage (N, h, w) and divided by its sum (``literal``: by 16, the papers' code)."""
    g = F.relu(raw)
    g = g / (g.flatten(1).sum(1).view(-1, 1, 1) + 1e-10)
    num = (g * coverage).flatten(1).sum(1)
    if literal:
        return num / 16.0
    return num / coverage.flatten(1).sum(1).clamp_min(1e-12)


def resolve_interpreter(model: nn.Module, interpreter: str | Interpreter, map_mode: str,
                        options: dict[str, Any] | None = None) -> Interpreter:
    """The interpreter object; hide / attract need a CAM-type one (cam, gradcam, gradcam_pp)."""
    if map_mode not in MAP_MODES:
        raise XaisecError(f"unknown map_mode {map_mode!r}; choose from {', '.join(MAP_MODES)}")
    if isinstance(interpreter, str):
        from xaisec.interpreters import get as get_interpreter

        opts = dict(options or {})
        if interpreter == "gradcam" and map_mode != "none":
            # exact for ReLU networks (the channel weights are piecewise constant in x) and one backward cheaper
            opts.setdefault("detach_weights", True)
        interpreter = get_interpreter(interpreter, model, **opts)
    if not isinstance(interpreter, Interpreter):
        raise XaisecError(f"interpreter must be a name or an xaisec Interpreter, got {type(interpreter).__name__}")
    if map_mode != "none" and interpreter.name not in CAM_INTERPRETERS:
        raise XaisecError(
            f"map_mode={map_mode!r} steers the map's mass at a CAM layer and works with the CAM-type interpreters "
            f"{', '.join(CAM_INTERPRETERS)}; got {interpreter.name!r} (use one of those, or map_mode='none')"
        )
    return interpreter


def raw_cam(interpreter: Interpreter, x: torch.Tensor, target: torch.Tensor, *,
            create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Un-normalised maps (N, h, w) at the interpreter's own resolution and the logits of the same pass
    (None when the interpreter does not record them). Hot path: no input validation."""
    interpreter._last_logits = None  # type: ignore[attr-defined]
    maps = interpreter.attribute(x, target, create_graph=create_graph)
    logits = getattr(interpreter, "_last_logits", None)
    interpreter._last_logits = None  # type: ignore[attr-defined]
    return (maps if create_graph else maps.detach()), logits


def initial_content(init: str | torch.Tensor, n: int, channels: int, ph: int, pw: int, model: nn.Module,
                    generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Starting patch content (n, C, ph, pw) in [0, 1]: the model's normalisation mean (the baseline's
    N = 0 in normalised space), uniform noise, mid-grey, or a given (C, ph, pw) / (n, C, ph, pw) tensor."""
    if isinstance(init, torch.Tensor):
        t = init.detach().float().to(device)
        if t.dim() == 3:
            t = t.unsqueeze(0)
        if t.shape[1:] != (channels, ph, pw) or t.shape[0] not in (1, n):
            raise XaisecError(f"init patch must have shape ({channels}, {ph}, {pw}) or (N, ...), "
                              f"got {tuple(init.shape)}")
        return t.clamp(0, 1).expand(n, -1, -1, -1).clone()
    if init == "random":
        return torch.rand(n, channels, ph, pw, generator=generator).to(device)
    if init == "gray":
        return torch.full((n, channels, ph, pw), 0.5, device=device)
    if init == "mean":
        norm = getattr(model, "normalize", None)
        mean = getattr(norm, "mean", None)
        if isinstance(mean, torch.Tensor) and mean.numel() == channels:
            return mean.detach().to(device).view(1, channels, 1, 1).expand(n, channels, ph, pw).clone()
        return torch.full((n, channels, ph, pw), 0.5, device=device)
    raise XaisecError(f"unknown patch init {init!r}; choose from {', '.join(INITS)} or pass a tensor")


def merge_preset(preset: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """The preset's settings overridden by explicit options."""
    if preset is None:
        return dict(options)
    if preset not in PRESETS:
        raise XaisecError(f"unknown patch preset {preset!r}; choose from {', '.join(PRESETS)}")
    return {**PRESETS[preset], **options}


class PatchAttack:
    """A targeted adversarial patch per image that fools the classifier and steers (or ignores) Grad-CAM.

    Args:
        model: the classifier on [0, 1] (N, C, H, W) images.
        interpreter: a CAM-type :class:`Interpreter` (cam, gradcam, gradcam_pp) for hide / attract, any
            interpreter for none; its maps are measured on the result.
        size: patch side as a fraction of the image side, in (0, 1] (0.25: 8 px of 32).
        ratio: blend inside the patch, in (0, 1] (1: the patch replaces the pixels).
        position: corner name (flush), ``"center"``, ``"paper"`` or (row, col) (ints: pixels, floats: fractions).
        map_mode: ``"hide"``, ``"attract"`` or ``"none"``.
        map_weight, ce_weight: weights of the map term and of the class term (paper: 1 and 0.05).
        ce_gate: the class term only while the prediction is not the target (default: on for hide / attract,
            off for none).
        loss: the class term, ``"ce"`` (cross-entropy toward the target, the papers') or ``"margin"`` (best other
            logit minus the target logit, floored at ``-kappa``).
        kappa: the margin loss's floor (confidence), >= 0.
        steps, step_size: gradient steps on the patch content, in [0, 1] pixel units.
        final_step: the step decays linearly from ``step_size`` to ``final_step * step_size`` (1: constant).
        optimizer: ``"sign"`` (signed steps, the baseline; ``sign=False``: raw gradient steps) or ``"adam"``
            (Adam with learning rate ``step_size``, elementwise, so images stay independent).
        init: ``"mean"``, ``"random"``, ``"gray"`` or a (C, ph, pw) tensor.
        region: ``"patch"`` (the map term reads the cells the patch covers) or ``"paper_literal"`` (the
            top-left cells of the patch's size, divided by 16, as the papers' code).
        target_class: ``"random"`` (another class, seeded), an int or an (N,) tensor.
        keep_best: return per image the successful iterate with the best map term (none: the highest
            target probability); else the last iterate.
        log_every: history every this many steps. seed, progress: as every attack.
    """

    def __init__(
        self, model: nn.Module, interpreter: Interpreter, *, size: float = 0.25, ratio: float = 1.0,
        position: str | tuple[int | float, int | float] = "top-right", map_mode: str = "attract",
        map_weight: float = 1.0, ce_weight: float = 0.05, ce_gate: bool | None = None, steps: int = 300,
        step_size: float = 0.01, final_step: float = 1.0, optimizer: str = "sign", sign: bool = True,
        init: str | torch.Tensor = "mean", region: str = "patch",
        target_class: str | int | torch.Tensor = "random", keep_best: bool = True, log_every: int = 10,
        seed: int = 0, progress: bool = False, preset: str | None = None, loss: str = "ce", kappa: float = 5.0,
    ) -> None:
        if map_mode not in MAP_MODES:
            raise XaisecError(f"unknown map_mode {map_mode!r}; choose from {', '.join(MAP_MODES)}")
        if region not in REGIONS:
            raise XaisecError(f"unknown region {region!r}; choose from {', '.join(REGIONS)}")
        patch_side(size, 1000)  # validates the size
        if isinstance(position, str):
            patch_box(position, size, (1000, 1000))  # validates the corner name
        if steps < 0:
            raise XaisecError(f"steps must be >= 0, got {steps}")
        if step_size <= 0:
            raise XaisecError(f"step_size must be > 0, got {step_size}")
        if not 0 < final_step <= 1:
            raise XaisecError(f"final_step must be in (0, 1], got {final_step}")
        if optimizer not in ("sign", "adam"):
            raise XaisecError(f"unknown optimizer {optimizer!r}; choose from sign, adam")
        if loss not in LOSSES:
            raise XaisecError(f"unknown patch loss {loss!r}; choose from {', '.join(LOSSES)}")
        if not kappa >= 0:
            raise XaisecError(f"kappa (the margin loss's floor) must be >= 0, got {kappa}")
        if map_mode != "none" and interpreter.name not in CAM_INTERPRETERS:
            resolve_interpreter(model, interpreter, map_mode)  # raises the explanatory error
        if isinstance(target_class, str) and target_class != "random":
            raise XaisecError(f"the patch attack is targeted: target_class must be 'random', an int or a tensor, "
                              f"got {target_class!r}")
        self.model, self.interpreter = model, interpreter
        self.size, self.ratio, self.position = float(size), check_ratio(ratio), position
        self.map_mode, self.map_weight, self.ce_weight = map_mode, float(map_weight), float(ce_weight)
        self.ce_gate = (map_mode != "none") if ce_gate is None else bool(ce_gate)
        self.steps, self.step_size, self.sign, self.init, self.region = int(steps), float(step_size), sign, init, region
        self.final_step, self.optimizer = float(final_step), optimizer
        self.loss, self.kappa = loss, float(kappa)
        self.target_class, self.keep_best, self.log_every = target_class, keep_best, max(1, log_every)
        self.seed, self.progress, self.preset = seed, progress, preset

    def config(self, box: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
        return {
            "attack": "patch", "framework": "patch", "interpreter": self.interpreter.name, "preset": self.preset,
            "size": self.size, "ratio": self.ratio,
            "position": self.position if isinstance(self.position, str) else list(self.position),
            "map_mode": self.map_mode, "map_weight": self.map_weight, "ce_weight": self.ce_weight,
            "ce_gate": self.ce_gate, "steps": self.steps, "step_size": self.step_size, "final_step": self.final_step,
            "optimizer": self.optimizer, "sign": self.sign, "loss": self.loss, "kappa": self.kappa,
            "init": self.init if isinstance(self.init, str) else "tensor", "region": self.region,
            "target_class": self.target_class if isinstance(self.target_class, (str, int)) else "tensor",
            "keep_best": self.keep_best, "seed": self.seed, "patch_box": None if box is None else list(box),
        }

    def map_score(self, raw: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
        """Per-image map loss to minimise (N,): +region for hide, -region for attract."""
        term = region_term(raw, coverage, literal=self.region == "paper_literal")
        return term if self.map_mode == "hide" else -term

    def __call__(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> AttackResult:
        """Attack x (N, C, H, W) in [0, 1] with true labels y (default: the model's predictions)."""
        t0 = time.perf_counter()
        check_images(x)
        device = next(self.model.parameters()).device
        x = x.detach().to(device)
        n, c, h, w = x.shape
        top, left, ph, pw = patch_box(self.position, self.size, (h, w))
        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            logits0 = self.model(x)
        num_classes = self.interpreter.num_classes or logits0.shape[1]
        y = logits0.argmax(1) if y is None else check_targets(y, n, num_classes=num_classes, device=device)
        target = resolve_target_class(self.target_class, y, num_classes, generator)
        assert target is not None
        tops = torch.full((n,), top, dtype=torch.long, device=device)
        lefts = torch.full((n,), left, dtype=torch.long, device=device)
        mask = box_mask(tops, lefts, ph, pw, (h, w))
        region_mask = mask if self.region == "patch" else box_mask(tops * 0, lefts * 0, ph, pw, (h, w))
        content = initial_content(self.init, n, c, ph, pw, self.model, generator, device)
        m1, m2 = torch.zeros_like(content), torch.zeros_like(content)  # Adam moments
        use_map = self.map_mode != "none"
        coverage: torch.Tensor | None = None
        best_x = x.clone()
        best_score = torch.full((n,), float("inf"), device=device)
        history: dict[str, list[float]] = {"step": [], "pred_loss": [], "map_loss": [], "success": []}
        bar = tqdm(total=self.steps, desc=f"patch-{self.map_mode} ({self.interpreter.name})",
                   disable=not self.progress, leave=False)
        for step in range(self.steps + 1):
            last = step == self.steps
            content.requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                xa = paste(x, content, tops, lefts, self.ratio)
                m_loss = None
                logits = None
                if use_map:
                    raw, logits = raw_cam(self.interpreter, xa, target, create_graph=not last)
                    if coverage is None:
                        coverage = cell_coverage(region_mask, tuple(raw.shape[-2:]))
                    m_loss = self.map_score(raw, coverage)
                if logits is None:
                    logits = self.model(xa)
                ce = class_loss(logits.float(), target, self.loss, self.kappa)
                pred = logits.detach().argmax(1)
                ok = pred == target
                gate = (~ok).float() if self.ce_gate else torch.ones_like(ce)
                loss = self.ce_weight * gate * ce if use_map else ce
                if m_loss is not None:
                    loss = loss + self.map_weight * m_loss
            if self.keep_best:
                with torch.no_grad():
                    if m_loss is not None:
                        score = m_loss.detach()
                    else:
                        score = -logits.detach().float().softmax(1).gather(1, target.view(-1, 1)).squeeze(1)
                    better = ok & (score < best_score)
                    best_score = torch.where(better, score, best_score)
                    best_x = torch.where(better.view(-1, 1, 1, 1), xa.detach(), best_x)
            if step % self.log_every == 0 or last:
                history["step"].append(float(step))
                history["pred_loss"].append(float(ce.detach().mean()))
                history["map_loss"].append(float(m_loss.detach().mean()) if m_loss is not None else float("nan"))
                history["success"].append(float(ok.float().mean()))
            if last:
                break
            (grad,) = torch.autograd.grad(loss.sum(), content)
            lr = self.step_size * (1.0 + (self.final_step - 1.0) * step / max(self.steps - 1, 1))
            with torch.no_grad():
                if self.optimizer == "adam":
                    m1.mul_(0.9).add_(grad, alpha=0.1)
                    m2.mul_(0.999).addcmul_(grad, grad, value=0.001)
                    move = (m1 / (1 - 0.9 ** (step + 1))) / ((m2 / (1 - 0.999 ** (step + 1))).sqrt() + 1e-8)
                else:
                    move = grad.sign() if self.sign else grad
                content = (content.detach() - lr * move).clamp_(0, 1)
            bar.update(1)
        bar.close()
        last_x = xa.detach()
        if self.keep_best:
            found = torch.isfinite(best_score).view(-1, 1, 1, 1)
            x_adv = torch.where(found, best_x, last_x)
        else:
            x_adv = last_x
        seconds = time.perf_counter() - t0
        return finish_patch_result(self.model, self.interpreter, x, x_adv, y, target, mask, seconds, self.steps,
                                   self.config((top, left, ph, pw)), history)


def class_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "ce", kappa: float = 5.0) -> torch.Tensor:
    """Per-image loss (N,) that pulls logits (N, K) toward ``target`` (N,): cross-entropy (``"ce"``) or the margin
    ``max(max_{j != t} z_j - z_t, -kappa)`` (``"margin"``; negative once the target wins)."""
    if kind == "ce":
        return F.cross_entropy(logits, target, reduction="none")
    z_t = logits.gather(1, target.view(-1, 1)).squeeze(1)
    other = logits.masked_fill(F.one_hot(target, logits.shape[1]).bool(), float("-inf")).amax(1)
    return (other - z_t).clamp_min(-kappa)


def finish_patch_result(model: nn.Module, interpreter: Interpreter, x: torch.Tensor, x_adv: torch.Tensor,
                        y: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, seconds: float, iterations: int,
                        config: dict[str, Any], history: dict[str, list[float]]) -> AttackResult:
    """The AttackResult of a patch attack: the shared metrics (:func:`xaisec.attacks.evaluate.measure`, with
    the patch mask as ``maps_target``) plus the patch metrics of :func:`xaisec.metrics.patch.patch_metrics`."""
    from xaisec.metrics.patch import patch_metrics

    metrics, out = measure(model, interpreter, x, x_adv, y, target, mask, seconds)
    with torch.no_grad():
        adv_raw, _ = raw_cam(interpreter, x_adv, target)
        clean_raw, _ = raw_cam(interpreter, x, y)
    extra = patch_metrics(adv_raw, clean_raw, mask)
    metrics.update({k: v.detach().float().cpu() for k, v in extra.items()})
    return AttackResult(
        x=x.detach().cpu(), x_adv=x_adv.detach().cpu(), y=y.cpu(), pred_clean=out["pred_clean"].cpu(),
        pred_adv=out["pred_adv"].cpu(), target=target.cpu(), success=out["success"].cpu(),
        maps_benign=out["maps_benign"].cpu(), maps_adv=out["maps_adv"].cpu(), maps_target=mask.detach().cpu(),
        metrics=metrics, iterations=iterations, seconds=seconds, config=config, history=history,
    )


def build(model: nn.Module, interpreter: str | Interpreter, *, seed: int = 0, progress: bool = False,
          preset: str | None = None, interpreter_options: dict[str, Any] | None = None, layer: str | None = None,
          steps_scale: float = 1.0, target_map: str | None = None, **options: Any) -> PatchAttack:
    """``xaisec.attacks.get("patch", model, "gradcam", size=, ratio=, position=, map_mode=, preset=, ...)``.

    ``preset``: one of :data:`PRESETS` (explicit options override it). ``layer``: the CAM layer (default the
    model's ``cam_layer``), passed to the interpreter when it is given by name. ``steps_scale`` multiplies the
    step count (as for the joint attacks); ``target_map`` must be None or ``"benign"`` (the patch's map goal is
    ``map_mode``).
    """
    if target_map not in (None, "benign"):
        raise XaisecError(f"the patch attack has no target map ({target_map!r}); steer the map with map_mode="
                          "'hide' | 'attract' | 'none' (--patch-mode)")
    if steps_scale <= 0:
        raise XaisecError(f"steps_scale must be > 0, got {steps_scale}")
    opts = merge_preset(preset, options)
    if steps_scale != 1.0:
        opts["steps"] = max(1, round(opts.get("steps", 300) * steps_scale))
    map_mode = opts.get("map_mode", "attract")
    iopts = dict(interpreter_options or {})
    if layer is not None:
        iopts["layer"] = layer
    interp = resolve_interpreter(model, interpreter, map_mode, iopts)
    return PatchAttack(model, interp, seed=seed, progress=progress, preset=preset, **opts)
