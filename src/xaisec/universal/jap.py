"""JAP (Ning et al. 2024, Eq. 17): the image-dependent variant of JUAP, one generator per image.

Each image x_i gets its own generator G_i (its own fixed noise input n_i ~ U(0, 1)); n_hat_i = min(1, eps /
||G_i(n_i)||_p) G_i(n_i) (Eq. 17; ``scaling="exact"``: always on the sphere) and the JUAP objective (Eq. 16,
clamped per image) is minimised with Adam. The N generators of a batch are one grouped-convolution network
(``groups=N``, see :mod:`xaisec.universal.generators`), and the loss is the sum of the per-image losses, so one
forward and one backward serve the whole batch while every generator gets exactly its own gradient (Adam is
element-wise: the same as N separate optimisations). ``keep_best`` returns, per image, the fooling iterate with
the smallest map distance. Built by ``xaisec.attacks.get("jap", model, interpreter, ...)``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from xaisec.attacks.evaluate import measure
from xaisec.attacks.result import AttackResult
from xaisec.interpreters.base import Interpreter
from xaisec.universal.budget import check_budget, project, scale_to_budget
from xaisec.universal.generators import GENERATORS, build_generator
from xaisec.universal.objective import DELTA, LOSSES, JointObjective, resolve_interpreter
from xaisec.universal.train import _Frozen
from xaisec.utils.checks import XaisecError, check_images, check_seed, check_targets

log = logging.getLogger(__name__)

JAP_LAM = 0.03  # measured on ResNet-20 / Grad-CAM, 50 images: FR 100%, IoU 0.65 vs PGD 0.40 (docs/juap.md)


class JAP:
    """Joint image-dependent perturbations from per-image generators. See the module docstring.

    Args:
        model: the classifier, [0, 1] input. interpreter: a name or a differentiable Interpreter.
        eps, norm: the budget (``"linf"`` or ``"l2"``, [0, 1] pixel units); scaling ``"cap"`` (default, Eq. 17) or
            ``"exact"`` (see :func:`xaisec.universal.train`).
        steps, lr, betas: Adam iterations on every generator.
        lam, delta, loss, target_class, surrogate: the objective (see :class:`JointObjective`).
        generator, ngf, blocks: each image's generator (small by default: the batch holds N of them).
        keep_best: per image, the fooling iterate with the lowest map distance (else the last iterate).
        log_every: history resolution; seed: seeds the generators and their noise; progress: a progress bar.
    """

    name = "jap"

    def __init__(self, model: nn.Module, interpreter: str | Interpreter, *, eps: float = 8 / 255, norm: str = "linf",
                 steps: int = 100, lr: float = 1e-3, betas: tuple[float, float] = (0.5, 0.999),
                 lam: float = JAP_LAM, delta: float | None = DELTA, loss: str = "least_likely",
                 target_class: int | None = None, generator: str = "resnet", ngf: int = 8, blocks: int = 2,
                 scaling: str = "cap", surrogate: bool | None = None, keep_best: bool = True, log_every: int = 10,
                 interpreter_options: dict[str, Any] | None = None, seed: int = 0, progress: bool = False) -> None:
        self.eps = check_budget(norm, eps)
        if generator not in GENERATORS:
            raise XaisecError(f"unknown generator {generator!r}; choose from {', '.join(GENERATORS)}")
        if loss not in LOSSES:
            raise XaisecError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
        if not isinstance(steps, int) or steps < 1:
            raise XaisecError(f"steps must be a positive int, got {steps!r}")
        check_seed(seed)
        self.model = model
        # the map is always measured; it is attacked when lam > 0
        self.interpreter = resolve_interpreter(model, interpreter, interpreter_options, differentiable=lam > 0)
        self.objective = JointObjective(model, self.interpreter if lam > 0 else None, loss=loss,
                                        target_class=target_class, lam=lam, delta=delta, per_sample=True,
                                        surrogate=surrogate)
        self.norm, self.steps, self.lr, self.betas, self.scaling = norm, steps, lr, tuple(betas), scaling
        self.generator, self.ngf, self.blocks, self.keep_best = generator, ngf, blocks, keep_best
        self.loss, self.target_class, self.lam, self.delta = loss, target_class, float(lam), delta
        self.log_every, self.seed, self.progress = log_every, seed, progress

    def config(self) -> dict[str, Any]:
        return {"attack": "jap", "interpreter": self.interpreter.name, "eps": self.eps, "norm": self.norm,
                "steps": self.steps, "lr": self.lr, "betas": list(self.betas), "lam": self.lam, "delta": self.delta,
                "loss": self.loss, "target_class": self.target_class, "generator": self.generator, "ngf": self.ngf,
                "blocks": self.blocks, "scaling": self.scaling, "surrogate": self.objective.surrogate,
                "keep_best": self.keep_best, "seed": self.seed}

    def __call__(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> AttackResult:
        """Attack the batch x (N, C, H, W) in [0, 1]; y true labels (None: the clean predictions)."""
        check_images(x)
        device = next(iter(self.model.parameters()), torch.zeros(0)).device
        x = x.detach().to(device)
        n, c, h, w = x.shape
        t0 = time.perf_counter()
        with _Frozen(self.model):
            clean = self.objective.clean(x, None)
            y_t = clean["pred"] if y is None else check_targets(y, n, device=device)
            if self.loss == "untargeted":
                clean["labels"] = y_t
            gen = build_generator(self.generator, c, (h, w), ngf=self.ngf, blocks=self.blocks, groups=n,
                                  seed=self.seed).to(device)
            g = torch.Generator().manual_seed(self.seed)
            noise = torch.rand((1, n * c, h, w), generator=g).to(device)
            opt = torch.optim.Adam(gen.parameters(), lr=self.lr, betas=self.betas)
            best = x.clone()
            best_map = torch.full((n,), float("inf"), device=device)
            found = torch.zeros(n, dtype=torch.bool, device=device)
            history: dict[str, list[float]] = {"step": [], "pred_loss": [], "map_loss": [], "success": []}
            for step in tqdm(range(1, self.steps + 1), disable=not self.progress, desc="jap", leave=False):
                n_hat = scale_to_budget(gen(noise).view(n, c, h, w), self.norm, self.eps, self.scaling)
                x_hat = (x + n_hat).clamp(0, 1)
                total, parts = self.objective(x_hat, clean)
                fooled = parts["pred"] != clean["pred"]
                if self.keep_best:
                    score = parts["map"] if parts["map"] is not None else torch.zeros(n, device=device)
                    better = fooled & (score < best_map)
                    best = torch.where(better.view(-1, 1, 1, 1), x_hat.detach(), best)
                    best_map = torch.where(better, score, best_map)
                    found |= fooled
                if step % self.log_every == 0 or step == self.steps:
                    history["step"].append(step)
                    history["pred_loss"].append(float(parts["cls"].mean()))
                    history["map_loss"].append(float("nan") if parts["map"] is None else float(parts["map"].mean()))
                    history["success"].append(float(fooled.float().mean()))
                opt.zero_grad(set_to_none=True)
                total.sum().backward()
                opt.step()
            with torch.no_grad():
                last = (x + project(scale_to_budget(gen(noise).view(n, c, h, w), self.norm, self.eps,
                                                    self.scaling), self.norm, self.eps)).clamp(0, 1)
                x_adv = torch.where(found.view(-1, 1, 1, 1), best, last) if self.keep_best else last
            # re-project the kept iterates (float rounding of the differentiable scaling)
            x_adv = (x + project(x_adv - x, self.norm, self.eps)).clamp(0, 1)
        seconds = time.perf_counter() - t0
        target = None if self.loss != "targeted" else torch.full((n,), int(self.target_class), device=device)
        maps_benign = self.interpreter(x, clean["pred"])
        metrics, tensors = measure(self.model, self.interpreter, x, x_adv, y_t, target, maps_benign, seconds)
        return AttackResult(
            x=x.cpu(), x_adv=x_adv.detach().cpu(), y=y_t.cpu(), pred_clean=tensors["pred_clean"].cpu(),
            pred_adv=tensors["pred_adv"].cpu(), target=None if target is None else target.cpu(),
            success=tensors["success"].cpu(), maps_benign=tensors["maps_benign"].detach().cpu(),
            maps_adv=tensors["maps_adv"].detach().cpu(), maps_target=maps_benign.detach().cpu(), metrics=metrics,
            iterations=self.steps, seconds=seconds, config=self.config(), history=history,
        )


def build_jap(model: nn.Module, interpreter: str | Interpreter, *, seed: int = 0, progress: bool = False,
              framework: str | None = None, steps_scale: float = 1.0, target_map: str | None = None,
              target_class: str | int | None = None, alpha: float | None = None, **options: Any) -> JAP:
    """``xaisec.attacks.get("jap", ...)`` builder; options are :class:`JAP` keyword arguments.

    The generic attack options of ``xaisec attack`` are mapped: ``steps_scale`` multiplies ``steps`` (100);
    ``target_map`` must be None or ``"benign"`` (JAP keeps the benign map); ``target_class`` ``"random"``,
    ``"untargeted"`` or None keeps the loss (least-likely class by default), an int makes it targeted;
    ``alpha`` (a PGD step) does not apply to the generator's Adam steps and is ignored.
    """
    if framework not in (None, "generator"):
        raise XaisecError(f"jap has its own perturbation model (a per-image generator); got framework={framework!r}")
    if target_map not in (None, "benign"):
        raise XaisecError(f"jap keeps the benign map; target_map={target_map!r} is not supported")
    if isinstance(target_class, int) and not isinstance(target_class, bool):
        options = {"loss": "targeted", "target_class": target_class, **options}
    elif target_class not in (None, "random", "untargeted"):
        raise XaisecError(f"jap: target_class must be 'random', 'untargeted' or an int, got {target_class!r}")
    if not isinstance(steps_scale, (int, float)) or steps_scale <= 0:
        raise XaisecError(f"steps_scale must be > 0, got {steps_scale!r}")
    if steps_scale != 1.0:
        options["steps"] = max(1, round(options.get("steps", 100) * steps_scale))
    return JAP(model, interpreter, seed=seed, progress=progress, **options)


__all__ = ["JAP", "JAP_LAM", "build_jap"]
