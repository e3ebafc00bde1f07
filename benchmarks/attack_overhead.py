"""How much an ADV^2 iteration against Grad-CAM / grad costs beyond the double backpropagation it cannot avoid.

Times, on the same model and batch (default 64 CIFAR-10 images, shipped ResNet-20):
  bare:  one forward pass, one backward pass with create_graph to the Grad-CAM layer, one backward pass of
         a scalar of the resulting map to the input;
  adv2:  one iteration of xaisec's adv2-gradcam attack (the per-iteration slope of two attack lengths, so
         set-up and final measurement are excluded);
and prints ``ratio: R`` = adv2 / bare. The same for the gradient map: bare_grad = forward, create_graph
backward to the input, backward of a loss on the |gradient| max-over-channels map, all with the exact ReLU
(the floor: no surrogate); adv2-grad iteration with default settings (soft-ReLU surrogate, keep_best scored
at logged steps); ``ratio_grad: R``. Then seconds per image for every attack / interpreter pair at the
same batch size, per iteration and for the paper's full schedule.

    python benchmarks/attack_overhead.py [--batch 64] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import cifar_batch, resnet20

from xaisec.attacks import ATTACKS, get, profile_for
from xaisec.interpreters import get as get_interpreter


def bare_double_backprop(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> None:
    store: dict[str, torch.Tensor] = {}
    handle = model.layer().register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o))
    try:
        xr = x.detach().requires_grad_(True)
        logits = model(xr)
        a = store["a"]
        (g,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), a, create_graph=True)
        cam = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
        torch.autograd.grad(cam.sum(), xr)
    finally:
        handle.remove()


def bare_grad_double_backprop(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> None:
    xr = x.detach().requires_grad_(True)
    logits = model(xr.contiguous(memory_format=torch.channels_last))  # as the grad interpreter runs it
    (g,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), xr, create_graph=True)
    maps = g.abs().amax(1)
    torch.autograd.grad((maps - 0.5 * maps.detach()).pow(2).sum(), xr)


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_iteration(model, interpreter, attack: str, x, y, short: int, long: int, repeats: int, **kw) -> float:
    """Seconds per attack iteration: (time(long) - time(short)) / (long - short), medians over repeats."""

    def run(steps: int) -> float:
        atk = get(attack, model, interpreter, warm_steps=0, stages=[(steps, 5.0, 5.0)], **kw)
        t0 = time.perf_counter()
        atk(x, y)
        return time.perf_counter() - t0

    run(2)
    t_short = statistics.median(run(short) for _ in range(repeats))
    t_long = statistics.median(run(long) for _ in range(repeats))
    return max(t_long - t_short, 1e-9) / (long - short)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--interpreters", default="grad,cam,gradcam,gradcam_pp,rts,mask")
    ap.add_argument("--skip-pairs", action="store_true", help="only the ratio")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model, source = resnet20(args.device)
    x, y = cifar_batch(args.batch, model.device, args.seed)
    print(f"model: cifar10_resnet20 ({source}); batch {args.batch}; device {model.device}; "
          f"threads {torch.get_num_threads()}; torch {torch.__version__}")
    target = (y + 1) % 10
    bare = median_time(lambda: bare_double_backprop(model, x, target), args.repeats * 3)
    gradcam = get_interpreter("gradcam", model)
    adv2 = per_iteration(model, gradcam, "adv2", x, y, 5, 25, args.repeats)
    print(f"bare double backprop: {bare * 1000:.1f} ms")
    print(f"adv2-gradcam iteration: {adv2 * 1000:.1f} ms")
    print(f"ratio: {adv2 / bare:.2f}")
    bare_grad = median_time(lambda: bare_grad_double_backprop(model, x, target), args.repeats * 3)
    adv2_grad = per_iteration(model, get_interpreter("grad", model), "adv2", x, y, 5, 25, args.repeats)
    print(f"bare grad-map double backprop (exact ReLU): {bare_grad * 1000:.1f} ms")
    print(f"adv2-grad iteration: {adv2_grad * 1000:.1f} ms")
    print(f"ratio_grad: {adv2_grad / bare_grad:.2f}")
    if args.skip_pairs:
        return
    print(f"\n| attack | interpreter | s/iteration (batch {args.batch}) | s/image/iteration | paper schedule "
          "(steps) | s/image for the paper schedule |")
    print("|---|---|---|---|---|---|")
    for name in args.interpreters.split(","):
        try:
            interp = get_interpreter(name, model, **({"iterations": 50} if name == "mask" else {}))
        except Exception as exc:  # an interpreter without weights (rts) is reported, not fatal
            print(f"| - | {name} | skipped: {str(exc)[:80]} | | | |")
            continue
        steps = profile_for(name).total_steps
        for attack in ATTACKS:
            short, long = (1, 3) if name == "mask" else (3, 13)
            kw = {"reset_every": 1000, "interpreter_options": None} if name == "mask" and attack != "pgd" else {}
            kw.pop("interpreter_options", None)
            it = per_iteration(model, interp, attack, x, y, short, long, 1, **kw)
            print(f"| {attack} | {name} | {it:.3f} | {it / args.batch:.5f} | {steps} | "
                  f"{it * steps / args.batch:.2f} |")


if __name__ == "__main__":
    main()
