"""``xaisec train``: seeded, resumable CPU training with a progress bar; writes safetensors + a JSON card."""

from __future__ import annotations

import argparse

from xaisec.models import MODELS


def add_parser(p: argparse.ArgumentParser) -> None:
    trainable = [n for n, s in MODELS.items() if s.imagenet_arch is None]
    p.add_argument("--model", required=True, choices=trainable, metavar="NAME", help=f"one of: {', '.join(trainable)}")
    p.add_argument("--data", help="data set name or path (default: the model's data set from ../shared)")
    p.add_argument("--out", default=None, help="output folder (default: runs/train/<model>); rerun to resume")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--crop-pad", type=int, default=None, help="random translation in pixels (default 4; 2 for 28px)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    p.add_argument("--class-weights", action="store_true", help="weight the loss by inverse class frequency")
    p.add_argument("--no-amp", action="store_true", help="train in float32 instead of bfloat16 autocast")
    p.add_argument("--init-weights", default=None,
                   help="fine-tune: start from these weights (.safetensors or checkpoint) instead of random ones")
    p.add_argument("--limit", type=int, default=None, help="train on a seeded random sample of N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--install", action="store_true",
                   help="also copy the weights and card into the package (maintainers: ships them)")


def run(args: argparse.Namespace) -> int:

    from xaisec.models import spec
    from xaisec.models.weights import install_weights
    from xaisec.training import TrainConfig, train

    s = spec(args.model)
    small = s.input_size[-1] <= 28
    cfg = TrainConfig(
        model=args.model, data=args.data, out=args.out or f"runs/train/{args.model}", epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        crop_pad=args.crop_pad if args.crop_pad is not None else (2 if small else 4),
        flip=not args.no_flip, class_weights=args.class_weights, amp=not args.no_amp, seed=args.seed,
        limit=args.limit, device=args.device, init_weights=args.init_weights,
    )
    res = train(cfg, progress=not args.quiet)
    print(f"{args.model}: test accuracy {res.accuracy:.4f}")
    print(f"weights: {res.weights}\ncard: {res.card}")
    if args.install:
        print(f"installed into the package: {', '.join(str(p) for p in install_weights(res.weights, res.card))}")
    return 0
