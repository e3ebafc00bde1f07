"""Faithfulness of the interpreters on the shipped ResNet-20: deletion and insertion AUC (Petsiuk et al.)
on seeded CIFAR-10 test images, against two reference maps: uniform random noise and a centred Gaussian.

Deletion: the most important pixels are replaced first by a blurred copy of the image (the primary
column) and, as RISE does, by black (lower AUC = more faithful). Insertion: they are restored first onto
the blurred copy (higher AUC = more faithful). Target: the true class of correctly classified images.
Pixel-wise deletion to black is reported but not used for the verdict: on 32 x 32 images, black
salt-and-pepper holes are far outside the training distribution and destroy the class fastest when
scattered, so a uniformly random map "wins" it (AUC 0.16 vs 0.23 for Grad-CAM); deleting onto the
blurred copy removes information without that artefact. The verdict line says whether each
interpreter beats both reference maps on both blurred-baseline AUCs.

    python benchmarks/faithfulness.py [--n 500] [--interpreters rts,mask,gradcam,grad] [--steps 32]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import resnet20

from xaisec.data import load as load_data
from xaisec.experiments import correctly_classified
from xaisec.interpreters import get as get_interpreter
from xaisec.metrics import deletion_auc, insertion_auc


def reference_maps(n: int, size: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    gauss = torch.exp(-(coords.view(-1, 1) ** 2 + coords.view(1, -1) ** 2) / (2 * (size / 4) ** 2))
    return {"random": torch.rand(n, size, size, generator=g), "centred gaussian": gauss.expand(n, -1, -1).clone()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--interpreters", default="rts,mask,gradcam,grad")
    ap.add_argument("--steps", type=int, default=32, help="points on the deletion / insertion curves")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()
    model, source = resnet20()
    ds = correctly_classified(model, load_data("cifar10", "test"), args.n, seed=args.seed)
    x, y = ds.float_images(model.device), ds.labels.to(model.device)
    print(f"cifar10_resnet20 ({source}), {len(ds)} correctly classified test images, {args.steps} steps")
    maps = {k: v.to(model.device) for k, v in reference_maps(len(ds), x.shape[-1], args.seed).items()}
    seconds = {}
    for name in args.interpreters.split(","):
        g = get_interpreter(name, model)
        t0 = time.time()
        maps[name] = torch.cat([g(x[i:i + args.batch], y[i:i + args.batch]) for i in range(0, len(x), args.batch)])
        seconds[name] = time.time() - t0
    rows = {}
    print("| map | deletion AUC, blur (lower is better) | deletion AUC, black | insertion AUC (higher is better) "
          "| seconds for the maps |")
    print("|---|---|---|---|---|")
    for name, m in maps.items():
        d = float(deletion_auc(model, x, m, y, steps=args.steps, baseline="blur").mean())
        d0 = float(deletion_auc(model, x, m, y, steps=args.steps, baseline="zeros").mean())
        i = float(insertion_auc(model, x, m, y, steps=args.steps).mean())
        rows[name] = {"deletion": d, "deletion_black": d0, "insertion": i, "seconds": seconds.get(name, 0.0)}
        print(f"| {name} | {d:.4f} | {d0:.4f} | {i:.4f} | {seconds.get(name, 0):.1f} |")
    refs = ("random", "centred gaussian")
    for name in seconds:
        ok = all(rows[name]["deletion"] < rows[r]["deletion"] and rows[name]["insertion"] > rows[r]["insertion"]
                 for r in refs)
        print(f"{name}: {'beats' if ok else 'does NOT beat'} the random and centred Gaussian maps "
              "on deletion (blur) and insertion AUC")
    if args.json:
        from xaisec.utils.io import atomic_write_json

        atomic_write_json(args.json, {"n": len(ds), "steps": args.steps, "seed": args.seed, "results": rows})
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
