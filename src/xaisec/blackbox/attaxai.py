"""AttaXAI (Tamam, Lapid & Sipper, TMLR 2023): black-box manipulation of explanations with natural
evolution strategies (NES) and Latin hypercube sampling.

The attacker only queries the system (:class:`~xaisec.blackbox.oracle.Oracle`: probabilities and maps) and
searches a perturbation u (in normalised-input units, x = clamp(x0 + s * u, 0, 1)) minimising

    L = alpha * mean_hw (m(x) - m_t)^2 + beta * mean_k (p(x) - p0)^2

with m = |attribution| summed over channels, sum-1 per image, m_t the target map and p0 the original
probabilities. Every generation is ONE batched oracle query of all images' populations (P images x lambda
members); the mean V (P, d) moves with Adam on the z-scored NES search gradient, sigma (per image) with its own
clipped search gradient. Defaults follow ../shared/specs/attaxai.md (population 125, member 0 = the mean, 400
generations, sigma0 0.1, Adam lr 0.0125 decayed x0.999 per generation, alpha 1e7 / beta 1e6 at 32 px).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from xaisec.attacks.result import AttackResult
from xaisec.attacks.targets import other_class_partner
from xaisec.blackbox.oracle import Oracle
from xaisec.interpreters import Interpreter
from xaisec.metrics import map_iou, map_l1, map_l2, noise_rate
from xaisec.metrics.maps import minmax_normalize
from xaisec.utils.checks import XaisecError, check_images

log = logging.getLogger(__name__)

SAMPLINGS = ("lhs", "iid")


def lhs_normal(rows: int, n: int, d: int, *, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Latin hypercube standard-normal samples: (rows, n, d); for every row and coordinate the n values fall
    one in each of the n equal-probability strata of N(0, 1) (u = (perm + U) / n, eps = Phi^-1(u)), with an
    independent permutation per (row, coordinate)."""
    perm = torch.rand(rows, n, d, generator=generator).argsort(1)
    u = (perm.to(torch.float32) + torch.rand(rows, n, d, generator=generator)) / n
    return torch.special.ndtri(u.clamp(1e-7, 1 - 1e-7)).to(device)


def sample_noise(rows: int, population: int, d: int, sampling: str, generator: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """(rows, population, d) standard-normal perturbations with member 0 = 0 (the current mean)."""
    if sampling == "lhs":
        e = lhs_normal(rows, population - 1, d, generator=generator, device=device)
    else:
        e = torch.randn(rows, population - 1, d, generator=generator).to(device)
    return torch.cat([torch.zeros(rows, 1, d, device=device), e], 1)


def zscore(r: torch.Tensor) -> torch.Tensor:
    """Rewards (P, lambda) -> (r - mean) / max(std_unbiased, 1e-5) per row."""
    return (r - r.mean(1, keepdim=True)) / r.std(1, keepdim=True).clamp_min(1e-5)


def nes_gradients(rewards: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Search gradients of the expected (z-scored) reward. rewards (P, lambda), noise (P, lambda, d) standard
    normal, sigma (P,) -> (g_mean (P, d), g_sigma (P,)). Member 0 enters the z-score only, not g_sigma."""
    rz = zscore(rewards)
    lam = rewards.shape[1]
    g_mean = torch.einsum("pl,pld->pd", rz, noise) / lam
    g_sigma = (rz[:, 1:] * (noise[:, 1:] ** 2 - 1).mean(2)).mean(1) / sigma
    return g_mean, g_sigma


def default_alpha(height: int, width: int) -> float:
    """The map weight: 1e7 for small (CIFAR-size) images, 1e11 at ImageNet size (>= 128 px)."""
    return 1e11 if min(height, width) >= 128 else 1e7


def fitness(maps: torch.Tensor, probs: torch.Tensor, target_maps: torch.Tensor, probs0: torch.Tensor,
            alpha: float, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """maps (P, L, H, W), probs (P, L, K), target_maps (P, H, W), probs0 (P, K) -> (L, map MSE, output MSE),
    each (P, L); L = alpha * map MSE + beta * output MSE."""
    map_mse = (maps - target_maps.unsqueeze(1)).pow(2).flatten(2).mean(2)
    out_mse = (probs - probs0.unsqueeze(1)).pow(2).mean(2)
    return alpha * map_mse + beta * out_mse, map_mse, out_mse


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise XaisecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_pos(value: Any, name: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise XaisecError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def model_scale(model: nn.Module, channels: int, device: torch.device) -> torch.Tensor:
    """The per-channel std of the model's input normalisation (1, C, 1, 1), or ones without one."""
    norm = getattr(model, "normalize", None)
    std = getattr(norm, "std", None)
    if isinstance(std, torch.Tensor) and std.numel() == channels:
        return std.detach().to(device, torch.float32).view(1, channels, 1, 1)
    return torch.ones(1, channels, 1, 1, device=device)


class AttaXAI:
    """Black-box explanation manipulation by NES (see module docstring).

    Args:
        model, interpreter: the attacked system; the interpreter is a name or an Interpreter with per-channel
            attributions (grad, grad_x_input, guided_backprop, lrp, deeplift), queried only through an Oracle.
        queries: budget per image (population x generations; default 50,000); generations = queries //
            population unless ``generations`` is given.
        population: lambda (default 125, member 0 is the mean); generations: G (default queries // population).
        sigma0, sigma_clip, sigma_floor: initial search std (0.1), clip of its update (0.01), floor (1e-4), in
            normalised-input units (the model's normalisation std, see ``scale``).
        lr, lr_decay: Adam learning rate on the mean (0.0125), multiplied by ``lr_decay`` (0.999) per generation.
        alpha, beta: fitness weights (alpha default 1e7 below 128 px, 1e11 above; beta 1e6).
        target_map: ``"class"`` (the map of another image of the batch with a different label) or a tensor
            (N, H, W) of non-negative maps (renormalised to sum 1).
        target_images: (N, C, H, W) images whose maps (queried once each, as setup queries) are the targets;
            overrides ``target_map`` (the paper's pairs: image x, another image x_t).
        eps: optional L-inf bound in pixels (e.g. 8/255); None (default) = no bound (as the paper).
        scale: per-channel pixel size of one normalised unit (C,) (default: the model's normalisation std).
        max_delta: clip of the mean V in normalised units (1.0, as the reference).
        sampling: ``"lhs"`` (default) or ``"iid"``.
        output: what the oracle returns, ``"probs"`` (default) or ``"logits"`` (the fitness compares them).
        explain_class: ``"original_pred"`` (default: every map explains the clean prediction) or ``"current_pred"``.
        chunk_size: oracle rows per forward/backward pass.
        seed: seed of the sampling generator; progress: a tqdm bar over generations.

    Call ``atk(x, y)`` with x (N, C, H, W) in [0, 1]: all N images' populations share every query batch.
    The returned :class:`AttackResult` holds the best member-0 image (lowest fitness) whose label is kept,
    ``queries`` per image (exactly population x generations) and ``setup_queries`` (x and the target image).
    """

    name = "attaxai"

    def __init__(self, model: nn.Module, interpreter: str | Interpreter, *, queries: int = 50_000,
                 population: int = 125, generations: int | None = None, sigma0: float = 0.1,
                 sigma_clip: float = 0.01, sigma_floor: float = 1e-4, lr: float = 0.0125, lr_decay: float = 0.999,
                 alpha: float | None = None, beta: float = 1e6, target_map: str | torch.Tensor = "class",
                 target_images: torch.Tensor | None = None,
                 eps: float | None = None, scale: Any = None, max_delta: float = 1.0, sampling: str = "lhs",
                 output: str = "probs", explain_class: str = "original_pred", chunk_size: int = 250,
                 history_every: int = 1, interpreter_options: dict | None = None, seed: int = 0,
                 progress: bool = False) -> None:
        self.population = _check_int(population, "population", 2)
        self.queries = _check_int(queries, "queries", 1)
        if generations is None:
            if queries < population:
                raise XaisecError(f"a query budget of {queries} per image is smaller than one generation "
                                  f"(population {population}); raise queries= or lower population=")
            generations = queries // population
        self.generations = _check_int(generations, "generations", 1)
        if self.generations * self.population > self.queries:
            raise XaisecError(f"{generations} generations x population {population} = "
                              f"{generations * population} queries exceed the budget of {queries} per image")
        self.sigma0 = _check_pos(sigma0, "sigma0")
        self.sigma_clip = _check_pos(sigma_clip, "sigma_clip", allow_zero=True)
        self.sigma_floor = _check_pos(sigma_floor, "sigma_floor")
        self.lr = _check_pos(lr, "lr")
        self.lr_decay = _check_pos(lr_decay, "lr_decay")
        self.alpha = None if alpha is None else _check_pos(alpha, "alpha", allow_zero=True)
        self.beta = _check_pos(beta, "beta", allow_zero=True)
        self.eps = None if eps is None else _check_pos(eps, "eps")
        self.max_delta = _check_pos(max_delta, "max_delta")
        if sampling not in SAMPLINGS:
            raise XaisecError(f"unknown sampling {sampling!r}; choose from {SAMPLINGS}")
        if explain_class not in ("original_pred", "current_pred"):
            raise XaisecError(f"explain_class must be 'original_pred' or 'current_pred', got {explain_class!r}")
        if isinstance(target_map, str) and target_map != "class":
            raise XaisecError(f"target_map must be 'class' or a tensor (N, H, W) of maps, got {target_map!r}")
        if target_images is not None:
            check_images(target_images, name="target_images")
        self.sampling, self.explain_class, self.target_map = sampling, explain_class, target_map
        self.target_images = target_images
        self.history_every = _check_int(history_every, "history_every", 1)
        self.oracle = Oracle(model, interpreter, output=output, budget=None, chunk_size=chunk_size,
                             interpreter_options=interpreter_options)
        self.model = model
        self.interpreter = self.oracle.interpreter
        self.output, self.chunk_size = output, chunk_size
        self.scale = scale
        self.seed, self.progress = seed, progress

    def _target_maps(self, x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor,
                     gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        n, _, h, w = x.shape
        if self.target_images is not None:
            xt = self.target_images.detach().to(x.device)
            if xt.shape != x.shape:
                raise XaisecError(f"target_images must have the images' shape {tuple(x.shape)}, got {tuple(xt.shape)}")
            _, mt = self.oracle(xt, None, index=torch.arange(n), setup=True)
            return mt, None
        if isinstance(self.target_map, torch.Tensor):
            m = self.target_map.detach().to(x.device, torch.float32)
            if m.shape != (n, h, w) or not torch.isfinite(m).all() or (m < 0).any():
                raise XaisecError(f"target_map must be a finite non-negative tensor ({n}, {h}, {w}) (|attribution| "
                                  f"summed over channels), got shape {tuple(m.shape)}")
            return m / m.flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1), None
        partner = other_class_partner(pred, gen)
        _, mt = self.oracle(x[partner], None, index=torch.arange(n), setup=True)
        return mt, partner

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> AttackResult:
        check_images(x)
        t0 = time.time()
        n, c, h, w = x.shape
        d = c * h * w
        lam, gens = self.population, self.generations
        # a fresh oracle per call: its budget is this call's queries (n images x population x generations)
        self.oracle = Oracle(self.model, self.interpreter, output=self.output, budget=n * lam * gens,
                             chunk_size=self.chunk_size)
        device = self.oracle.device
        x = x.detach().to(device)
        gen = torch.Generator().manual_seed(self.seed)
        alpha = default_alpha(h, w) if self.alpha is None else self.alpha
        s = model_scale(self.model, c, device) if self.scale is None else \
            torch.as_tensor(self.scale, dtype=torch.float32, device=device).view(1, -1, 1, 1).expand(1, c, 1, 1)
        ids = torch.arange(n)
        # setup queries: the original output (and the explained class) and the target maps
        probs0, maps0 = self.oracle(x, None, index=ids, setup=True)
        pred0 = probs0.argmax(1)
        y = pred0.clone() if y is None else y.to(device)
        mt, partner = self._target_maps(x, y, pred0, gen)
        explain = pred0.repeat_interleave(lam) if self.explain_class == "original_pred" else None
        index = ids.repeat_interleave(lam)

        v = torch.zeros(n, d, device=device, requires_grad=True)
        opt = torch.optim.Adam([v], lr=self.lr, betas=(0.9, 0.999), eps=1e-8)
        sigma = torch.full((n,), self.sigma0, device=device)
        best_l = torch.full((n,), math.inf, device=device)
        best_x = x.clone()
        best_map = torch.full((n,), math.nan, device=device)
        best_out = torch.full((n,), math.nan, device=device)
        xf, sf = x.view(n, 1, d), s.expand(1, c, h, w).reshape(1, 1, d)
        lo, hi = torch.zeros_like(xf), torch.ones_like(xf)
        if self.eps is not None:
            lo, hi = (xf - self.eps).clamp_min(0), (xf + self.eps).clamp_max(1)
        history: dict[str, list[float]] = {k: [] for k in ("queries", "fitness", "best_fitness", "best_map_mse",
                                                           "best_output_mse", "sigma")}
        checkpoints: dict[int, torch.Tensor] = {}
        bar = tqdm(total=gens, desc=f"attaxai ({self.interpreter.name})", disable=not self.progress, leave=False)
        for g in range(gens):
            noise = sample_noise(n, lam, d, self.sampling, gen, device)  # (n, lam, d)
            with torch.no_grad():
                z = (xf + sf * (v.detach().unsqueeze(1) + sigma.view(n, 1, 1) * noise))
                z = torch.maximum(torch.minimum(z, hi), lo)
                probs, maps = self.oracle(z.view(n * lam, c, h, w), explain, index=index)
                loss, map_mse, out_mse = fitness(maps.view(n, lam, h, w), probs.view(n, lam, -1), mt, probs0,
                                                 alpha, self.beta)
                kept = probs.view(n, lam, -1)[:, 0].argmax(1) == pred0
                better = (loss[:, 0] < best_l) & kept
                best_l = torch.where(better, loss[:, 0], best_l)
                best_map = torch.where(better, map_mse[:, 0], best_map)
                best_out = torch.where(better, out_mse[:, 0], best_out)
                best_x[better] = z[better, 0].view(-1, c, h, w)
                g_mean, g_sigma = nes_gradients(-loss, noise, sigma)
            v.grad = -g_mean
            opt.step()
            for group in opt.param_groups:
                group["lr"] *= self.lr_decay
            with torch.no_grad():
                v.clamp_(-self.max_delta, self.max_delta)
                sigma = (sigma + g_sigma.clamp(-self.sigma_clip, self.sigma_clip)).clamp_min(self.sigma_floor)
            spent = (g + 1) * lam
            if spent % 10_000 < lam or g == gens - 1:
                checkpoints[spent] = best_map.detach().cpu().clone()
            if g % self.history_every == 0 or g == gens - 1:
                history["queries"].append(float(spent))
                history["fitness"].append(float(loss[:, 0].mean()))
                history["best_fitness"].append(float(best_l.mean()))
                history["best_map_mse"].append(float(best_map.mean()))
                history["best_output_mse"].append(float(best_out.mean()))
                history["sigma"].append(float(sigma.mean()))
            bar.update(1)
            if (g + 1) % 50 == 0:
                log.info("attaxai %s: generation %d/%d, %d queries per image, best fitness %.4g, %.0f s",
                         self.interpreter.name, g + 1, gens, spent, float(best_l.mean()), time.time() - t0)
        bar.close()
        seconds = time.time() - t0
        return self._result(x, y, best_x, probs0, maps0, mt, partner, pred0, checkpoints, history, seconds, alpha)

    def _result(self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, probs0: torch.Tensor,
                maps0: torch.Tensor, mt: torch.Tensor, partner: torch.Tensor | None, pred0: torch.Tensor,
                checkpoints: dict[int, torch.Tensor], history: dict[str, list[float]], seconds: float,
                alpha: float) -> AttackResult:
        config = {"attack": "attaxai", "framework": "nes",
                  "interpreter": self.interpreter.name, "population": self.population,
                  "generations": self.generations, "queries_per_image": self.population * self.generations,
                  "sigma0": self.sigma0, "lr": self.lr, "lr_decay": self.lr_decay, "alpha": alpha, "beta": self.beta,
                  "eps": self.eps, "sampling": self.sampling, "output": self.oracle.output, "seed": self.seed,
                  "explain_class": self.explain_class,
                  "partner": None if partner is None else partner.tolist()}
        return manipulation_result(self.oracle, self.model, x, y, x_adv, probs0, maps0, mt, pred0,
                                   explain_class=self.explain_class, checkpoints=checkpoints, history=history,
                                   seconds=seconds, config=config, iterations=self.generations, black_box=True)


def manipulation_result(oracle: Oracle, model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
                        probs0: torch.Tensor, maps0: torch.Tensor, mt: torch.Tensor, pred0: torch.Tensor, *,
                        explain_class: str, checkpoints: dict[int, torch.Tensor], history: dict[str, list[float]],
                        seconds: float, config: dict[str, Any], iterations: int, black_box: bool) -> AttackResult:
    """The AttackResult of an explanation-manipulation attack (AttaXAI, Dombrowski), measured on the system.

    Maps in the result are min-max normalised for display; the MSE metrics use the sum-1 maps.
    ``success`` = label kept and the map closer to the target than the benign map was (ratio < 1).
    """
    n = x.shape[0]
    # the experimenter's evaluation (not charged to the attacker): the system's answer on x_adv
    probs_adv, maps_adv = oracle.answer(x_adv, pred0 if explain_class == "original_pred" else None)
    pred_adv = probs_adv.argmax(1)
    map_mse = (maps_adv - mt).pow(2).flatten(1).mean(1)
    map_mse0 = (maps0 - mt).pow(2).flatten(1).mean(1)
    kept = pred_adv == pred0
    ratio = map_mse / map_mse0.clamp_min(1e-30)
    if oracle.output == "logits":
        probs_adv, probs0 = probs_adv.softmax(1), probs0.softmax(1)
    out_mse = (probs_adv - probs0).pow(2).mean(1)
    conf = probs_adv.max(1).values
    mb, ma, mtn = minmax_normalize(maps0), minmax_normalize(maps_adv), minmax_normalize(mt)
    diff = (x_adv - x).flatten(1)
    s = model_scale(model, x.shape[1], x.device)
    success = kept & (ratio < 1)
    metrics = {
        "success": success.float(), "label_kept": kept.float(), "confidence": conf,
        "map_mse": map_mse, "map_mse_benign": map_mse0, "map_mse_ratio": ratio, "output_mse": out_mse,
        "input_mse": diff.pow(2).mean(1), "input_mse_normalized": ((x_adv - x) / s).flatten(1).pow(2).mean(1),
        "l1": map_l1(ma, mb), "l2": map_l2(ma, mb), "iou": map_iou(ma, mb),
        "l1_target": map_l1(ma, mtn), "iou_target": map_iou(ma, mtn),
        "noise_rate": noise_rate(x, x_adv), "linf": diff.abs().amax(1), "l2_dist": diff.norm(dim=1),
        "seconds_per_image": torch.full((n,), seconds / max(n, 1)),
    }
    queries = None
    if black_box:
        per_image, setup = oracle.per_image, oracle.per_image_setup
        metrics["queries"] = per_image[:n].float() if per_image.numel() >= n else torch.zeros(n)
        metrics["setup_queries"] = setup[:n].float() if setup.numel() >= n else torch.zeros(n)
        queries = metrics["queries"].long()
        config = {**config, "queries_total": int(queries.sum()),
                  "setup_queries_total": int(metrics["setup_queries"].sum())}
    for q, vals in checkpoints.items():
        metrics[f"best_map_mse_q{q}"] = vals
    metrics = {k: v.detach().float().cpu() for k, v in metrics.items()}
    return AttackResult(
        x=x.cpu(), x_adv=x_adv.cpu(), y=y.cpu(), pred_clean=pred0.cpu(), pred_adv=pred_adv.cpu(), target=None,
        success=success.cpu(), maps_benign=mb.cpu(), maps_adv=ma.cpu(), maps_target=mtn.cpu(), metrics=metrics,
        iterations=iterations, seconds=seconds, config=config, history=history,
        queries=None if queries is None else queries.cpu(),
        queries_total=None if queries is None else int(queries.sum()),
    )


def build(model: nn.Module, interpreter: str | Interpreter, *, seed: int = 0, progress: bool = False,
          **options: Any) -> AttaXAI:
    """Builder for :data:`xaisec.attacks.BUILT_ATTACKS` (``get("attaxai", model, "grad", queries=50_000)``)."""
    return AttaXAI(model, interpreter, seed=seed, progress=progress, **options)


__all__ = [
    "SAMPLINGS",
    "AttaXAI",
    "build",
    "default_alpha",
    "fitness",
    "lhs_normal",
    "manipulation_result",
    "model_scale",
    "nes_gradients",
    "sample_noise",
    "zscore",
]
