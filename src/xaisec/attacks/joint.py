"""The joint attack engine: perturbation model x objective x step modifier x interpreter access.

``pgd``, ``adv2``, ``advedge`` and ``advedge+`` on the ``pgd``, ``cw`` and ``stadv`` frameworks are all
this one loop with different parts: the map term on or off, edge weights off / Sobel / binary, and the
framework that turns the optimised parameter into x_adv. Whole batches at once, on the model's device.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from xaisec.attacks.edges import edge_weights
from xaisec.attacks.evaluate import measure
from xaisec.attacks.frameworks import CW, FRAMEWORKS, PGD, Framework, StAdv
from xaisec.attacks.objectives import map_loss, prediction_loss
from xaisec.attacks.profiles import Profile, profile_for
from xaisec.attacks.result import AttackResult
from xaisec.attacks.targets import (
    TARGET_MAPS,
    keep_not_already_target,
    other_class_partner,
    random_patch_maps,
    resolve_target_class,
)
from xaisec.interpreters.base import Interpreter
from xaisec.interpreters.surrogate import exact_relu_backward
from xaisec.models.wrapper import ensure_classifier
from xaisec.utils.checks import XaisecError, check_budget, check_finite, check_images, check_seed, check_targets

log = logging.getLogger(__name__)

# interpreters whose maps are input gradients: their second derivatives vanish on ReLU networks, so the
# map term is differentiated through the soft-ReLU surrogate (the prediction term uses the real model)
SURROGATE_INTERPRETERS = {"grad", "grad_x_input", "integrated_gradients", "smoothgrad"}

FAR_TARGET_LAM_SCALE = 10.0  # lambda multiplier for target maps other than the benign one


class JointAttack:
    """Fool the classifier and steer its interpreter's map, on a whole batch.

    Args:
        model: the classifier, [0, 1] (N, C, H, W) input.
        interpreter: an :class:`~xaisec.interpreters.Interpreter` of that model (its maps are attacked with
            ``map_term=True`` and always measured).
        framework: ``"pgd"`` (L-inf), ``"cw"`` (L2, tanh space) or ``"stadv"`` (flow field).
        map_term: add lambda * ||g(x_adv, t) - target map||^2 (ADV^2); False is the plain attack.
        edge: None, ``"sobel"`` (AdvEdge) or ``"binary"`` (AdvEdge+): weights every step, in every stage.
        edge_threshold: AdvEdge+ threshold; default from the interpreter's profile (0.1, RTS 0.05).
        edge_budget: AdvEdge's Sobel weights divided by their per-image mean, so its steps keep ADV^2's mean
            size, larger on edges and smaller elsewhere (default: True on ``pgd``; C&W and StAdv scale the
            perturbation itself by the weights, which must stay in [0, 1], so True is an error there).
        eps, alpha, random_start: PGD budget and step (8/255, 1/255).
        cw_lr, cw_l2_weight: C&W Adam step and weight of ||x_adv - x||^2.
        stadv_lr, stadv_tau: StAdv Adam step and flow-smoothness weight.
        cw_max_l2: C&W's hard L2 budget per image ([0, 1] pixel units; None: only penalised). stadv_max_flow:
            StAdv's hard flow budget in pixels per axis (None: only penalised). ``eps`` applies to pgd only and is
            recorded as None on the other frameworks.
        profile: schedule (warm start and joint stages); default: the paper's for this interpreter.
        steps_scale: multiply every stage's steps (e.g. 0.25 for 32x32 images on a CPU).
        warm_steps, stages, lam: override the profile: warm-start steps; a list of (steps, lam_start,
            lam_end); or one constant lambda for all joint stages.
        lam_scale: multiplies every joint stage's lambda; default 1 for the benign target map and
            ``FAR_TARGET_LAM_SCALE`` (10) for patch, class and user maps, which lie far from the benign map
            and need a stronger pull (ResNet-20, Grad-CAM, 100 images: L1 to a patch 0.58x its L1 to the
            benign map with lambda 5 -> 10, 0.41x with 50 -> 100).
        final_step: the step size (PGD alpha, Adam lr) decays linearly over the joint stages from 1x to
            this fraction (profile default; 1 = constant, as the papers).
        pred_loss: ``"ce"`` or ``"cw"`` for the joint stages; pred_weight its weight (C&W framework: 2).
        label_confidence: target label smoothing (profile default: 0.95 for gradient maps, else 1).
        kappa: C&W margin confidence.
        target_class: ``"random"`` (another class, default), an int or (N,) tensor, or ``"untargeted"``.
        target_map: ``"benign"`` (default), ``"patch"`` (random rectangle or circle), ``"class"`` (the map
            of another image of the batch with a different label), or an (N, H, W) tensor in [0, 1].
        keep_best: return, per image, the successful iterate with the lowest map loss of the real interpreter's
            map among the scored iterates. Scored: every joint step when the attack's own map is the real one
            (it is already computed); through the soft-ReLU surrogate (grad family) the real map costs one more
            forward + backward, so only the logged steps (every ``log_every``, as the ADV^2 reference) and the
            last iterate are scored. Success and confidence always come from exact logits.
        log_every: record the mean losses and success rate every this many steps in ``result.history`` (and
            score keep-best candidates then, see keep_best).
        seed: seeds target classes, patches, random starts.
        progress: show a progress bar.
        extra_loss: optional ``extra_loss(x_adv, logits) -> (N,)`` added to the loss at every step (hook for
            adaptive attacks, e.g. :mod:`xaisec.attacks.adaptive`; x_adv keeps its graph to the parameter).
    """

    needs_differentiable_maps = True

    def __init__(
        self,
        model: nn.Module,
        interpreter: Interpreter,
        *,
        name: str = "adv2",
        framework: str = "pgd",
        map_term: bool = True,
        edge: str | None = None,
        edge_threshold: float | None = None,
        edge_budget: bool | None = None,
        eps: float = 8 / 255,
        alpha: float = 1 / 255,
        random_start: bool = False,
        cw_lr: float = 0.01,
        cw_l2_weight: float = 1.0,
        stadv_lr: float = 0.01,
        stadv_tau: float = 0.0005,
        cw_max_l2: float | None = None,
        stadv_max_flow: float | None = None,
        profile: Profile | None = None,
        steps_scale: float = 1.0,
        warm_steps: int | None = None,
        stages: list[tuple[int, float, float]] | None = None,
        lam: float | None = None,
        final_step: float | None = None,
        lam_scale: float | None = None,
        pred_loss: str = "ce",
        pred_weight: float | None = None,
        label_confidence: float | None = None,
        kappa: float = 0.0,
        target_class: str | int | torch.Tensor | None = "random",
        target_map: str | torch.Tensor = "benign",
        keep_best: bool = True,
        log_every: int = 10,
        seed: int = 0,
        progress: bool = False,
        extra_loss: Any = None,
    ) -> None:
        if not isinstance(interpreter, Interpreter):
            raise XaisecError(f"interpreter must be an xaisec Interpreter, got {type(interpreter).__name__}")
        if framework not in FRAMEWORKS:
            raise XaisecError(f"unknown framework {framework!r}; choose from {', '.join(FRAMEWORKS)}")
        if isinstance(target_map, str) and target_map not in TARGET_MAPS:
            raise XaisecError(f"unknown target map {target_map!r}; choose from {TARGET_MAPS} or pass a tensor")
        eps = check_budget(eps, "eps")
        alpha = check_finite(alpha, "alpha", low=0.0, low_open=True)
        steps_scale = check_finite(steps_scale, "steps_scale", low=0.0, low_open=True)
        seed = check_seed(seed)
        ensure_classifier(model, f"attack {name!r}")
        if edge_budget is None:
            edge_budget = framework == "pgd"
        if edge_budget and framework != "pgd":
            raise XaisecError(
                f"edge_budget applies to the pgd framework only; {framework} scales the perturbation itself by "
                "the edge weights, which must stay in [0, 1]"
            )
        if steps_scale <= 0:
            raise XaisecError(f"steps_scale must be > 0, got {steps_scale}")
        if map_term and self.needs_differentiable_maps and not interpreter.differentiable:
            raise XaisecError(
                f"interpreter {interpreter.name!r} has no differentiable mode; attack it with the bilevel "
                "scheme (mask) or a black-box attack"
            )
        self.model, self.interpreter, self.name = model, interpreter, name
        self.framework_name, self.map_term, self.edge = framework, map_term, edge
        prof = (profile or profile_for(interpreter.name)).scaled(steps_scale)
        if warm_steps is not None:
            prof = replace(prof, warm_steps=warm_steps)
        if stages is not None:
            prof = replace(prof, stages=tuple(tuple(s) for s in stages))
        if lam is not None:
            prof = replace(prof, stages=tuple((s, lam, lam) for s, _, _ in prof.stages))
        if lam_scale is None:
            lam_scale = 1.0 if isinstance(target_map, str) and target_map == "benign" else FAR_TARGET_LAM_SCALE
        if lam_scale <= 0:
            raise XaisecError(f"lam_scale must be > 0, got {lam_scale}")
        if lam_scale != 1.0:
            prof = replace(prof, stages=tuple((s, a * lam_scale, b * lam_scale) for s, a, b in prof.stages))
        if final_step is not None:
            prof = replace(prof, final_step=float(final_step))
        if not 0 < prof.final_step <= 1:
            raise XaisecError(f"final_step must be in (0, 1], got {prof.final_step}")
        if prof.warm_steps < 0 or any(s < 0 for s, _, _ in prof.stages):
            raise XaisecError("step counts must be >= 0")
        self.profile = prof
        self.edge_threshold = edge_threshold if edge_threshold is not None else prof.edge_threshold
        self.edge_budget = bool(edge_budget)
        self.eps, self.alpha, self.random_start = eps, alpha, random_start
        self.cw_lr, self.cw_l2_weight, self.stadv_lr, self.stadv_tau = cw_lr, cw_l2_weight, stadv_lr, stadv_tau
        self.cw_max_l2, self.stadv_max_flow = cw_max_l2, stadv_max_flow
        self._framework(torch.Generator())  # validate the framework's options now, not after the first batch
        self.pred_loss = pred_loss
        self.pred_weight = pred_weight if pred_weight is not None else (2.0 if framework == "cw" else 1.0)
        self.label_confidence = label_confidence if label_confidence is not None else prof.label_confidence
        self.kappa = kappa
        self.target_class, self.target_map = target_class, target_map
        self.keep_best, self.seed, self.progress = keep_best, seed, progress
        self.extra_loss = extra_loss
        self.log_every = max(1, log_every)
        self.surrogate = interpreter.name in SURROGATE_INTERPRETERS

    # -- configuration record --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "attack": self.name, "framework": self.framework_name, "interpreter": self.interpreter.name,
            "map_term": self.map_term, "edge": self.edge, "edge_threshold": self.edge_threshold,
            "edge_budget": self.edge_budget, "eps": self.eps if self.framework_name == "pgd" else None,
            "cw_max_l2": self.cw_max_l2 if self.framework_name == "cw" else None,
            "stadv_max_flow": self.stadv_max_flow if self.framework_name == "stadv" else None,
            "alpha": self.alpha if self.framework_name == "pgd" else None, "warm_steps": self.profile.warm_steps,
            "stages": [list(s) for s in self.profile.stages], "final_step": self.profile.final_step,
            "pred_loss": self.pred_loss, "pred_weight": self.pred_weight, "label_confidence": self.label_confidence,
            "target_class": self.target_class if isinstance(self.target_class, (str, int, type(None))) else "tensor",
            "target_map": self.target_map if isinstance(self.target_map, str) else "tensor",
            "keep_best": self.keep_best, "seed": self.seed,
        }

    # -- parts ---------------------------------------------------------------------------------------------
    def _framework(self, generator: torch.Generator) -> Framework:
        if self.framework_name == "pgd":
            return PGD(eps=self.eps, alpha=self.alpha, random_start=self.random_start, generator=generator)
        if self.framework_name == "cw":
            return CW(lr=self.cw_lr, l2_weight=self.cw_l2_weight, max_l2=self.cw_max_l2)
        return StAdv(lr=self.stadv_lr, tau=self.stadv_tau, max_flow=self.stadv_max_flow, generator=generator)

    @contextlib.contextmanager
    def _map_context(self) -> Iterator[None]:
        if self.surrogate:
            from xaisec.interpreters.surrogate import soft_relu

            with soft_relu(self.model):
                yield
        else:
            yield

    def _maps_and_logits(self, xa: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Differentiable maps (N, H, W) for classes ``cls``, logits (N, K) of x_adv with the real model's values,
        and whether those logits come from the surrogate's forward pass (bit-exact values; their gradient is the
        real model's only inside :func:`~xaisec.interpreters.surrogate.exact_relu_backward`)."""
        with self._map_context():
            maps, logits = self.interpreter.explain(xa, cls, create_graph=True)
        if logits is None:
            return maps, self.model(xa), False
        return maps, logits, self.surrogate

    def _target_maps(self, x: torch.Tensor, y_pred: torch.Tensor, maps_benign: torch.Tensor,
                     generator: torch.Generator, keep: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        if isinstance(self.target_map, torch.Tensor):
            t = self.target_map.to(x.device).float()
            if keep is not None and t.dim() == 3 and t.shape[0] == keep.shape[0]:
                t = t[keep.to(t.device)]  # the images already in their target class were dropped
            if t.shape != (n, h, w):
                raise XaisecError(f"target_map must have shape {(n, h, w)}, got {tuple(t.shape)}")
            if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
                raise XaisecError("target_map must hold finite values in [0, 1]")
            return t
        if self.target_map == "benign":
            return maps_benign
        if self.target_map == "patch":
            return random_patch_maps(n, (h, w), generator=generator, device=x.device)
        return maps_benign[other_class_partner(y_pred, generator)]

    # -- the attack ----------------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> AttackResult:
        """Attack the batch x (N, C, H, W) in [0, 1] with true labels y (default: the model's predictions)."""
        t0 = time.perf_counter()
        x, y, target, maps_target, weights, generator = self._setup(x, y)
        fw = self._framework(generator)
        fw.start(x, weights)

        best_x = x.clone()
        best_score = torch.full((x.shape[0],), float("inf"), device=x.device)
        schedule = [(self.profile.warm_steps, 0.0, 0.0, self.profile.warm_loss)]
        schedule += [(s, a, b, self.pred_loss) for s, a, b in self.profile.stages]
        total = sum(s for s, *_ in schedule)
        bar = tqdm(total=total, desc=f"{self.name}-{self.framework_name} ({self.interpreter.name})",
                   disable=not self.progress, leave=False)
        done = 0
        joint_total = max(total - self.profile.warm_steps - 1, 1)
        history: dict[str, list[float]] = {"step": [], "pred_loss": [], "map_loss": [], "success": []}
        for stage_index, (steps, lam0, lam1, loss_kind) in enumerate(schedule):
            if stage_index > 0:
                fw.reset_optimizer()
            for i in range(steps):
                lam = lam0 + (lam1 - lam0) * (i / max(steps - 1, 1))
                if stage_index > 0:  # step-size decay over the joint stages (1 -> final_step)
                    frac = (done - self.profile.warm_steps) / joint_total
                    fw.step_scale = 1.0 + (self.profile.final_step - 1.0) * frac
                use_map = self.map_term and lam > 0
                xa = fw.adversarial()
                if use_map:
                    cls = target
                    if cls is None:  # untargeted: the map of whatever class x_adv currently gets
                        with torch.no_grad():
                            cls = self.model(xa).argmax(1)
                    maps, logits, shared = self._maps_and_logits(xa, cls)
                    m_loss = map_loss(maps, maps_target)
                else:
                    logits, shared = self.model(xa), False
                    m_loss = None
                p_loss = prediction_loss(logits, target, y, kind=loss_kind, confidence=self.label_confidence,
                                         kappa=self.kappa)
                loss = self.pred_weight * p_loss + fw.penalty(xa)
                map_part = None
                if m_loss is not None:
                    map_terms = [lam * m_loss]
                    if self.profile.encoder_weight > 0 and hasattr(self.interpreter, "encoder_logits"):
                        enc = self.interpreter.encoder_logits(xa)
                        map_terms.append(self.profile.encoder_weight * F.cross_entropy(enc, cls, reduction="none"))
                    if shared:
                        map_part = sum(map_terms[1:], map_terms[0])
                    else:
                        for term in map_terms:
                            loss = loss + term
                if self.extra_loss is not None:
                    loss = loss + self.extra_loss(xa, logits)
                if map_part is not None:
                    # one surrogate forward serves both terms: the prediction part backpropagates the exact ReLU
                    # derivative (= the real model's gradient), the map part the soft one
                    with exact_relu_backward():
                        (grad,) = torch.autograd.grad(loss.sum(), fw.param, retain_graph=True)
                    grad = grad + torch.autograd.grad(map_part.sum(), fw.param)[0]
                else:
                    (grad,) = torch.autograd.grad(loss.sum(), fw.param)
                if self.keep_best:
                    if m_loss is not None and self.surrogate:
                        if done % self.log_every == 0:
                            # judge iterates by the real interpreter's map (what is reported), not the surrogate's
                            # (one more forward + backward: only at logged steps)
                            score = map_loss(self.interpreter(xa.detach(), cls), maps_target)
                            self._track_best(xa, logits, target, y, score, best_x, best_score)
                    else:
                        self._track_best(xa, logits, target, y, m_loss, best_x, best_score)
                if done % self.log_every == 0:
                    self._log(history, done, logits, target, y, p_loss, m_loss)
                fw.update(grad)
                done += 1
                bar.update(1)
        bar.close()
        with torch.no_grad():
            last = fw.adversarial().detach().clamp(0, 1)
            if self.keep_best:
                # the last iterate competes too
                logits = self.model(last)
                m_last = None
                if self.map_term:
                    cls = target if target is not None else logits.argmax(1)
                    m_last = map_loss(self.interpreter(last, cls), maps_target)
                self._track_best(last, logits, target, y, m_last, best_x, best_score)
                found = torch.isfinite(best_score).view(-1, 1, 1, 1)
                x_adv = torch.where(found, best_x, last)
            else:
                x_adv = last
        return self._finish(x, x_adv, y, target, maps_target, t0, done, history)

    def _setup(self, x: torch.Tensor, y: torch.Tensor | int | None) -> tuple[
            torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None, torch.Generator]:
        """Validate inputs; draw target classes and maps; compute edge weights. Returns
        (x on the device, y, target classes or None, target maps (N, H, W), edge weights or None, generator)."""
        check_images(x)
        device = next(self.model.parameters()).device
        x = x.to(device)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            pred_clean = self.model(x).argmax(1)
        y = pred_clean if y is None else check_targets(y, x.shape[0], num_classes=self.interpreter.num_classes,
                                                       device=device)
        num_classes = self.interpreter.num_classes or int(self._logits_dim(x))
        target = resolve_target_class(self.target_class, y, num_classes, generator)
        keep = keep_not_already_target(target, y)
        if keep is not None:
            assert target is not None
            x, y, pred_clean, target = x[keep], y[keep], pred_clean[keep], target[keep]
        maps_benign = self.interpreter(x, pred_clean)
        maps_target = self._target_maps(x, pred_clean, maps_benign, generator, keep)
        weights = edge_weights(x, self.edge, self.edge_threshold, budget=self.edge_budget)
        return x, y, target, maps_target, weights, generator

    def _finish(self, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
                maps_target: torch.Tensor, t0: float, done: int, history: dict[str, list[float]]) -> AttackResult:
        seconds = time.perf_counter() - t0
        metrics, out = measure(self.model, self.interpreter, x, x_adv, y, target, maps_target, seconds)
        return AttackResult(
            x=x.detach().cpu(), x_adv=x_adv.detach().cpu(), y=y.cpu(), pred_clean=out["pred_clean"].cpu(),
            pred_adv=out["pred_adv"].cpu(), target=None if target is None else target.cpu(),
            success=out["success"].cpu(), maps_benign=out["maps_benign"].cpu(), maps_adv=out["maps_adv"].cpu(),
            maps_target=maps_target.detach().cpu(), metrics=metrics, iterations=done, seconds=seconds,
            config=self.config(), history=history,
        )

    @torch.no_grad()
    def _log(self, history: dict[str, list[float]], step: int, logits: torch.Tensor, target: torch.Tensor | None,
             y: torch.Tensor, p_loss: torch.Tensor, m_loss: torch.Tensor | None) -> None:
        pred = logits.argmax(1)
        ok = pred == target if target is not None else pred != y
        history["step"].append(float(step))
        history["pred_loss"].append(float(p_loss.mean()))
        history["map_loss"].append(float(m_loss.mean()) if m_loss is not None else float("nan"))
        history["success"].append(float(ok.float().mean()))

    @torch.no_grad()
    def _track_best(self, xa: torch.Tensor, logits: torch.Tensor, target: torch.Tensor | None, y: torch.Tensor,
                    m_loss: torch.Tensor | None, best_x: torch.Tensor, best_score: torch.Tensor) -> None:
        """Keep, per image, the successful iterate with the lowest map loss (or, for the plain attack, the
        highest target probability). With a map term, warm-start iterates (no map loss) are not candidates."""
        if self.map_term and m_loss is None:
            return
        probs = logits.detach().float().softmax(1)
        pred = probs.argmax(1)
        if target is None:
            ok = pred != y
            conf = probs.gather(1, pred.view(-1, 1)).squeeze(1)
        else:
            ok = pred == target
            conf = probs.gather(1, target.view(-1, 1)).squeeze(1)
        ok = ok & (conf >= self.profile.keep_threshold)
        score = m_loss.detach() if (m_loss is not None and self.map_term) else -conf
        better = ok & (score < best_score)
        best_score.copy_(torch.where(better, score, best_score))
        best_x.copy_(torch.where(better.view(-1, 1, 1, 1), xa.detach().clamp(0, 1), best_x))

    @torch.no_grad()
    def _logits_dim(self, x: torch.Tensor) -> int:
        return int(self.model(x[:1]).shape[1])
