"""``xaisec attack``: attack a model + interpreter pair on real images; write results.json and report.html."""

from __future__ import annotations

import argparse

from xaisec.cli.common import parse_eps


def add_parser(p: argparse.ArgumentParser) -> None:
    from xaisec.attacks import FRAMEWORKS, describe
    from xaisec.attacks.targets import TARGET_MAPS
    from xaisec.interpreters import INTERPRETERS

    p.add_argument("--model", default="cifar10_resnet20", help="registered model (see `xaisec info models`)")
    p.add_argument("--weights", default=None, help="weights file instead of the shipped ones")
    p.add_argument("--interpreter", default="gradcam", choices=list(INTERPRETERS), metavar="NAME",
                   help=f"one of: {', '.join(INTERPRETERS)}")
    p.add_argument("--attack", default="adv2", choices=list(describe()), metavar="NAME",
                   help=f"one of: {', '.join(describe())}")
    p.add_argument("--framework", default=None, choices=list(FRAMEWORKS),
                   help="perturbation model of the joint attacks (default pgd)")
    p.add_argument("--target-map", default="benign", choices=list(TARGET_MAPS),
                   help="map the attack aims for: the benign map, a random patch, or another class's map")
    p.add_argument("--target-class", default="random",
                   help="'random' (another class), 'untargeted', or a class index")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", default=None, help="data set name or path (e.g. cifar10, a folder, a .tar)")
    src.add_argument("--samples", default=None, help="bundled sample images: cifar10, cifar100, imagenet")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=20, help="number of correctly classified images to attack")
    p.add_argument("--eps", type=parse_eps, default=8 / 255, help="L-inf budget, e.g. 8/255 or 0.031 (pgd)")
    p.add_argument("--alpha", type=parse_eps, default=1 / 255, help="PGD step, e.g. 1/255")
    p.add_argument("--steps-scale", type=float, default=1.0,
                   help="multiply the paper's step counts (e.g. 0.25 for quick runs on 32x32 images)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="output folder for results.json and report.html")


def run(args: argparse.Namespace) -> int:
    import logging
    import time
    from pathlib import Path

    from xaisec.data import load as load_data
    from xaisec.data import samples
    from xaisec.experiments import attack_record, correctly_classified, run_attack
    from xaisec.models import load, spec
    from xaisec.reports.attack_report import attack_report
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_write_json
    from xaisec.utils.seed import seed_everything

    log = logging.getLogger("xaisec.attack")
    seed_everything(args.seed)
    target_class: str | int = args.target_class
    if target_class not in ("random", "untargeted"):
        try:
            target_class = int(target_class)
        except ValueError as exc:
            raise XaisecError(
                f"--target-class must be random, untargeted or an int, got {args.target_class!r}"
            ) from exc
    model = load(args.model, weights=args.weights, device=args.device)
    data = samples(args.samples) if args.samples else load_data(args.data or spec(args.model).dataset, args.split)
    if tuple(data.images.shape[1:]) != tuple(model.input_size or data.images.shape[1:]):
        raise XaisecError(f"images are {tuple(data.images.shape[1:])} but {args.model} takes {model.input_size}")
    data = correctly_classified(model, data, args.n, seed=args.seed)
    x = data.float_images(model.device)
    log.info("attacking %d correctly classified images from %s", len(data), data.name)
    t0 = time.time()
    res = run_attack(model, args.interpreter, args.attack, x, data.labels.to(model.device), framework=args.framework,
                     batch_size=args.batch_size, seed=args.seed, progress=not args.quiet, eps=args.eps,
                     alpha=args.alpha, steps_scale=args.steps_scale, target_map=args.target_map,
                     target_class=target_class)
    out = Path(args.out)
    config = {"model": args.model, "weights": args.weights or "shipped", "data": data.name, "n": len(data),
              "steps_scale": args.steps_scale, "batch_size": args.batch_size}
    record = attack_record(res, config=config, seed=args.seed, class_name=model.class_name)
    atomic_write_json(out / "results.json", record)
    framework = args.framework or "pgd"
    title = f"{args.attack} ({framework}) vs {args.interpreter} on {args.model}"
    attack_report([(f"{args.attack}-{framework}", res)], out / "report.html", title=title,
                  class_name=model.class_name, meta={"data": data.name, "eps": f"{args.eps * 255:.1f}/255",
                                                     "seed": args.seed, "target map": args.target_map})
    m = record["mean"]
    print(f"{title}: {len(res)} images in {time.time() - t0:.1f} s")
    print("| success | confidence | L1 | L2 | IoU | noise rate | s/image |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {m['success'] * 100:.1f}% | {m['confidence']:.3f} | {m['l1']:.4f} | {m['l2']:.4f} | {m['iou']:.3f} "
          f"| {m['noise_rate']:.4f} | {m['seconds_per_image']:.3f} |")
    print(f"results: {out / 'results.json'}\nreport: {out / 'report.html'}")
    return 0
