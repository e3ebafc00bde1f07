"""``xaisec eval``: top-1 accuracy of a model on a data set split."""

from __future__ import annotations

import argparse

from xaisec.cli.common import add_image_args, add_model_args, device_name, positive_int, seed_int


def add_parser(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    add_image_args(p)
    p.add_argument("--data", default=None,
                   help="data set name or path (default: the model's data set); folder class names are matched to "
                        "the model's class names, any subset of them")
    p.add_argument("--split", default="test",
                   help="split folder or array prefix (default: test), or a fraction such as 0.8: the held-out part "
                        "of a seeded split of a folder without one")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="evaluate a seeded random sample of N images (class folders are sorted, so not the first N)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the --limit sample")
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--device", type=device_name, default=None, help="cpu, cuda, cuda:N, mps (default: auto)")
    p.add_argument("--json", action="store_true", help="print a JSON object with key 'accuracy'")


def run(args: argparse.Namespace) -> int:
    import time

    from xaisec.cli.common import data_from_args, default_data, model_from_args
    from xaisec.training.evaluate import accuracy
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import to_json

    model = model_from_args(args)
    data = data_from_args(args, model, source=args.data or default_data(args.model))
    if len(data) == 0:
        raise XaisecError(f"{data.name}: no images in split {args.split!r}; check --data and --split")
    if args.limit is not None:
        data = data.sample(args.limit, seed=args.seed)
    if tuple(data.images.shape[1:]) != tuple(model.input_size or data.images.shape[1:]):
        raise XaisecError(f"data images are {tuple(data.images.shape[1:])} but {args.model} takes {model.input_size}")
    t0 = time.time()
    acc = accuracy(model, data, batch_size=args.batch_size, progress=not args.quiet and not args.json)
    result = {"model": args.model, "weights": args.weights or "shipped", "data": data.name, "images": len(data),
              "accuracy": round(acc, 6), "seconds": round(time.time() - t0, 2)}
    if args.json:
        print(to_json(result, indent=None, nan="error"))
    else:
        print(f"{args.model} on {data.name} ({len(data)} images): top-1 accuracy {acc * 100:.2f}%")
    return 0
