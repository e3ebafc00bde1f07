"""Universal plain patch: xaisec vs the Adversarial Robustness Toolbox's AdversarialPatchPyTorch, in one run.

Same model (the shipped ResNet-20), same training images, same target class, same square patch at the same
place (8 px flush top-right on 32 px), same optimiser (signed steps of the same size, clamped to [0, 1], one
step per batch of the same size) and the same number of passes over the data (ART's ``max_iter``). ART gets no
random rotation or scaling (``patch_location`` fixes the place). Both patches are then scored by the same code
(:func:`xaisec.universal.patch.evaluate_universal_patch`) on the same held-out images, target-class images left
out. Prints both success rates, wall times (training only) and the ratio.

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/patch.py --train 1000 --test 1000 --epochs 5

Needs ``adversarial-robustness-toolbox`` (``.venv/bin/pip install -c constraints.txt adversarial-robustness-toolbox``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch

from xaisec._compat.torchvision import import_torchvision
from xaisec.data import load as load_data
from xaisec.models import load
from xaisec.universal.patch import UniversalPatch, evaluate_universal_patch, train_universal_patch

log = logging.getLogger("benchmarks.patch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=1000, help="training images (CIFAR-10 train split)")
    ap.add_argument("--test", type=int, default=1000, help="held-out images (CIFAR-10 test split)")
    ap.add_argument("--epochs", type=int, default=5, help="passes over the training images (ART max_iter)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--step", type=float, default=0.03, help="signed step in [0, 1] pixel units (ART pgd lr)")
    ap.add_argument("--size", type=float, default=0.25, help="patch side / image side")
    ap.add_argument("--target", type=int, default=None, help="target class (default: seeded random)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-split", default="train", choices=["train", "test"],
                    help="train on the train split, or on a part of the test split disjoint from the scored one")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)

    model = load("cifar10_resnet20", device="cpu")
    if args.train_split == "test":  # disjoint random parts of the test split: one split to decode
        pool = load_data("cifar10", "test")
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(args.seed))
        train, test = pool.subset(order[:args.train]), pool.subset(order[args.train:args.train + args.test])
    else:
        train = load_data("cifar10", "train").sample(args.train, seed=args.seed)
        test = load_data("cifar10", "test").sample(args.test, seed=args.seed + 1)
    target = args.target if args.target is not None else int(torch.randint(0, 10, (1,),
                                                              generator=torch.Generator().manual_seed(args.seed)))
    side = round(args.size * 32)

    # -- xaisec ------------------------------------------------------------------------------------------------
    t0, c0 = time.perf_counter(), time.process_time()
    ours = train_universal_patch(model, train, target_class=target, size=args.size, ratio=1.0, position="top-right",
                                 map_mode="none", epochs=args.epochs, batch_size=args.batch_size, step_size=args.step,
                                 final_step=1.0, init="gray", seed=args.seed)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0

    # -- ART ---------------------------------------------------------------------------------------------------
    import_torchvision()
    from art.attacks.evasion import AdversarialPatchPyTorch
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(3, 32, 32), nb_classes=10,
                            clip_values=(0.0, 1.0), device_type="cpu")
    x_np = train.float_images("cpu").numpy().astype(np.float32)
    y_np = np.eye(10, dtype=np.float32)[np.full(len(train), target)]
    art = AdversarialPatchPyTorch(clf, rotation_max=0.0, scale_min=0.999, scale_max=1.0, learning_rate=args.step,
                                  max_iter=args.epochs, batch_size=args.batch_size, patch_shape=(3, side, side),
                                  patch_location=(32 - side, 0), patch_type="square", optimizer="pgd",
                                  targeted=True, verbose=False)
    art._patch.data.fill_(0.5)  # the same grey start as xaisec's init="gray"
    t0, c0 = time.perf_counter(), time.process_time()
    art_patch, _ = art.generate(x=x_np, y=y_np)
    t_art, c_art = time.perf_counter() - t0, time.process_time() - c0
    theirs = UniversalPatch(content=torch.from_numpy(art_patch).float(), size=args.size, ratio=1.0,
                            position="top-right", target_class=target, map_mode="none")

    rows = {}
    for name, patch, secs, cpu in (("xaisec", ours, t_ours, c_ours), ("ART", theirs, t_art, c_art)):
        res = evaluate_universal_patch(model, patch, test, interpreter="gradcam")
        rows[name] = {"success": float(res.success.float().mean()),
                      "patch_mass": float(res.metrics["patch_mass"].mean()), "train_seconds": secs,
                      "train_cpu_seconds": cpu, "n_test": len(res)}
    ratio = t_art / max(t_ours, 1e-9)
    cpu_ratio = c_art / max(c_ours, 1e-9)
    print(f"universal plain patch, {side}x{side} px top-right, target class {target}, {args.train} train / "
          f"{len(test)} test images ({rows['xaisec']['n_test']} not of the target class), {args.epochs} epochs of "
          f"batch {args.batch_size}, signed step {args.step}")
    print("| library | targeted success (test) | Grad-CAM mass on patch | training wall (s) | training CPU (s) |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['success'] * 100:.1f}% | {r['patch_mass']:.3f} | {r['train_seconds']:.1f} "
              f"| {r['train_cpu_seconds']:.1f} |")
    print(f"ART / xaisec: wall time {ratio:.2f}x, CPU time {cpu_ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "target": target, "rows": rows, "time_ratio": ratio,
                       "cpu_time_ratio": cpu_ratio}, f, indent=2)


if __name__ == "__main__":
    main()
