"""How stable is an interpreter's map under perturbations that do not change the class?

For seeded, correctly classified CIFAR-10 test images and the shipped ResNet-20, the benign map is compared
(IoU of the top 20% of pixels, L1) with the map of the same image plus random +-eps sign noise, for each
eps, on the images whose class the noise leaves unchanged. This is the floor a joint attack works against:
an interpreter whose maps move this much under random noise cannot be held at the benign map by a
gradient attack that has to move the image at least as far. MASK (100 iterations, as in the reproduction
grid) is the interpreter the question is about; the others are for comparison.

    python benchmarks/mask_stability.py [--n 32] [--eps 2,8] [--interpreters mask,gradcam,grad,rts]
        [--mask-options '{"lr": 0.03}' --mask-options '{"temperature": 1}' ...]

Each ``--mask-options`` JSON object adds a MASK row with those interpreter keyword arguments (on top of
``--mask-iterations``), to compare settings: is any MASK configuration stable on 32 x 32 images?
"""

from __future__ import annotations

import argparse
import json

import torch
from _common import resnet20

from xaisec.data import load as load_data
from xaisec.experiments import correctly_classified
from xaisec.interpreters import get as get_interpreter
from xaisec.metrics import map_iou, map_l1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--eps", default="2,8", help="noise amplitudes in 1/255 units, comma-separated")
    ap.add_argument("--interpreters", default="mask,gradcam,grad,rts")
    ap.add_argument("--mask-iterations", type=int, default=100)
    ap.add_argument("--mask-options", action="append", default=[], type=json.loads,
                    help="JSON keyword arguments of an extra MASK row (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model, source = resnet20()
    ds = correctly_classified(model, load_data("cifar10", "test"), args.n, seed=args.seed)
    x, y = ds.float_images(model.device), ds.labels.to(model.device)
    print(f"cifar10_resnet20 ({source}), {len(ds)} correctly classified test images")
    gen = torch.Generator().manual_seed(args.seed)
    noisy = {}
    for e in (float(v) for v in args.eps.split(",")):
        sign = torch.randint(0, 2, x.shape, generator=gen).to(x.device, x.dtype) * 2 - 1
        xn = (x + sign * e / 255).clamp(0, 1)
        with torch.no_grad():
            keep = model(xn).argmax(1) == y
        noisy[e] = (xn, keep)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    print("| interpreter | noise | same class | IoU to the benign map | L1 to the benign map |")
    print("|---|---|---:|---:|---:|")
    # (row label, interpreter, keyword arguments)
    rows_to_run = [(name, name, {"iterations": args.mask_iterations} if name == "mask" else {})
                   for name in args.interpreters.split(",")]
    rows_to_run += [(f"mask {json.dumps(extra)}", "mask", {"iterations": args.mask_iterations, **extra})
                    for extra in args.mask_options]
    for name, interpreter, opts in rows_to_run:
        g = get_interpreter(interpreter, model, **opts)
        benign = g(x, y)
        rows[name] = {}
        for e, (xn, keep) in noisy.items():
            maps = g(xn, y)
            iou, l1 = map_iou(maps, benign)[keep].mean(), map_l1(maps, benign)[keep].mean()
            rows[name][f"{e:g}/255"] = {"same_class": float(keep.float().mean()), "iou": float(iou), "l1": float(l1)}
            print(f"| {name} | +-{e:g}/255 | {float(keep.float().mean()):.0%} | {float(iou):.3f} | {float(l1):.3f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
