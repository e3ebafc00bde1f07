"""``xaisec demo``: plain PGD next to ADV^2 against Grad-CAM on the shipped ResNet-20, over the 20 bundled
CIFAR-10 sample images; one HTML report shows both side by side."""

from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="cifar10_resnet20")
    p.add_argument("--interpreter", default="gradcam")
    p.add_argument("--samples", default="cifar10", help="bundled sample set (cifar10, cifar100, imagenet)")
    p.add_argument("--steps-scale", type=float, default=0.25,
                   help="fraction of the paper's step counts (0.25: 100 warm-start + 300 joint steps for Grad-CAM)")
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from xaisec.data import samples
    from xaisec.experiments import attack_record, run_attack
    from xaisec.interpreters import get as get_interpreter
    from xaisec.models import load
    from xaisec.reports.attack_report import attack_report
    from xaisec.utils.io import atomic_write_json
    from xaisec.utils.seed import seed_everything

    seed_everything(args.seed)
    t0 = time.time()
    model = load(args.model, device=args.device)
    data = samples(args.samples)
    x, y = data.float_images(model.device), data.labels.to(model.device)
    with torch.no_grad():
        clean_acc = float((model(x).argmax(1) == y).float().mean())
    interpreter = get_interpreter(args.interpreter, model)
    runs = []
    out = Path(args.out)
    for attack in ("pgd", "adv2"):
        res = run_attack(model, interpreter, attack, x, y, batch_size=len(x), seed=args.seed,
                         progress=not args.quiet, steps_scale=args.steps_scale)
        runs.append((f"{attack} (pgd framework)", res))
        atomic_write_json(out / f"{attack}.json", attack_record(
            res, config={"model": args.model, "data": data.name, "steps_scale": args.steps_scale}, seed=args.seed,
            class_name=model.class_name))
    report = attack_report(
        runs, out / "report.html", title=f"xaisec demo: PGD vs ADV^2 against {args.interpreter} on {args.model}",
        class_name=model.class_name,
        meta={"images": f"{len(x)} bundled {args.samples} samples (clean accuracy {clean_acc * 100:.0f}%)",
              "eps": "8/255", "target class": "random other class", "seed": args.seed},
    )
    print(f"{args.model} + {args.interpreter} on {len(x)} {args.samples} sample images ({time.time() - t0:.0f} s):")
    print("| attack | success | IoU to benign map | L1 to benign map | noise rate |")
    print("|---|---|---|---|---|")
    for label, res in runs:
        s = res.summary()
        print(f"| {label} | {s['success'] * 100:.0f}% | {s['iou']:.3f} | {s['l1']:.4f} | {s['noise_rate']:.4f} |")
    print(f"report: {report.resolve()}")
    return 0
