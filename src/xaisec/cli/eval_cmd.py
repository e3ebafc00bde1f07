"""``xaisec eval``: top-1 accuracy of a model on a data set split."""

from __future__ import annotations

import argparse
import json


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="cifar10_resnet20", help="registered model name (see `xaisec info`)")
    p.add_argument("--weights", default=None, help="weights file (.safetensors or torch checkpoint); default: shipped")
    p.add_argument("--data", default=None, help="data set name or path (default: the model's data set)")
    p.add_argument("--split", default="test", help="split folder or array prefix (default: test)")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate a seeded random sample of N images (class folders are sorted, so not the first N)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print a JSON object with key 'accuracy'")


def run(args: argparse.Namespace) -> int:
    import time

    from xaisec.data import load as load_data
    from xaisec.models import load, spec
    from xaisec.training.evaluate import accuracy
    from xaisec.utils.checks import XaisecError

    if args.limit is not None and args.limit < 1:
        raise XaisecError(f"--limit must be >= 1, got {args.limit}")
    model = load(args.model, weights=args.weights, device=args.device)
    data = load_data(args.data or spec(args.model).dataset, args.split)
    if args.limit is not None:
        data = data.sample(args.limit, seed=args.seed)
    if tuple(data.images.shape[1:]) != tuple(model.input_size or data.images.shape[1:]):
        raise XaisecError(f"data images are {tuple(data.images.shape[1:])} but {args.model} takes {model.input_size}")
    t0 = time.time()
    acc = accuracy(model, data, batch_size=args.batch_size, progress=not args.quiet and not args.json)
    result = {"model": args.model, "weights": args.weights or "shipped", "data": data.name, "images": len(data),
              "accuracy": round(acc, 6), "seconds": round(time.time() - t0, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model} on {data.name} ({len(data)} images): top-1 accuracy {acc * 100:.2f}%")
    return 0
