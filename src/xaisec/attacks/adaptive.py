"""Adaptive ADV^2: the joint attack with an extra loss term that models a defense (an attack option).

``get("adv2", model, "gradcam", adaptive="feature_squeezing", detector=det)`` (or ``squeezers=[...]``)
builds :class:`AdaptiveAttack` around :class:`~xaisec.attacks.joint.JointAttack` through its ``extra_loss``
hook (ADV^2 paper, section 4, Algorithm 2):

* smoothing squeezers (median, non-local means): + ``weight`` * CE(f(x), f(psi(x))), the cross-entropy of
  the squeezed prediction against the (detached) prediction on x, backpropagated through psi (the median is
  differentiable at the selected pixel; non-local means goes through BPDA by default, ``nlm_bpda``).
* bit depth, two stages: (1) PGD in the squeezed space from psi(x_o) with step 1/2^bits, every iterate
  re-quantised and clipped to the grid cells reachable from the eps-ball, [psi(x_o - eps), psi(x_o + eps)],
  giving x_+ with f(x_+) = target; (2) ADV^2 in the eps-ball with + ``weight`` * ||f(x) - f(x_+)||_1
  (probability vectors) and a pull ``bits_pull`` * mean|x - clip(x_+)| / eps toward x_+ (ours: "pulled
  toward the squeezed solution"). ``bits_mode="both"`` adds the smoothing-style CE term through BPDA for
  the bit squeezers too (ours), ``"bpda"`` uses only that.

``adaptive="detector"`` adds ``weight`` * the ensemble detector's differentiable adversarial logit (see
:meth:`xaisec.defenses.ensemble.EnsembleDetector.adversarial_logit`).

Selection: the joint attack keeps, per image, its successful iterate with the lowest map loss; this wrapper
also records the latest iterate that is successful *and* passes the defense (score below the detector's
calibrated threshold; without thresholds: every squeezed prediction equals the target) and uses it for the
images whose kept iterate would be flagged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.attacks.evaluate import measure
from xaisec.attacks.result import AttackResult
from xaisec.attacks.targets import resolve_target_class
from xaisec.interpreters.base import Interpreter
from xaisec.utils.checks import XaisecError, check_images, check_targets

log = logging.getLogger(__name__)

ADAPTIVE = ("feature_squeezing", "detector")
BITS_MODES = ("two_stage", "both", "bpda")


class _Tracker:
    """Per image, the latest iterate that reaches the target and passes the defense."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x.detach().clone()
        self.found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    @torch.no_grad()
    def update(self, xa: torch.Tensor, ok: torch.Tensor) -> None:
        self.x.copy_(torch.where(ok.view(-1, 1, 1, 1), xa.detach().clamp(0, 1), self.x))
        self.found |= ok


class AdaptiveAttack:
    """A :class:`JointAttack` (``name``: adv2, advedge, advedge+, pgd) plus a defense-aware loss term.

    Args:
        adaptive: ``"feature_squeezing"`` or ``"detector"``.
        detector: a :class:`~xaisec.defenses.SqueezeDetector` (its squeezers and thresholds are used) or, for
            ``"detector"``, an :class:`~xaisec.defenses.EnsembleDetector`.
        squeezers: squeezer specs when no squeeze detector is given (default Feature Squeezing's CIFAR set).
        weight: weight of the defense term (1).
        bits_mode, bits_steps, bits_pull: the bit-depth strategy (see the module docstring); stage-1 steps
            (default: the joint attack's warm-start steps, at least 20).
        nlm_bpda: differentiate non-local means straight-through (default True; False: the exact torch graph).
        **options: the joint attack's options (eps, steps_scale, target_class, ...).
    """

    def __init__(self, name: str, model: nn.Module, interpreter: Interpreter, *, adaptive: str,
                 framework: str = "pgd", detector: Any = None, squeezers: list[str] | None = None,
                 weight: float = 1.0, bits_mode: str = "two_stage", bits_steps: int | None = None,
                 bits_pull: float = 1.0, nlm_bpda: bool = True, seed: int = 0, progress: bool = False,
                 target_class: Any = "random", **options: Any) -> None:
        from xaisec.attacks import ATTACKS
        from xaisec.attacks.joint import JointAttack
        from xaisec.defenses.squeeze import FS_CIFAR, SqueezeDetector
        from xaisec.defenses.transforms import BitDepth, NonLocalMeans, parse

        if adaptive not in ADAPTIVE:
            raise XaisecError(f"unknown adaptive mode {adaptive!r}; choose from {', '.join(ADAPTIVE)}")
        if name not in ATTACKS:
            raise XaisecError(f"adaptive attacks wrap the joint attacks {', '.join(ATTACKS)}; got {name!r}")
        if bits_mode not in BITS_MODES:
            raise XaisecError(f"unknown bits_mode {bits_mode!r}; choose from {', '.join(BITS_MODES)}")
        if not weight > 0:
            raise XaisecError(f"the adaptive weight must be > 0, got {weight}")
        self.model, self.interpreter, self.name, self.adaptive = model, interpreter, name, adaptive
        self.weight, self.bits_mode, self.bits_pull, self.seed = float(weight), bits_mode, float(bits_pull), seed
        self.target_class = target_class
        self.detector = detector
        self.smoothing: list[nn.Module] = []
        self.bits: list[BitDepth] = []
        self.squeezers: list[nn.Module] = []
        if adaptive == "feature_squeezing":
            if detector is not None and not isinstance(detector, SqueezeDetector):
                raise XaisecError("adaptive='feature_squeezing' takes a SqueezeDetector as detector=")
            specs = detector.names if detector is not None else list(squeezers or FS_CIFAR)
            self.squeezers = [parse(s) for s in specs]
            for spec in specs:
                sq = parse(spec)  # a fresh module per role, so BPDA can be set without touching the detector's
                if isinstance(sq, BitDepth):
                    self.bits.append(sq)
                else:
                    if isinstance(sq, NonLocalMeans):
                        sq.bpda = nlm_bpda
                    self.smoothing.append(sq)
            if bits_mode != "two_stage":
                self.smoothing += [BitDepth(b.bits, bpda=True) for b in self.bits]
        elif detector is None or not hasattr(detector, "adversarial_logit"):
            raise XaisecError("adaptive='detector' needs detector= an EnsembleDetector (xaisec.defenses)")
        self.joint = JointAttack(model, interpreter, name=name, framework=framework, seed=seed, progress=progress,
                                 target_class=target_class, extra_loss=self._extra, **options)
        self.eps = self.joint.eps
        self.bits_steps = bits_steps if bits_steps is not None else max(20, self.joint.profile.warm_steps)
        self._state: dict[str, Any] = {}

    def config(self) -> dict[str, Any]:
        cfg = self.joint.config()
        cfg.update({"adaptive": self.adaptive, "adaptive_weight": self.weight,
                    "squeezers": [s.spec for s in self.squeezers], "bits_mode": self.bits_mode,
                    "bits_steps": self.bits_steps, "bits_pull": self.bits_pull})
        return cfg

    # -- the defense model --------------------------------------------------------------------------------
    @torch.no_grad()
    def passes(self, xa: torch.Tensor, logits: torch.Tensor, target: torch.Tensor,
               squeezed: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """(N,) bool: x_adv reaches the target and the defense does not flag it. ``squeezed``: logits of
        f(psi(x_adv)) already computed, by squeezer spec."""
        ok = logits.argmax(1) == target
        if self.adaptive == "detector":
            return ok & (self.detector.adversarial_logit(xa) <= 0)
        det = self.detector
        probs = logits.float().softmax(1)
        squeezed = squeezed or {}
        for sq in self.squeezers:
            sq_logits = squeezed[sq.spec].detach() if sq.spec in squeezed else self.model(sq(xa))
            if det is not None and det.thresholds:
                ok &= (probs - sq_logits.float().softmax(1)).abs().sum(1) <= det.thresholds[sq.spec]
            else:
                ok &= sq_logits.argmax(1) == target
        return ok  # the joint score is the max of the parts, each checked against its own threshold

    def _extra(self, xa: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        st = self._state
        if self.adaptive == "detector":
            st["tracker"].update(xa, self.passes(xa, logits, st["target"]))
            return self.weight * F.softplus(self.detector.adversarial_logit(xa, create_graph=True))
        probs = logits.float().softmax(1)
        loss = torch.zeros(xa.shape[0], device=xa.device)
        squeezed = {}
        for sq in self.smoothing:
            sq_logits = self.model(sq(xa))
            squeezed[sq.spec] = sq_logits
            loss = loss - self.weight * (probs.detach() * sq_logits.float().log_softmax(1)).sum(1)
        st["tracker"].update(xa, self.passes(xa, logits, st["target"], squeezed))
        if st.get("p_plus") is not None:
            loss = loss + self.weight * (probs - st["p_plus"]).abs().sum(1)
            if self.bits_pull > 0:
                pull = (xa - st["x_plus"]).abs().flatten(1).mean(1) / max(self.eps, 1e-12)
                loss = loss + self.bits_pull * pull
        return loss

    def _squeezed_search(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Stage 1 for bit depth: PGD on the quantisation grid of the lowest bit depth, within the grid cells
        reachable from the eps-ball. Returns x_+ (N, C, H, W) (frozen at its first successful iterate)."""
        sq = min(self.bits, key=lambda b: b.bits)
        step = 1.0 / 2**sq.bits
        with torch.no_grad():
            lo = sq.squeeze((x - self.eps).clamp(0, 1))
            hi = sq.squeeze((x + self.eps).clamp(0, 1))
            z = sq.squeeze(x)
            done = self.model(z).argmax(1) == target
        for _ in range(self.bits_steps):
            if bool(done.all()):
                break
            z = z.detach().requires_grad_(True)
            logits = self.model(z)
            (g,) = torch.autograd.grad(F.cross_entropy(logits, target, reduction="sum"), z)
            with torch.no_grad():
                nz = torch.minimum(torch.maximum(sq.squeeze(z - step * g.sign()), lo), hi)
                z = torch.where(done.view(-1, 1, 1, 1), z, nz)
                done |= self.model(z).argmax(1) == target
        log.info("bit-depth stage 1 (%d bits): %d/%d reach the target in the squeezed space", sq.bits,
                 int(done.sum()), x.shape[0])
        return z.detach()

    # -- the attack ---------------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> AttackResult:
        t0 = time.perf_counter()
        check_images(x)
        device = next(self.model.parameters()).device
        x = x.to(device)
        with torch.no_grad():
            logits = self.model(x)
        pred_clean = logits.argmax(1)
        y = pred_clean if y is None else check_targets(y, x.shape[0], device=device)
        # the same targets the joint attack would draw with this seed
        target = resolve_target_class(self.target_class, y, int(logits.shape[1]),
                                      torch.Generator().manual_seed(self.seed))
        if target is None:
            raise XaisecError("adaptive attacks are targeted: pass target_class='random' or a class")
        self._state = {"target": target, "tracker": _Tracker(x), "p_plus": None}
        if self.bits and self.bits_mode != "bpda":
            x_plus = self._squeezed_search(x, target)
            with torch.no_grad():
                self._state["p_plus"] = self.model(x_plus).softmax(1)
            self._state["x_plus"] = torch.minimum(torch.maximum(x_plus, x - self.eps), x + self.eps)
        self.joint.target_class = target
        try:
            res = self.joint(x, y)
        finally:
            self.joint.target_class = self.target_class
        tracker = self._state.pop("tracker")
        x_adv = res.x_adv.to(device)
        with torch.no_grad():
            keep = self.passes(x_adv, self.model(x_adv), target)
        swap = ~keep & tracker.found
        log.info("adaptive %s: %d/%d kept iterates pass the defense, %d replaced by a passing iterate",
                 self.adaptive, int(keep.sum()), x.shape[0], int(swap.sum()))
        x_adv = torch.where(swap.view(-1, 1, 1, 1), tracker.x, x_adv)
        self._state = {}
        seconds = time.perf_counter() - t0
        maps_target = res.maps_target.to(device)
        metrics, out = measure(self.model, self.interpreter, x, x_adv, y, target, maps_target, seconds)
        return AttackResult(
            x=x.detach().cpu(), x_adv=x_adv.detach().cpu(), y=y.cpu(), pred_clean=out["pred_clean"].cpu(),
            pred_adv=out["pred_adv"].cpu(), target=target.cpu(), success=out["success"].cpu(),
            maps_benign=out["maps_benign"].cpu(), maps_adv=out["maps_adv"].cpu(), maps_target=maps_target.cpu(),
            metrics=metrics, iterations=res.iterations + (self.bits_steps if self._uses_stage1 else 0),
            seconds=seconds, config=self.config(), history=res.history,
        )

    @property
    def _uses_stage1(self) -> bool:
        return bool(self.bits) and self.bits_mode != "bpda"


def adaptive_attack(name: str, model: nn.Module, interpreter: Interpreter, **options: Any) -> AdaptiveAttack:
    """Builder used by :func:`xaisec.attacks.get` when ``adaptive=...`` is given."""
    try:
        return AdaptiveAttack(name, model, interpreter, **options)
    except TypeError as exc:
        raise XaisecError(f"bad option for adaptive attack {name!r}: {exc}") from exc
