"""Transfer attack refined by a microbial genetic algorithm (the black-box experiment of AdvEdge,
Abdukhamidov et al., TDSC 2023, after MGAAttack, Wang et al. 2020).

1. Craft x_s on a surrogate model the attacker owns: AdvEdge against the surrogate's interpreter (fool the
   classifier, keep its explanation), or plain PGD / MI-FGSM; L-inf eps 8/255, untargeted.
2. Query the target's probabilities for x_s (pure transfer: one query per image).
3. For the images not yet fooled, a microbial GA searches perturbations delta in [-eps, eps]^d: a population
   (default 5) initialised from the surrogate's perturbation (member 0 = delta_s; the others = delta_s with each
   coordinate's sign flipped with probability ``init_flip``). Every generation runs population // 2 disjoint
   tournaments per image: the loser of each pair (lower fitness) copies every gene of the winner with
   probability ``crossover`` (0.7), then each gene is reset to +-eps with probability ``mutation`` (0.001),
   and only the changed losers are queried (one batch for all images). Fitness = max_{j != y} log p_j -
   log p_y (the target's probabilities only); an image stops at its first success or when its budget is spent.

Queries are counted per image by an :class:`~xaisec.blackbox.oracle.Oracle` (the transfer query included).
The target's explanation is measured (not queried) for the IoU of benign vs adversarial maps.
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
from xaisec.blackbox.attaxai import _check_int, _check_pos
from xaisec.blackbox.oracle import Oracle
from xaisec.interpreters import Interpreter
from xaisec.interpreters import get as get_interpreter
from xaisec.utils.checks import XaisecError, check_images

log = logging.getLogger(__name__)

SEED_ATTACKS = ("advedge", "pgd", "mifgsm")


def margin_fitness(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Untargeted fitness (higher is better) from probabilities (N, K) and labels (N,): max_{j != y} log p_j -
    log p_y; positive exactly when the prediction is not y."""
    logp = probs.clamp_min(1e-30).log()
    own = logp.gather(1, y.view(-1, 1)).squeeze(1)
    other = logp.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
    return other - own


def mifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
           decay: float = 1.0) -> torch.Tensor:
    """Untargeted MI-FGSM (Dong et al. 2018) on ``model``: x (N, C, H, W) in [0, 1] -> x_adv in the eps ball."""
    alpha = eps / steps
    g = torch.zeros_like(x)
    xa = x.clone()
    for _ in range(steps):
        with torch.enable_grad():
            xr = xa.detach().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(xr), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xr)
        g = decay * g + grad / grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
        xa = (x + (xa + alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1).detach()
    return xa


def _input_size(model: nn.Module) -> tuple[int, ...] | None:
    size = getattr(model, "input_size", None)
    return None if size is None else tuple(int(s) for s in size)


class MGA:
    """Surrogate-seeded microbial GA transfer attack (see module docstring).

    Args:
        model: the target (black box: only its probabilities are queried, through an Oracle).
        interpreter: the target's interpreter (name or Interpreter), used only to MEASURE the IoU of its
            benign and adversarial maps.
        surrogate: the attacker's model (a model spec of xaisec.models.loading.load_model_spec, or an
            nn.Module) with the target's input shape and class count.
        surrogate_interpreter: interpreter of the surrogate for AdvEdge (default: the target interpreter's name).
        seed_attack: ``"advedge"`` (default), ``"pgd"`` or ``"mifgsm"``; seed_options: extra options of the
            seed attack (default steps_scale 0.25 for AdvEdge / PGD).
        budget: queries per image (10,000); population (5, >= 2); crossover (0.7); mutation (0.001);
            init_flip: sign-flip probability of the initial members other than delta_s (0.05); eps (8/255).
    """

    name = "mga"

    def __init__(self, model: nn.Module, interpreter: str | Interpreter, *, surrogate: str | nn.Module,
                 surrogate_interpreter: str | None = None, seed_attack: str = "advedge", budget: int = 10_000,
                 population: int = 5, crossover: float = 0.7, mutation: float = 0.001, init_flip: float = 0.05,
                 eps: float = 8 / 255, seed_options: dict | None = None, interpreter_options: dict | None = None,
                 seed: int = 0, progress: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise XaisecError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(surrogate, str):
            from xaisec.models.loading import load_model_spec

            # any model spec: a zoo name, a TorchScript file, a folder with weights + card, a factory
            surrogate = load_model_spec(surrogate, device=str(next(model.parameters()).device))
        if not isinstance(surrogate, nn.Module):
            raise XaisecError(f"surrogate must be a model name or an nn.Module, got {type(surrogate).__name__}")
        if surrogate is model:
            log.warning("the surrogate is the target model itself: this is a white-box attack")
        ts, ss = _input_size(model), _input_size(surrogate)
        if ts is not None and ss is not None and ts != ss:
            raise XaisecError(f"the surrogate takes inputs {ss} but the target takes {ts}: pick a surrogate "
                              "trained on the target's input format")
        tk, sk = getattr(model, "num_classes", None), getattr(surrogate, "num_classes", None)
        if tk is not None and sk is not None and tk != sk:
            raise XaisecError(f"the surrogate has {sk} classes but the target has {tk}: the surrogate must "
                              "classify the same label set")
        if seed_attack not in SEED_ATTACKS:
            raise XaisecError(f"unknown seed attack {seed_attack!r}; choose from {SEED_ATTACKS}")
        self.population = _check_int(population, "population", 2)
        self.budget = _check_int(budget, "budget", 1)
        need = self.population + self.population // 2  # the transfer query, the other initial members, 1 generation
        if self.budget < need:
            raise XaisecError(f"a budget of {budget} queries per image is smaller than the initial population plus "
                              f"one generation ({need}); raise budget=")
        for name, v in (("crossover", crossover), ("mutation", mutation), ("init_flip", init_flip)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
                raise XaisecError(f"{name} must be a probability in [0, 1], got {v!r}")
        self.crossover, self.mutation, self.init_flip = float(crossover), float(mutation), float(init_flip)
        self.eps = _check_pos(eps, "eps")
        if isinstance(interpreter, str):
            interpreter = get_interpreter(interpreter, model, **(interpreter_options or {}))
        if not isinstance(interpreter, Interpreter):
            raise XaisecError(f"interpreter must be a name or an xaisec Interpreter, got {type(interpreter).__name__}")
        self.model, self.interpreter, self.surrogate = model.eval(), interpreter, surrogate.eval()
        self.surrogate_interpreter = surrogate_interpreter or interpreter.name
        self.seed_attack, self.seed_options = seed_attack, dict(seed_options or {})
        self.seed, self.progress = seed, progress

    def craft_on_surrogate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The seed adversarial images x_s (N, C, H, W) from the surrogate (white-box on the attacker's model)."""
        try:
            with torch.no_grad():
                out = self.surrogate(x[:1])
        except RuntimeError as exc:
            raise XaisecError(f"the surrogate cannot take the target's inputs {tuple(x.shape[1:])}: {exc}") from exc
        if out.dim() != 2:
            raise XaisecError(f"the surrogate must return logits (N, K), got shape {tuple(out.shape)}")
        self._surrogate_classes = int(out.shape[1])
        if self.seed_attack == "mifgsm":
            return mifgsm(self.surrogate, x, y, eps=self.eps, **self.seed_options)
        from xaisec.attacks import get as get_attack

        opts = {"steps_scale": 0.25, **self.seed_options}
        atk = get_attack(self.seed_attack, self.surrogate, self.surrogate_interpreter, eps=self.eps,
                         target_class="untargeted", target_map="benign", seed=self.seed, **opts)
        return atk(x, y).x_adv.to(x.device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> AttackResult:
        check_images(x)
        t0 = time.time()
        device = next(self.model.parameters()).device
        x, y = x.detach().to(device), y.to(device)
        n = x.shape[0]
        self._shape = tuple(x.shape[1:])
        oracle = Oracle(self.model, None, budget=n * self.budget)
        x_s = self.craft_on_surrogate(x, y)
        with torch.no_grad():
            surrogate_fooled = self.surrogate(x_s).argmax(1) != y
        ids = torch.arange(n)
        probs, _ = oracle(x_s, index=ids, maps=False)
        if probs.shape[1] != self._surrogate_classes:
            raise XaisecError(f"the surrogate has {self._surrogate_classes} classes but the target answers "
                              f"{probs.shape[1]}: the surrogate must classify the same label set")
        fit0 = margin_fitness(probs, y)
        transfer = fit0 > 0
        done = transfer.clone()
        x_adv = x_s.clone()
        gen = torch.Generator().manual_seed(self.seed)
        lam, d = self.population, x[0].numel()
        delta_s = (x_s - x).flatten(1)
        pop = delta_s.unsqueeze(1).repeat(1, lam, 1)  # (n, lam, d)
        flips = torch.rand(n, lam - 1, d, generator=gen).to(device) < self.init_flip
        pop[:, 1:] = torch.where(flips, -pop[:, 1:], pop[:, 1:])
        fit = torch.full((n, lam), float("-inf"), device=device)
        fit[:, 0] = fit0
        spent = torch.ones(n, dtype=torch.long)  # the transfer query
        xf = x.flatten(1)

        def candidates(rows: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
            return (xf[rows].unsqueeze(1) + pop[rows.view(-1, 1), members]).clamp(0, 1)

        def record_success(rows: torch.Tensor, members: torch.Tensor, f: torch.Tensor) -> None:
            hit = (f > 0).any(1)
            for_rows = rows[hit]
            if for_rows.numel():
                first = (f[hit] > 0).float().argmax(1)
                xa = candidates(for_rows, members[hit].gather(1, first.view(-1, 1))).squeeze(1)
                x_adv[for_rows] = xa.view(-1, *x.shape[1:])
                done[for_rows] = True

        # the initial members other than delta_s (one batch)
        rows = (~done).nonzero().squeeze(1)
        if rows.numel() and lam > 1:
            members = torch.arange(1, lam, device=device).expand(rows.numel(), -1)
            self._query(oracle, candidates(rows, members), rows, members, fit, y, spent)
            record_success(rows, members, fit[rows.view(-1, 1), members])
        k = lam // 2
        bar = tqdm(total=self.budget, desc="mga", disable=not self.progress, leave=False)
        generations = 0
        while True:
            rows = ((~done) & (spent.to(device) + k <= self.budget)).nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            generations += 1
            order = torch.rand(rows.numel(), lam, generator=gen).argsort(1).to(device)
            a, b = order[:, 0:2 * k:2], order[:, 1:2 * k:2]  # (r, k) disjoint pairs
            fa, fb = fit[rows.view(-1, 1), a], fit[rows.view(-1, 1), b]
            winner, loser = torch.where(fa >= fb, a, b), torch.where(fa >= fb, b, a)
            w_genes, l_genes = pop[rows.view(-1, 1), winner], pop[rows.view(-1, 1), loser]
            cross = torch.rand(l_genes.shape, generator=gen).to(device) < self.crossover
            child = torch.where(cross, w_genes, l_genes)
            mut = torch.rand(l_genes.shape, generator=gen).to(device) < self.mutation
            signs = torch.where(torch.rand(l_genes.shape, generator=gen).to(device) < 0.5, -self.eps, self.eps)
            child = torch.where(mut, signs, child)
            pop[rows.view(-1, 1), loser] = child
            self._query(oracle, candidates(rows, loser), rows, loser, fit, y, spent)
            record_success(rows, loser, fit[rows.view(-1, 1), loser])
            bar.update(k)
        bar.close()
        # unfooled images: the best member
        left = (~done).nonzero().squeeze(1)
        if left.numel():
            best = fit[left].argmax(1, keepdim=True)
            x_adv[left] = candidates(left, best).squeeze(1).view(-1, *x.shape[1:])
        seconds = time.time() - t0
        with torch.no_grad():
            maps_target = self.interpreter(x, self.model(x).argmax(1))
        metrics, tensors = measure(self.model, self.interpreter, x, x_adv, y, None, maps_target, seconds)
        metrics["transfer_success"] = transfer.float().cpu()
        metrics["surrogate_success"] = surrogate_fooled.float().cpu()
        metrics["queries"] = spent.float()
        config = {"attack": "mga", "framework": "mga",
                  "interpreter": self.interpreter.name, "seed_attack": self.seed_attack,
                  "surrogate": getattr(self.surrogate, "name", type(self.surrogate).__name__),
                  "surrogate_interpreter": self.surrogate_interpreter, "budget": self.budget,
                  "population": lam, "crossover": self.crossover, "mutation": self.mutation,
                  "init_flip": self.init_flip, "eps": self.eps, "seed": self.seed, "generations": generations,
                  "queries_total": int(spent.sum())}
        return AttackResult(
            x=x.cpu(), x_adv=x_adv.cpu(), y=y.cpu(), pred_clean=tensors["pred_clean"].cpu(),
            pred_adv=tensors["pred_adv"].cpu(), target=None, success=tensors["success"].cpu(),
            maps_benign=tensors["maps_benign"].cpu(), maps_adv=tensors["maps_adv"].cpu(),
            maps_target=maps_target.cpu(), metrics=metrics, iterations=generations, seconds=seconds, config=config,
            history={}, queries=spent.clone(), queries_total=int(spent.sum()),
        )

    def _query(self, oracle: Oracle, cand: torch.Tensor, rows: torch.Tensor, members: torch.Tensor,
               fit: torch.Tensor, y: torch.Tensor, spent: torch.Tensor) -> None:
        """Query candidates (r, m, d) of images ``rows`` (r,), store their fitness in fit[rows, members]."""
        r, m, _ = cand.shape
        probs, _ = oracle(cand.reshape(r * m, *self._shape), index=rows.cpu().repeat_interleave(m), maps=False)
        fit[rows.view(-1, 1), members] = margin_fitness(probs, y[rows].repeat_interleave(m)).view(r, m)
        spent.index_add_(0, rows.cpu(), torch.full((r,), m, dtype=torch.long))


def build(model: nn.Module, interpreter: str | Interpreter, *, seed: int = 0, progress: bool = False,
          **options: Any) -> MGA:
    """Builder for :data:`xaisec.attacks.BUILT_ATTACKS`: ``get("mga", target, "gradcam", surrogate=...)``."""
    if "surrogate" not in options:
        raise XaisecError("the mga attack needs surrogate= (a model name such as cifar10_vgg11_bn, or a model)")
    return MGA(model, interpreter, seed=seed, progress=progress, **options)


__all__ = ["MGA", "SEED_ATTACKS", "build", "margin_fitness", "mifgsm"]
