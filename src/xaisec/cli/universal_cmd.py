"""``xaisec universal``: train a universal perturbation (JUAP, GAP, UAP) or evaluate a saved one on a model;
write perturbation.safetensors, results.json and report.html."""

from __future__ import annotations

import argparse

from xaisec.cli.common import device_name, finite_float, parse_eps, positive_int, seed_int


def add_parser(p: argparse.ArgumentParser) -> None:
    from xaisec.interpreters import INTERPRETERS
    from xaisec.universal import GENERATORS, LOSSES, METHODS, NORMS

    p.add_argument("--method", default="juap", choices=METHODS, help="juap (generator + map term), gap, uap")
    p.add_argument("--apply", default=None, metavar="FILE",
                   help="evaluate this saved perturbation.safetensors on --model instead of training (transfer)")
    p.add_argument("--model", default="cifar10_resnet20", help="zoo model, model folder, TorchScript file...")
    p.add_argument("--weights", default=None, help="weights file instead of the shipped ones")
    p.add_argument("--interpreter", default="cam", choices=list(INTERPRETERS), metavar="NAME",
                   help=f"attacked (juap) and measured interpreter: {', '.join(INTERPRETERS)}")
    p.add_argument("--generator", default="resnet", choices=GENERATORS, help="resnet (R-JUAP) or unet (U-JUAP)")
    p.add_argument("--norm", default="linf", choices=NORMS)
    p.add_argument("--eps", default=None,
                   help="budget in [0, 1] pixel units: linf e.g. 10/255 (default), l2 e.g. 1.12 (default)")
    p.add_argument("--loss", default="least_likely", choices=LOSSES)
    p.add_argument("--target-class", type=int, default=None, help="class index for --loss targeted")
    p.add_argument("--lam", type=finite_float(0), default=None, help="map-term weight (default 0.1; gap: 0)")
    p.add_argument("--steps", type=positive_int, default=1000, help="generator iterations")
    p.add_argument("--batch-size", type=positive_int, default=30)
    p.add_argument("--lr", type=finite_float(0, low_open=True), default=2e-4)
    p.add_argument("--ngf", type=positive_int, default=32, help="generator width")
    p.add_argument("--target-fooling", type=finite_float(0, 1), default=0.8, help="uap: stop at this fooling ratio")
    p.add_argument("--max-passes", type=positive_int, default=5, help="uap: passes over the training images")
    p.add_argument("--train-data", default="cifar10", help="data set name or path for training")
    p.add_argument("--train-split", default="train")
    p.add_argument("--test-data", default=None, help="data set for evaluation (default: --train-data)")
    p.add_argument("--test-split", default="test")
    p.add_argument("--n-train", type=positive_int, default=5000)
    p.add_argument("--n-test", type=positive_int, default=2000)
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_name, default=None)
    p.add_argument("--out", required=True, help="output folder")


def _eps(args: argparse.Namespace) -> float:
    from xaisec.utils.checks import XaisecError

    if args.eps is None:
        return 10 / 255 if args.norm == "linf" else 2000 / 7 / 255
    try:
        if args.norm == "linf":
            return parse_eps(args.eps)
        if "/" in args.eps:
            num, den = args.eps.split("/", 1)
            return finite_float(0, low_open=True)(str(float(num) / float(den)))
        return finite_float(0, low_open=True)(args.eps)
    except (argparse.ArgumentTypeError, ValueError, ZeroDivisionError) as exc:
        raise XaisecError(f"--eps {args.eps!r}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    import logging
    import time
    from pathlib import Path

    from xaisec.data import load as load_data
    from xaisec.experiments.records import versions
    from xaisec.models.loading import load_model_spec
    from xaisec.universal import evaluate, load, train
    from xaisec.universal.report import universal_report
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_write_json
    from xaisec.utils.seed import seed_everything

    log = logging.getLogger("xaisec.universal")
    seed_everything(args.seed)
    eps = _eps(args)
    out = Path(args.out)
    model = load_model_spec(args.model, weights=args.weights, device=args.device)
    shape = tuple(model.input_size) if getattr(model, "input_size", None) else None
    test = load_data(args.test_data or args.train_data, args.test_split).sample(args.n_test, seed=args.seed + 1)
    if shape and tuple(test.images.shape[1:]) != shape:
        raise XaisecError(f"test images are {tuple(test.images.shape[1:])} but {args.model} takes {shape}")
    t0 = time.time()
    if args.apply:
        uap = load(args.apply, shape=shape)
        mode = "apply"
    else:
        data = load_data(args.train_data, args.train_split).sample(args.n_train, seed=args.seed)
        if len(data) == 0:
            raise XaisecError(f"no training images in {args.train_data} ({args.train_split})")
        extra = {"target_fooling": args.target_fooling, "max_passes": args.max_passes} if args.method == "uap" else {}
        log.info("training %s on %d images of %s", args.method, len(data), data.name)
        uap = train(args.method, model, args.interpreter, data, generator=args.generator, norm=args.norm, eps=eps,
                    loss=args.loss, target_class=args.target_class, lam=args.lam, steps=args.steps,
                    batch_size=args.batch_size, lr=args.lr, ngf=args.ngf, seed=args.seed, progress=not args.quiet,
                    **extra)
        uap.save(out / "perturbation.safetensors")
        mode = "train"
    ev = evaluate(uap, model, args.interpreter, test, keep=24)
    summary = ev.summary()
    record = {
        "mode": mode, "method": uap.method, "model": args.model, "weights": args.weights or "shipped",
        "interpreter": args.interpreter, "perturbation": str(args.apply or out / "perturbation.safetensors"),
        "norm": uap.config.get("norm", args.norm), "eps": uap.config.get("eps", eps),
        "linf": float(uap.perturbation.abs().max()), "l2": float(uap.perturbation.norm()),
        "test_data": test.name, "n_test": len(test), "seed": args.seed, "seconds": time.time() - t0,
        "config": uap.config, "history": uap.history, "mean": summary, "per_image": ev.records(),
        "versions": versions(),
    }
    atomic_write_json(out / "results.json", record)
    name = getattr(model, "class_name", str)
    title = (f"{uap.method} ({uap.config.get('model', '?')}) applied to {args.model}" if args.apply else
             f"{uap.method} vs {args.interpreter} on {args.model}")
    universal_report(uap, ev, out / "report.html", title=title, class_name=name,
                     meta={"norm": record["norm"], "eps": f"{record['eps']:.4g}", "seed": args.seed,
                           "test images": len(test)})
    print(f"{title}: {len(test)} test images, {record['seconds']:.1f} s")
    print("| fooling ratio | L1 | IoU top-20% | IoU >= 0.5 | L-inf | L2 |")
    print("|---|---|---|---|---|---|")
    print(f"| {summary['fooling_ratio'] * 100:.1f}% | {summary['l1']:.4f} | {summary['iou']:.3f} | "
          f"{summary['iou_threshold']:.3f} | {record['linf'] * 255:.2f}/255 | {record['l2']:.3f} |")
    print(f"results: {out / 'results.json'}\nreport: {out / 'report.html'}")
    return 0
