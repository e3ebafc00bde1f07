"""xaisec's UAP against the Adversarial Robustness Toolbox's UniversalPerturbation, and the cost of a JUAP step.

Part 1, same model (shipped ResNet-20), same CIFAR-10 images, same budget (L-inf 10/255), same stopping rule
(training fooling ratio 0.8 or ``--passes`` passes), same DeepFool settings (10 candidate classes, overshoot
0.02, 10 iterations): prints both training fooling ratios, both wall times and ``speedup: S`` = ART / xaisec.
ART visits the images one at a time; xaisec runs DeepFool on mini-batches of not-yet-fooled images.

Part 2: JUAP seconds per training iteration at batch 30 (``--interpreter``, default CAM) and the ratio to one
plain forward + backward of the generator and the classifier on the same batch (no map, no clean pass).

    python benchmarks/universal.py [--n 500] [--passes 5] [--batch 30] [--steps 10] [--skip-art]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time

import torch
from _common import cifar_batch, resnet20

import xaisec.universal as U
from xaisec.universal.budget import scale_to_budget
from xaisec.universal.generators import build_generator


def fooling(model: torch.nn.Module, x: torch.Tensor, v: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model((x + v).clamp(0, 1)).argmax(1) != model(x).argmax(1)).float().mean())


def run_art(model: torch.nn.Module, x: torch.Tensor, eps: float, passes: int) -> tuple[torch.Tensor, float]:
    from xaisec._compat.torchvision import import_torchvision

    import_torchvision()
    from art.attacks.evasion import UniversalPerturbation
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=model.num_classes, clip_values=(0.0, 1.0))
    attack = UniversalPerturbation(clf, attacker="deepfool",
                                   attacker_params={"max_iter": 10, "epsilon": 0.02, "nb_grads": 10, "verbose": False},
                                   delta=0.2, max_iter=passes, eps=eps, norm=float("inf"), verbose=False)
    t0 = time.perf_counter()
    x_adv = attack.generate(x.numpy())
    seconds = time.perf_counter() - t0
    v = torch.from_numpy(attack.noise).float().reshape(1, *x.shape[1:]) if attack.noise is not None else \
        torch.from_numpy(x_adv).float()[:1] - x[:1]
    return v, seconds


def juap_cost(model: torch.nn.Module, x: torch.Tensor, interpreter: str, batch: int, steps: int,
              repeats: int) -> tuple[float, float]:
    """(JUAP seconds per iteration from the slope of two training lengths, bare generator+classifier f+b)."""
    x = x[: max(batch, 1)]
    runs = {}
    for k in (2, 2 + steps):
        runs[k] = U.train("juap", model, interpreter, x, steps=k, batch_size=batch, seed=0).config["seconds"]
    per_step = (runs[2 + steps] - runs[2]) / steps
    gen = build_generator("resnet", 3, tuple(x.shape[-2:]), ngf=32)
    noise = torch.rand(1, *x.shape[1:])
    for p in model.parameters():
        p.requires_grad_(False)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        xa = (x + scale_to_budget(gen(noise), "linf", 10 / 255)).clamp(0, 1)
        torch.nn.functional.cross_entropy(model(xa), model(x).argmin(1).detach()).backward()
        times.append(time.perf_counter() - t0)
    return per_step, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="training images for both UAPs")
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--steps", type=int, default=10, help="JUAP iterations timed (slope of two lengths)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--interpreter", default="cam")
    ap.add_argument("--skip-art", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    random.seed(0)  # ART shuffles with Python's random
    model, source = resnet20("cpu")
    x, _ = cifar_batch(args.n, torch.device("cpu"), seed=0)
    eps = 10 / 255
    print(f"model: cifar10_resnet20 ({source}); {args.n} CIFAR-10 test images; L-inf {eps * 255:.0f}/255; "
          f"target fooling 0.8, at most {args.passes} passes; torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    ours = U.train("uap", model, None, x, eps=eps, max_passes=args.passes, batch_size=args.batch, seed=0)
    t_ours = time.perf_counter() - t0
    fr_ours = fooling(model, x, ours.perturbation)
    print(f"xaisec UAP (batched DeepFool, batch {args.batch}): fooling {fr_ours * 100:.1f}%, {t_ours:.1f} s, "
          f"passes {len(ours.history['pass'])}, L-inf {float(ours.perturbation.abs().max()) * 255:.2f}/255")
    if not args.skip_art:
        v_art, t_art = run_art(model, x, eps, args.passes)
        fr_art = fooling(model, x, v_art)
        print(f"ART UniversalPerturbation (deepfool): fooling {fr_art * 100:.1f}%, {t_art:.1f} s, "
              f"L-inf {float(v_art.abs().max()) * 255:.2f}/255")
        print(f"fooling difference (xaisec - ART): {(fr_ours - fr_art) * 100:+.1f} points")
        print(f"speedup: {t_art / t_ours:.2f}")
    per_step, bare = juap_cost(model, x, args.interpreter, args.batch, args.steps, args.repeats)
    print(f"JUAP ({args.interpreter}, batch {args.batch}): {per_step:.3f} s/iteration; plain generator+classifier "
          f"forward+backward {bare:.3f} s; ratio: {per_step / bare:.2f}")


if __name__ == "__main__":
    main()
