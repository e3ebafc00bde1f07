"""Draw the README's picture: benign image and Grad-CAM map, then plain PGD and ADV^2 with their maps.

``python scripts/readme_figure.py --out docs/img/attack.png`` (shipped ResNet-20, bundled CIFAR-10 samples,
steps x 0.25, seed 0; about 30 s on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from xaisec.attacks import get as get_attack
from xaisec.data import samples
from xaisec.interpreters import get as get_interpreter
from xaisec.models import load
from xaisec.reports.images import heatmap_overlay
from xaisec.utils.io import atomic_write_bytes
from xaisec.utils.seed import seed_everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img/attack.png")
    ap.add_argument("--images", default="0,3,6,11", help="indices of the bundled CIFAR-10 samples to show")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    seed_everything(args.seed)
    model = load("cifar10_resnet20")
    data = samples("cifar10")
    idx = torch.tensor([int(i) for i in args.images.split(",")])
    x, y = data.float_images(model.device)[idx], data.labels[idx].to(model.device)
    gradcam = get_interpreter("gradcam", model)
    results = {name: get_attack(name, model, gradcam, steps_scale=0.25, seed=args.seed)(x, y)
               for name in ("pgd", "adv2")}
    cols = ["image", "Grad-CAM", "PGD image", "its Grad-CAM", "ADV^2 image", "its Grad-CAM"]
    fig, axes = plt.subplots(len(idx), len(cols), figsize=(2 * len(cols), 2.1 * len(idx)))
    benign = results["adv2"].maps_benign
    names = model.classes
    for r in range(len(idx)):
        panels = [(x[r], f"{names[int(y[r])]}"), (heatmap_overlay(x[r], benign[r]), "benign map")]
        for name in ("pgd", "adv2"):
            res = results[name]
            pred = int(res.pred_adv[r])
            iou = float(res.metrics["iou"][r])
            panels += [(res.x_adv[r], f"-> {names[pred]}"), (heatmap_overlay(res.x_adv[r], res.maps_adv[r]),
                                                              f"IoU {iou:.2f}")]
        for c, (img, label) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(label, fontsize=9)
            if r == 0:
                ax.set_title(cols[c], fontsize=10)
    fig.suptitle("ResNet-20 + Grad-CAM, eps 8/255: PGD fools the classifier and moves the map; "
                 "ADV^2 fools it and keeps the map", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    atomic_write_bytes(Path(args.out), buf.getvalue())
    logging.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
