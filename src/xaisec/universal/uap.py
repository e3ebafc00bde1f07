"""UAP (Moosavi-Dezfooli et al. 2017) with DeepFool (Moosavi-Dezfooli et al. 2016), batched.

The reference algorithm visits the shuffled training images one by one; for each image x that x + v does not
fool it adds the DeepFool perturbation of x + v and projects v back onto the eps-ball, and it stops once the
training fooling ratio reaches ``target_fooling`` (1 - delta, 0.8). Here a mini-batch of ``batch_size`` not yet
fooled images is visited at once: DeepFool runs on the whole batch (per DeepFool iteration one forward and one
backward per candidate class, each for the whole batch), their perturbations (all computed at the same v) are
summed and v is projected once. ``batch_size=1`` visits one image at a time, as the reference. DeepFool: L2
linearisation over the ``num_candidates`` top classes of the clean prediction, ``max_iter_df`` iterations,
overshoot 0.02 (LTS4 defaults); the projection is L-inf clipping or L2 rescaling into the ball. The perturbation
returned is the one of the pass with the highest training fooling ratio (the reference returns the last one;
they agree when the target is reached).
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn
from tqdm.auto import tqdm

from xaisec.universal.budget import project
from xaisec.universal.result import UniversalPerturbation

log = logging.getLogger(__name__)


def _class_gradients(logits: torch.Tensor, x: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """d logits[n, cand[n, j]] / d x[n] for all j: (N, J, C, H, W); one backward per candidate rank j, each for
    the whole batch (on a CPU this is ~2.5x faster than one vmapped ``is_grads_batched`` backward)."""
    j = cand.shape[1]
    picked = logits.gather(1, cand)  # (N, J)
    grads = [torch.autograd.grad(picked[:, i].sum(), x, retain_graph=i < j - 1)[0] for i in range(j)]
    return torch.stack(grads, 1)


def deepfool(model: nn.Module, x: torch.Tensor, *, num_candidates: int = 10, overshoot: float = 0.02,
             max_iter: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched DeepFool (L2). x (N, C, H, W); returns (r (N, C, H, W) the overshot perturbation, fooled (N,))."""
    with torch.no_grad():
        logits0 = model(x)
    k = min(num_candidates, logits0.shape[1])
    cand = logits0.topk(k, 1).indices  # column 0: the original class
    k0 = cand[:, 0]
    r_tot = torch.zeros_like(x)
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    rows = torch.arange(x.shape[0], device=x.device)
    for _ in range(max_iter):
        xi = (x + (1 + overshoot) * r_tot).detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xi)
            active = active & (logits.detach().argmax(1) == k0)
            if not active.any():
                break
            grads = _class_gradients(logits, xi, cand)
        f = logits.detach().gather(1, cand)
        w = (grads[:, 1:] - grads[:, :1]).flatten(2)  # (N, k-1, D)
        fd = f[:, 1:] - f[:, :1]
        wn = w.norm(dim=2).clamp_min(1e-12)
        pert = fd.abs() / wn
        best = pert.argmin(1)
        step = (pert[rows, best] + 1e-4) / wn[rows, best]
        r = (step[:, None] * w[rows, best]).view_as(x)
        r_tot = r_tot + r * active.view(-1, 1, 1, 1)
    with torch.no_grad():
        fooled = model(x + (1 + overshoot) * r_tot).argmax(1) != k0
    return (1 + overshoot) * r_tot, fooled


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, device: torch.device, bs: int = 500) -> torch.Tensor:
    return torch.cat([model(x[i: i + bs].to(device)).argmax(1).cpu() for i in range(0, x.shape[0], bs)])


def train_uap(model: nn.Module, x_all: torch.Tensor, *, norm: str = "linf", eps: float = 10 / 255,
              target_fooling: float = 0.8, max_passes: int = 5, overshoot: float = 0.02, max_iter_df: int = 10,
              num_candidates: int = 10, batch_size: int = 30, seed: int = 0,
              progress: bool = False) -> UniversalPerturbation:
    """The UAP algorithm (see the module docstring) on float images x_all (N, C, H, W) in [0, 1] (CPU)."""
    device = next(iter(model.parameters()), torch.zeros(0)).device
    model.eval()
    g = torch.Generator().manual_seed(seed)
    n = x_all.shape[0]
    v = torch.zeros((1, *x_all.shape[1:]), device=device)
    clean = _predict(model, x_all, device)
    history: dict[str, list[float]] = {"pass": [], "fooling": [], "seconds": [], "visited": []}
    t0 = time.perf_counter()
    fr, best_fr, best_v = 0.0, -1.0, v
    visited = 0
    for p in range(1, max_passes + 1):
        order = torch.randperm(n, generator=g)
        for i in tqdm(range(0, n, batch_size), disable=not progress, desc=f"uap pass {p}", leave=False):
            idx = order[i: i + batch_size]
            x = x_all[idx].to(device)
            xv = (x + v).clamp(0, 1)
            with torch.no_grad():
                keep = model(xv).argmax(1) == clean[idx].to(device)
            if not keep.any():
                continue
            visited += int(keep.sum())
            r, _ = deepfool(model, xv[keep], num_candidates=num_candidates, overshoot=overshoot,
                            max_iter=max_iter_df)
            v = project(v + r.sum(0, keepdim=True), norm, eps)
        fr = float((_predict(model, (x_all + v.cpu()).clamp(0, 1), device) != clean).float().mean())
        history["pass"].append(p)
        history["fooling"].append(fr)
        history["seconds"].append(time.perf_counter() - t0)
        history["visited"].append(visited)
        log.info("uap pass %d: training fooling ratio %.3f", p, fr)
        if fr > best_fr:
            best_fr, best_v = fr, v
        if fr >= target_fooling:
            break
    seconds = time.perf_counter() - t0
    config = {"method": "uap", "model": getattr(model, "name", type(model).__name__), "interpreter": None,
              "norm": norm, "eps": eps, "target_fooling": target_fooling, "max_passes": max_passes,
              "overshoot": overshoot, "max_iter_df": max_iter_df, "num_candidates": num_candidates,
              "batch_size": batch_size, "n_train": n, "seed": seed, "seconds": seconds, "train_fooling": best_fr,
              "image_shape": list(x_all.shape[1:])}
    return UniversalPerturbation(perturbation=best_v[0].cpu(), method="uap", config=config, history=history)


__all__ = ["deepfool", "train_uap"]
