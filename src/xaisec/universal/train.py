"""Training universal perturbations: ``train("juap"|"gap"|"uap", model, interpreter, images, ...)``.

JUAP (Ning et al. 2024, Algorithm 1): a generator G maps fixed noise n ~ U(0, 1) to n_hat = min(1, eps /
||G(n)||_p) G(n) (Eq. 6, ``scaling="cap"``, default) or eps / ||G(n)||_p G(n) (``scaling="exact"``); x_hat =
clamp(x + n_hat, 0, 1); Adam on G's weights minimises Eq. 16 (see :mod:`xaisec.universal.objective`) on
augmented mini-batches (random 4-pixel crop, horizontal flip). GAP (Poursaeed et al. 2018; the paper's GUAP) is
the same with lambda = 0 and no delta clamp. UAP (Moosavi-Dezfooli et al. 2017) is :mod:`xaisec.universal.uap`.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from xaisec.interpreters.base import Interpreter
from xaisec.training.augment import random_crop_flip
from xaisec.universal.budget import SCALINGS, check_budget, project, scale_to_budget
from xaisec.universal.generators import GENERATORS, build_generator
from xaisec.universal.objective import DELTA, LOSSES, JointObjective, resolve_interpreter
from xaisec.universal.result import UniversalPerturbation
from xaisec.utils.checks import XaisecError, check_images, check_seed, module_device

log = logging.getLogger(__name__)

METHODS = ("juap", "gap", "uap")
# lambda for min-max normalised maps at 32x32 (the paper's [1e-4, 3e-3] is for raw 224 px maps): see docs/juap.md
DEFAULT_LAM = 0.1


def as_images(images: Any, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An (N, C, H, W) [0, 1] tensor or an :class:`~xaisec.data.ImageDataset` -> (float images on the CPU,
    labels or None)."""
    from xaisec.data.dataset import ImageDataset

    if isinstance(images, ImageDataset):
        if len(images) == 0:
            raise XaisecError(f"the training set {images.name!r} is empty: pass at least one image")
        return images.float_images(), images.labels if labels is None else labels
    if isinstance(images, torch.Tensor) and images.dim() == 4 and images.shape[0] == 0:
        raise XaisecError("the training set is empty (0 images): pass at least one image")
    check_images(images, name="images")
    if labels is not None and (labels.dim() != 1 or labels.shape[0] != images.shape[0]):
        raise XaisecError(f"labels must be (N,) = ({images.shape[0]},), got {tuple(labels.shape)}")
    return images.detach().float().cpu(), labels




class _Frozen:
    """Context: the model in eval mode with parameters that do not require grad (restored on exit)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> nn.Module:
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.training = self.model.training
        self.model.eval()
        for p, _ in self.flags:
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc: object) -> None:
        for p, flag in self.flags:
            p.requires_grad_(flag)
        self.model.train(self.training)


def train(method: str, model: nn.Module, interpreter: str | Interpreter | None, images: Any, *,
          labels: torch.Tensor | None = None, generator: str = "resnet", norm: str = "linf", eps: float = 10 / 255,
          loss: str = "least_likely", target_class: int | None = None, lam: float | None = None,
          delta: float | None = DELTA, steps: int = 1000, batch_size: int = 30, lr: float = 2e-4,
          betas: tuple[float, float] = (0.5, 0.999), ngf: int = 32, blocks: int = 6, scaling: str = "cap",
          augment: bool = True, per_sample: bool = False, surrogate: bool | None = None, log_every: int = 10,
          interpreter_options: dict[str, Any] | None = None, seed: int = 0, progress: bool = False,
          **uap_options: Any) -> UniversalPerturbation:
    """Train a universal perturbation for ``model`` on ``images`` and return it.

    Args:
        method: ``"juap"`` (generator + map term), ``"gap"`` (generator, lam = 0, no delta) or ``"uap"``
            (DeepFool, :func:`xaisec.universal.uap.train_uap`; its options: target_fooling, max_passes,
            overshoot, max_iter_df, num_candidates). GAP and UAP accept and ignore the interpreter.
        model: the classifier on [0, 1] images. interpreter: a name or an Interpreter (JUAP).
        images: (N, C, H, W) in [0, 1] or an ImageDataset (its labels are used for ``"untargeted"``).
        generator: ``"resnet"`` (R-JUAP) or ``"unet"`` (U-JUAP); ngf, blocks: its width and residual blocks.
        norm, eps: ``"linf"`` / ``"l2"`` budget in [0, 1] pixel units.
        scaling: ``"cap"`` (default, Eq. 6: min(1, eps/||G||) G) or ``"exact"`` (eps/||G|| G, always on the sphere:
            the paper's "scaled to have a fixed magnitude" and GAP's code).
        loss: ``"least_likely"`` (Eq. 8), ``"untargeted"`` (Eq. 7) or ``"targeted"`` (Eq. 9, target_class=).
        lam: map-term weight (default :data:`DEFAULT_LAM` for JUAP; forced to 0 for GAP); delta: Eq. 16 clamp.
        steps, batch_size, lr, betas: Adam iterations on mini-batches (paper: batch 30, lr 2e-4).
        augment: random 4-pixel crop and horizontal flip of each mini-batch.
        per_sample: clamp per image instead of on the batch mean CE.
        surrogate: soft-ReLU map pass (None: automatic for gradient-based interpreters).
        log_every: history resolution in steps (window means).
        seed: seeds the generator weights, the noise, the batch order and the augmentation.
    """
    if method not in METHODS:
        raise XaisecError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    eps = check_budget(norm, eps)
    check_seed(seed)
    x_all, y_all = as_images(images, labels)
    if not isinstance(model, nn.Module):
        raise XaisecError(f"model must be an nn.Module, got {type(model).__name__}")
    if method == "uap":
        from xaisec.universal.uap import train_uap

        return train_uap(model, x_all, norm=norm, eps=eps, batch_size=batch_size, seed=seed, progress=progress,
                         **uap_options)
    if uap_options:
        raise XaisecError(f"unknown option(s) for {method}: {', '.join(sorted(uap_options))}")
    if generator not in GENERATORS:
        raise XaisecError(f"unknown generator {generator!r}; choose from {', '.join(GENERATORS)}")
    if loss not in LOSSES:
        raise XaisecError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
    if scaling not in SCALINGS:
        raise XaisecError(f"unknown budget scaling {scaling!r}; choose from {', '.join(SCALINGS)}")
    if not isinstance(steps, int) or steps < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise XaisecError(f"steps and batch_size must be positive ints, got {steps!r}, {batch_size!r}")
    if method == "gap":
        lam, delta, interp = 0.0, None, None
    else:
        lam = DEFAULT_LAM if lam is None else lam
        interp = resolve_interpreter(model, interpreter, interpreter_options) if lam > 0 else None
    device = module_device(model)
    c, h, w = x_all.shape[1:]
    gen = build_generator(generator, c, (h, w), ngf=ngf, blocks=blocks, seed=seed).to(device)
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand((1, c, h, w), generator=g).to(device)
    opt = torch.optim.Adam(gen.parameters(), lr=lr, betas=betas)
    objective = JointObjective(model, interp, loss=loss, target_class=target_class, lam=lam, delta=delta,
                               per_sample=per_sample, surrogate=surrogate)
    n = x_all.shape[0]
    bs = min(batch_size, n)
    order = torch.randperm(n, generator=g)
    pos = 0
    keys = ("loss", "cls_loss", "map_loss", "fooling")
    history: dict[str, list[float]] = {"step": [], "seconds": [], **{k: [] for k in keys}}
    window: dict[str, list[float]] = {k: [] for k in keys}
    t0 = time.perf_counter()
    with _Frozen(model):
        gen.train()
        for step in tqdm(range(1, steps + 1), disable=not progress, desc=method, leave=False):
            if pos + bs > n:
                order, pos = torch.randperm(n, generator=g), 0
            idx = order[pos: pos + bs]
            pos += bs
            x = x_all[idx].to(device)
            if augment:
                x = random_crop_flip(x, generator=g)
            y = None if y_all is None or loss != "untargeted" else y_all[idx]
            clean = objective.clean(x, y)
            n_hat = scale_to_budget(gen(noise), norm, eps, scaling)
            x_hat = (x + n_hat).clamp(0, 1)
            total, parts = objective(x_hat, clean)
            total = total.mean()  # per_sample: the (N,) per-image losses
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            window["loss"].append(float(total.detach()))
            window["cls_loss"].append(float(parts["cls"].mean()))
            window["map_loss"].append(math.nan if parts["map"] is None else float(parts["map"].mean()))
            window["fooling"].append(float((parts["pred"] != clean["pred"]).float().mean()))
            if step % log_every == 0 or step == steps:
                history["step"].append(step)
                history["seconds"].append(time.perf_counter() - t0)
                for k in keys:
                    history[k].append(sum(window[k]) / len(window[k]))
                    window[k] = []
                if step % (10 * log_every) == 0:
                    log.info("%s step %d/%d: loss %.3f, train fooling %.3f, map %.3f (%.0f s)", method, step, steps,
                             history["loss"][-1], history["fooling"][-1], history["map_loss"][-1],
                             history["seconds"][-1])
        with torch.no_grad():
            pert = project(scale_to_budget(gen(noise), norm, eps, scaling), norm, eps)[0]
    seconds = time.perf_counter() - t0
    config = {
        "method": method, "model": getattr(model, "name", type(model).__name__),
        "interpreter": None if interp is None else interp.name, "generator": generator, "ngf": ngf,
        "blocks": blocks, "norm": norm, "eps": eps, "scaling": scaling, "loss": loss, "target_class": target_class,
        "lam": float(lam), "delta": delta, "per_sample": per_sample, "steps": steps, "batch_size": bs, "lr": lr,
        "betas": list(betas), "augment": augment, "surrogate": objective.surrogate, "n_train": n, "seed": seed,
        "seconds": seconds, "seconds_per_step": seconds / steps,
        "image_shape": [c, h, w],
    }
    log.info("%s: %d steps in %.1f s, last train-batch fooling %.3f", method, steps, seconds,
             history["fooling"][-1])
    return UniversalPerturbation(perturbation=pert, method=method, config=config, history=history,
                                 generator_state={k: v.detach().cpu().clone() for k, v in gen.state_dict().items()},
                                 noise=noise.cpu())


__all__ = ["DEFAULT_LAM", "METHODS", "as_images", "train"]
