"""``xaisec demo``: the shipped default model on the bundled sample images, written as an HTML page."""

from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="cifar10_resnet20")
    p.add_argument("--samples", default="cifar10", help="bundled sample set (cifar10, cifar100, imagenet)")
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from xaisec.reports.predictions import prediction_report

    path, acc = prediction_report(args.model, args.samples, args.out, seed=args.seed)
    print(f"{args.model} on the bundled {args.samples} samples: accuracy {acc * 100:.1f}%")
    print(f"report: {path}")
    return 0
