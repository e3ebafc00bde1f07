"""``xaisec universal``: train a universal perturbation (JUAP, GAP, UAP) or a universal adversarial patch
(``--method patch``), or evaluate a saved one on a model (``--apply``); write perturbation.safetensors (the
patch: patch.safetensors and its card patch.json), results.json and report.html. ``--model`` takes every model
spec of ``xaisec attack`` (zoo name, TorchScript file, factory with --weights, folder with a card...)."""

from __future__ import annotations

import argparse

from xaisec.cli.common import (
    add_image_args,
    add_model_args,
    device_name,
    finite_float,
    parse_eps,
    positive_int,
    seed_int,
)


def add_parser(p: argparse.ArgumentParser) -> None:
    from xaisec.interpreters import INTERPRETERS
    from xaisec.universal import GENERATORS, LOSSES, METHODS, NORMS

    p.add_argument("--method", default="juap", choices=(*METHODS, "patch"),
                   help="juap (generator + map term), gap, uap, or patch (a universal adversarial patch)")
    p.add_argument("--apply", default=None, metavar="FILE",
                   help="evaluate this saved perturbation.safetensors (or patch.safetensors) on --model instead of "
                        "training (transfer)")
    add_model_args(p)
    add_image_args(p)
    p.add_argument("--interpreter", default="cam", choices=list(INTERPRETERS), metavar="NAME",
                   help=f"attacked (juap) and measured interpreter: {', '.join(INTERPRETERS)}")
    p.add_argument("--generator", default="resnet", choices=GENERATORS, help="resnet (R-JUAP) or unet (U-JUAP)")
    p.add_argument("--norm", default="linf", choices=NORMS)
    p.add_argument("--eps", default=None,
                   help="budget in [0, 1] pixel units: linf e.g. 10/255 (default), l2 e.g. 1.12 (default)")
    p.add_argument("--loss", default="least_likely", choices=LOSSES)
    p.add_argument("--target-class", type=int, default=None,
                   help="class index for --loss targeted; patch: the class it sends images to (default: seeded random)")
    p.add_argument("--lam", type=finite_float(0), default=None, help="map-term weight (default 0.1; gap: 0)")
    p.add_argument("--steps", type=positive_int, default=1000, help="generator iterations")
    p.add_argument("--batch-size", type=positive_int, default=30)
    p.add_argument("--lr", type=finite_float(0, low_open=True), default=2e-4)
    p.add_argument("--ngf", type=positive_int, default=32, help="generator width")
    p.add_argument("--target-fooling", type=finite_float(0, 1), default=0.8, help="uap: stop at this fooling ratio")
    p.add_argument("--max-passes", type=positive_int, default=5, help="uap: passes over the training images")
    p.add_argument("--epochs", type=positive_int, default=10,
                   help="patch: passes over the training images (one signed step per batch)")
    p.add_argument("--train-data", default=None,
                   help="data set name or path (e.g. an image folder) for training (default: the model's data set)")
    p.add_argument("--train-split", default="train",
                   help="split folder, or a fraction such as 0.8: that part of a seeded split (the same fraction as "
                        "--test-split gives disjoint parts)")
    p.add_argument("--test-data", default=None, help="data set for evaluation (default: --train-data)")
    p.add_argument("--test-split", default="test", help="split folder, or a fraction: the rest of a seeded split")
    p.add_argument("--n-train", type=positive_int, default=5000)
    p.add_argument("--n-test", type=positive_int, default=2000)
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_name, default=None)
    p.add_argument("--out", required=True, help="output folder")
    from xaisec.cli.attack_cmd import add_patch_arguments

    add_patch_arguments(p, universal=True)


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


PATCH_FLAGS = ("patch_mode", "patch_size", "patch_ratio", "patch_position", "patch_step_size")


def _patch_options(args: argparse.Namespace) -> dict[str, object]:
    """train_universal_patch options of the --patch-* flags (map mode hide unless given)."""
    from xaisec.cli.attack_cmd import patch_options
    from xaisec.utils.checks import XaisecError

    if args.eps is not None:
        raise XaisecError("--eps does not apply to --method patch (the patch replaces its pixels); use --patch-size "
                          "and --patch-ratio")
    opts = patch_options(argparse.Namespace(**{k: getattr(args, k, None) for k in PATCH_FLAGS}))
    opts.setdefault("map_mode", "hide")
    return opts


def _is_patch_file(path: str) -> bool:
    """Whether ``path`` is a universal patch file (safetensors with the patch format in its header)."""
    import json
    from pathlib import Path

    from xaisec.universal.patch import FORMAT

    try:
        with Path(path).open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n)) if 0 < n < 10**8 else {}
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and (header.get("__metadata__") or {}).get("format") == FORMAT


def _run_patch(args: argparse.Namespace, model, test, read_train, log) -> int:
    """``--method patch`` (train) or ``--apply patch.safetensors``: the universal adversarial patch."""
    import time
    from pathlib import Path

    from xaisec.experiments.records import attack_record, versions
    from xaisec.reports.attack_report import attack_report_html
    from xaisec.universal.patch import UniversalPatch, evaluate_universal_patch, train_universal_patch
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_replace_together, to_json

    out = Path(args.out)
    t0 = time.time()
    blobs: dict[Path, bytes] = {}
    if args.apply:
        patch = UniversalPatch.load(args.apply)
        path, mode = Path(args.apply), "apply"
    else:
        opts = _patch_options(args)
        data = read_train()
        log.info("training a universal patch (%s) on %d images of %s", opts["map_mode"], len(data), data.name)
        patch = train_universal_patch(model, data, interpreter=args.interpreter, target_class=args.target_class,
                                      epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                      progress=not args.quiet, **opts)
        path, mode = out / "patch.safetensors", "train"
    if patch.content.shape[0] != test.images.shape[1]:
        raise XaisecError(f"{path}: the patch has {patch.content.shape[0]} channels but the images have "
                          f"{test.images.shape[1]}")
    res = evaluate_universal_patch(model, patch, test, interpreter=args.interpreter, batch_size=args.batch_size,
                                   seed=args.seed)
    name = getattr(model, "class_name", str)
    config = {"model": args.model, "weights": args.weights or "shipped", "data": test.name, "n": len(res)}
    rec = attack_record(res, config=config, seed=args.seed, class_name=name)
    record = {
        "mode": mode, "method": "patch", "model": args.model, "weights": args.weights or "shipped",
        "interpreter": args.interpreter, "perturbation": str(path), "map_mode": patch.map_mode, "size": patch.size,
        "ratio": patch.ratio, "position": patch.card()["position"], "target_class": patch.target_class,
        "target_name": name(patch.target_class), "threat_model": rec["threat_model"], "test_data": test.name,
        "n_test": len(res), "seed": args.seed, "seconds": time.time() - t0, "config": patch.config,
        "history": patch.history, "mean": rec["mean"], "per_image": rec["images"], "versions": versions(),
    }
    title = (f"universal patch ({patch.config.get('interpreter', '?')}, {patch.map_mode}) applied to {args.model}"
             if args.apply else f"universal patch ({patch.map_mode}) vs {args.interpreter} on {args.model}")
    html = attack_report_html([(f"universal patch ({patch.map_mode})", res)], title=title, class_name=name,
                              meta={"target class": name(patch.target_class), "size": f"{patch.size:.3g}",
                                    "ratio": f"{patch.ratio:.3g}", "position": str(record["position"]),
                                    "seed": args.seed, "test images": len(res), "data": test.name})
    if mode == "train":
        patch.save(path)  # patch.safetensors and its card patch.json
    blobs[out / "results.json"] = (to_json(record) + "\n").encode()
    blobs[out / "report.html"] = html.encode()
    atomic_replace_together(blobs)
    m = rec["mean"]
    print(f"{title}: {len(res)} test images (target class {name(patch.target_class)} left out), "
          f"{record['seconds']:.1f} s")
    print("| targeted success | patch mass | off-patch fidelity | L1 | IoU |")
    print("|---|---|---|---|---|")
    print(f"| {m['success'] * 100:.1f}% | {m.get('patch_mass', float('nan')):.3f} | "
          f"{m.get('fidelity_off_patch', float('nan')):.3f} | {m['l1']:.4f} | {m['iou']:.3f} |")
    print(f"patch: {path}\nresults: {out / 'results.json'}\nreport: {out / 'report.html'}")
    return 0


def run(args: argparse.Namespace) -> int:
    import logging
    import time
    from pathlib import Path

    from xaisec.cli.common import data_from_args, default_data, model_from_args
    from xaisec.experiments.records import versions
    from xaisec.universal import evaluate, load, train
    from xaisec.universal.report import universal_report
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_write_json
    from xaisec.utils.seed import seed_everything

    log = logging.getLogger("xaisec.universal")
    seed_everything(args.seed)
    patch = args.method == "patch" or bool(args.apply and _is_patch_file(args.apply))
    given = [f"--{k.replace('_', '-')}" for k in PATCH_FLAGS if getattr(args, k, None) is not None]
    if given and not patch:
        raise XaisecError(f"{', '.join(given)} apply to --method patch only")
    eps = None if patch else _eps(args)
    out = Path(args.out)
    model = model_from_args(args)
    shape = tuple(model.input_size) if getattr(model, "input_size", None) else None

    def read(source: str, split: str, part: str):
        return data_from_args(argparse.Namespace(**{**vars(args), "split": split}), model, source=source, part=part)

    def read_train():
        src = args.train_data or default_data(args.model)
        data = read(src, args.train_split, "train").sample(args.n_train, seed=args.seed)
        if len(data) == 0:
            raise XaisecError(f"no training images in {src} ({args.train_split})")
        return data

    test_src = args.test_data or args.train_data or default_data(args.model)
    test = read(test_src, args.test_split, "test").sample(args.n_test, seed=args.seed + 1)
    if shape and tuple(test.images.shape[1:]) != shape:
        raise XaisecError(f"test images are {tuple(test.images.shape[1:])} but {args.model} takes {shape}")
    if patch:
        return _run_patch(args, model, test, read_train, log)
    t0 = time.time()
    if args.apply:
        uap = load(args.apply, shape=shape)
        mode = "apply"
    else:
        data = read_train()
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
