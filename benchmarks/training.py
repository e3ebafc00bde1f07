"""Seconds per training batch of each training-time defense next to a plain batch, on this machine.

Modes (shipped ResNet-20 fine-tuned in train mode, SGD, one batch of real CIFAR-10 test images, repeated):
  plain:        the trainer's cross-entropy step;
  adversarial:  xaisec's AdversarialTraining (one PGD run of max(steps) iterations recording every k in
                steps, then clean + one copy per k in one step);
  reference:    the straightforward version of the same objective: for every k its own PGD-k run, each
                step with a fresh torch.optim.SGD on the perturbation and a full .backward() (weights too);
  interpretation-robust: InterpretationRobustTraining with CAM (inner PGD steps, maps of [x, x, x_hat, x_hat]).

Prints seconds per batch, the ratio to plain, the speed-up of ``adversarial`` over ``reference``, and the
extrapolated seconds per 50k-image epoch.

    python benchmarks/training.py [--batch 128] [--batches 3] [--steps 5,10,15] [--robust-steps 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _common import cifar_batch, resnet20

from xaisec.interpreters import get as get_interpreter
from xaisec.training.adversarial import AdversarialTraining
from xaisec.training.defenses import BatchContext
from xaisec.training.interp_robust import InterpretationRobustTraining


def reference_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   steps: tuple[int, ...], eps: float, alpha: float) -> None:
    """Clean + PGD-k copies, each k its own run, a fresh optimiser for every inner step."""
    advs = []
    for k in steps:
        model.eval()
        delta = torch.zeros_like(x, requires_grad=True)
        for _ in range(k):
            inner = torch.optim.SGD([delta], lr=alpha)
            inner.zero_grad()
            (-F.cross_entropy(model(x + delta), y)).backward()  # also fills the weights' .grad
            delta.grad.sign_()
            inner.step()
            with torch.no_grad():
                delta.clamp_(-eps, eps)
                delta.copy_((x + delta).clamp(0, 1) - x)
        model.zero_grad(set_to_none=True)
        advs.append((x + delta).detach())
    model.train()
    loss = F.cross_entropy(model(torch.cat([x, *advs])), y.repeat(len(steps) + 1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def defense_step(model: torch.nn.Module, opt: torch.optim.Optimizer, defense, x: torch.Tensor, y: torch.Tensor,
                 i: int) -> None:
    model.train()
    if defense is None:
        loss = F.cross_entropy(model(x), y)
    else:
        loss, _ = defense(model, x, y, BatchContext(0, i, i, torch.Generator().manual_seed(i)))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=3, help="timed batches per mode (after one warm-up)")
    ap.add_argument("--steps", default="5,10,15", help="adversarial PGD step counts")
    ap.add_argument("--robust-steps", type=int, default=3, help="interpretation-robust inner PGD steps")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--modes", default="plain,adversarial,reference,interpretation-robust")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, source = resnet20("cpu")
    x, y = cifar_batch(args.batch, torch.device("cpu"))
    steps = tuple(int(s) for s in args.steps.split(","))
    eps, alpha = 8 / 255, 2 / 255
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    at = AdversarialTraining(eps=eps, alpha=alpha, steps=steps)
    ir = InterpretationRobustTraining(interpreter=lambda m: get_interpreter("cam", m), steps=args.robust_steps)
    ir.setup(model, total_steps=1)
    runners = {
        "plain": lambda i: defense_step(model, opt, None, x, y, i),
        "adversarial": lambda i: defense_step(model, opt, at, x, y, i),
        "reference": lambda i: reference_step(model, opt, x, y, steps, eps, alpha),
        "interpretation-robust": lambda i: defense_step(model, opt, ir, x, y, i),
    }
    seconds: dict[str, float] = {}
    for mode in args.modes.split(","):
        runners[mode](0)  # warm-up
        t0 = time.perf_counter()
        for i in range(args.batches):
            runners[mode](i + 1)
        seconds[mode] = (time.perf_counter() - t0) / args.batches
    print(f"model: ResNet-20 ({source}); batch {args.batch}; threads {torch.get_num_threads()}; "
          f"adversarial steps {steps}; robust inner steps {args.robust_steps}")
    plain = seconds.get("plain")
    per_epoch = 50_000 / args.batch
    for mode, s in seconds.items():
        ratio = f"{s / plain:6.1f}x plain" if plain else ""
        print(f"{mode:>22}: {s:8.3f} s/batch  {ratio}  ~{s * per_epoch / 60:7.1f} min per 50k-image epoch")
    if "adversarial" in seconds and "reference" in seconds:
        print(f"adversarial vs reference: {seconds['reference'] / seconds['adversarial']:.2f}x faster "
              f"(throughput {args.batch / seconds['adversarial']:.1f} vs {args.batch / seconds['reference']:.1f} "
              "images/s)")


if __name__ == "__main__":
    main()
