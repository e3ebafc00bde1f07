"""The white-box explanation manipulation of Dombrowski et al. (NeurIPS 2019), the baseline AttaXAI borrows its
loss from: Adam on the image with the exact gradient of

    L = alpha * mean_hw (m(x) - m_t)^2 + beta * mean_k (p(x) - p0)^2

(sum-1 maps of |attribution| summed over channels, as AttaXAI). The map's second-order gradient through a ReLU
network is zero almost everywhere, so the map pass runs with every ReLU replaced by softplus(beta_i z), beta_i
grown geometrically from 10 to 100 over the iterations; the output term and every reported number use the real
(ReLU) model. It shows what a black-box attacker gives up.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from xaisec.attacks.result import AttackResult
from xaisec.attacks.targets import other_class_partner
from xaisec.blackbox.attaxai import _check_int, _check_pos, default_alpha, manipulation_result, model_scale
from xaisec.blackbox.oracle import Oracle, abs_sum_maps
from xaisec.interpreters import Interpreter
from xaisec.interpreters.surrogate import replace_relu
from xaisec.utils.checks import XaisecError, check_images

log = logging.getLogger(__name__)


@contextmanager
def softplus_relu(model: nn.Module | None, beta: float) -> Iterator[nn.Module | None]:
    """Context in which ``model``'s ReLUs (modules and functional calls) compute softplus(beta z) / beta
    (forward AND backward: Dombrowski's smoothing, unlike the exact-forward soft ReLU of
    :mod:`xaisec.interpreters.surrogate`), swapped in the same way (:func:`replace_relu`); only while autograd
    records. Restored on exit."""
    if not beta > 0:
        raise XaisecError(f"softplus beta must be positive, got {beta}")
    with replace_relu(model, lambda z: F.softplus(z, beta=beta)):
        yield model


def beta_schedule(i: int, iterations: int, beta0: float = 10.0, beta1: float = 100.0) -> float:
    """beta_i = beta0 * (beta1 / beta0) ** (i / iterations): 10 -> 100 geometrically (10 * 10^(i/1500))."""
    return beta0 * (beta1 / beta0) ** (i / max(iterations, 1))


class Dombrowski:
    """White-box map manipulation (see module docstring).

    Args:
        model, interpreter: the system; the interpreter must be differentiable (grad, grad_x_input,
            integrated_gradients, smoothgrad: guided backprop, LRP and DeepLIFT have no second-order mode here).
        iterations: Adam steps (1,500); lr: Adam learning rate on the image in normalised units (2e-4).
        beta0, beta1: softplus beta at the first and last step (10 -> 100); softplus=False keeps ReLU.
        alpha, beta: fitness weights (as AttaXAI: 1e7 / 1e6 at 32 px, alpha 1e11 from 128 px).
        target_map, target_images: as :class:`~xaisec.blackbox.attaxai.AttaXAI`.
        eps: optional L-inf bound in pixels; eval_every: the real-model fitness is measured every this many
            steps (and at the end) and the best iterate whose label is kept is returned.
    """

    name = "dombrowski"

    def __init__(self, model: nn.Module, interpreter: str | Interpreter, *, iterations: int = 1500,
                 lr: float = 2e-4, beta0: float = 10.0, beta1: float = 100.0, softplus: bool = True,
                 alpha: float | None = None, beta: float = 1e6, target_map: str | torch.Tensor = "class",
                 target_images: torch.Tensor | None = None, eps: float | None = None, eval_every: int = 50,
                 interpreter_options: dict | None = None, seed: int = 0, progress: bool = False) -> None:
        self.oracle = Oracle(model, interpreter, budget=None, interpreter_options=interpreter_options)
        self.interpreter = self.oracle.interpreter
        if not self.interpreter.differentiable:
            raise XaisecError(f"the Dombrowski attack needs a differentiable interpreter (grad, grad_x_input, "
                              f"integrated_gradients, smoothgrad), got {self.interpreter.name!r}")
        self.model = model
        self.iterations = _check_int(iterations, "iterations", 1)
        self.eval_every = _check_int(eval_every, "eval_every", 1)
        self.lr = _check_pos(lr, "lr")
        self.beta0, self.beta1 = _check_pos(beta0, "beta0"), _check_pos(beta1, "beta1")
        self.softplus = bool(softplus)
        self.alpha = None if alpha is None else _check_pos(alpha, "alpha", allow_zero=True)
        self.beta = _check_pos(beta, "beta", allow_zero=True)
        self.eps = None if eps is None else _check_pos(eps, "eps")
        if isinstance(target_map, str) and target_map != "class":
            raise XaisecError(f"target_map must be 'class' or a tensor (N, H, W) of maps, got {target_map!r}")
        self.target_map, self.target_images = target_map, target_images
        self.seed, self.progress = seed, progress

    def _targets(self, x: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.target_images is not None:
            xt = check_images(self.target_images, name="target_images").detach().to(x.device)
            if xt.shape != x.shape:
                raise XaisecError(f"target_images must have the images' shape {tuple(x.shape)}, got {tuple(xt.shape)}")
            return self.oracle.answer(xt)[1]
        if isinstance(self.target_map, torch.Tensor):
            m = self.target_map.detach().to(x.device, torch.float32)
            if m.shape != (n, h, w) or not torch.isfinite(m).all() or (m < 0).any():
                raise XaisecError(f"target_map must be a finite non-negative tensor ({n}, {h}, {w})")
            return m / m.flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1)
        partner = other_class_partner(pred, torch.Generator().manual_seed(self.seed))
        return self.oracle.answer(x[partner])[1]

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> AttackResult:
        check_images(x)
        t0 = time.time()
        device = self.oracle.device
        x = x.detach().to(device)
        n, c, h, w = x.shape
        alpha = default_alpha(h, w) if self.alpha is None else self.alpha
        probs0, maps0 = self.oracle.answer(x)
        pred0 = probs0.argmax(1)
        y = pred0.clone() if y is None else y.to(device)
        mt = self._targets(x, pred0)
        s = model_scale(self.model, c, device)
        lo, hi = torch.zeros_like(x), torch.ones_like(x)
        if self.eps is not None:
            lo, hi = (x - self.eps).clamp_min(0), (x + self.eps).clamp_max(1)
        u = torch.zeros_like(x, requires_grad=True)
        opt = torch.optim.Adam([u], lr=self.lr)
        best_l = torch.full((n,), math.inf, device=device)
        best_x = x.clone()
        history: dict[str, list[float]] = {"step": [], "fitness": [], "map_mse": [], "output_mse": []}
        interp = self.interpreter
        bar = tqdm(total=self.iterations, desc=f"dombrowski ({interp.name})", disable=not self.progress, leave=False)

        def evaluate(xa: torch.Tensor, step: int) -> None:
            nonlocal best_l, best_x
            p, m = self.oracle.answer(xa.detach(), pred0)
            mm = (m - mt).pow(2).flatten(1).mean(1)
            om = (p - probs0).pow(2).mean(1)
            loss = alpha * mm + self.beta * om
            better = (loss < best_l) & (p.argmax(1) == pred0)
            best_l = torch.where(better, loss, best_l)
            best_x = torch.where(better.view(-1, 1, 1, 1), xa.detach(), best_x)
            history["step"].append(float(step))
            history["fitness"].append(float(loss.mean()))
            history["map_mse"].append(float(mm.mean()))
            history["output_mse"].append(float(om.mean()))

        for i in range(self.iterations):
            if i % self.eval_every == 0:
                evaluate(torch.maximum(torch.minimum(x + s * u, hi), lo), i)
            xa = torch.maximum(torch.minimum(x + s * u, hi), lo)
            with torch.enable_grad():
                if self.softplus:
                    with softplus_relu(self.model, beta_schedule(i, self.iterations, self.beta0, self.beta1)):
                        a = interp._attributions(xa, pred0, create_graph=True)
                else:
                    a = interp._attributions(xa, pred0, create_graph=True)
                m = abs_sum_maps(a)
                p = self.model(xa).softmax(1)
                loss = (alpha * (m - mt).pow(2).flatten(1).mean(1) + self.beta * (p - probs0).pow(2).mean(1)).sum()
                opt.zero_grad()
                loss.backward()
            opt.step()
            with torch.no_grad():  # keep x0 + s u inside [0, 1] (and the eps ball)
                u.copy_((torch.maximum(torch.minimum(x + s * u, hi), lo) - x) / s)
            bar.update(1)
        bar.close()
        evaluate(torch.maximum(torch.minimum(x + s * u, hi), lo), self.iterations)
        seconds = time.time() - t0
        config = {"attack": "dombrowski", "framework": "adam (white-box)",
                  "interpreter": interp.name, "iterations": self.iterations, "lr": self.lr,
                  "softplus": self.softplus, "beta0": self.beta0, "beta1": self.beta1, "alpha": alpha,
                  "beta": self.beta, "eps": self.eps, "seed": self.seed}
        return manipulation_result(self.oracle, self.model, x, y, best_x, probs0, maps0, mt, pred0,
                                   explain_class="original_pred", checkpoints={}, history=history, seconds=seconds,
                                   config=config, iterations=self.iterations, black_box=False)


def build(model: nn.Module, interpreter: str | Interpreter, *, seed: int = 0, progress: bool = False,
          **options: Any) -> Dombrowski:
    """Builder for :data:`xaisec.attacks.BUILT_ATTACKS` (``get("dombrowski", model, "grad")``)."""
    return Dombrowski(model, interpreter, seed=seed, progress=progress, **options)


__all__ = ["Dombrowski", "beta_schedule", "build", "softplus_relu"]
