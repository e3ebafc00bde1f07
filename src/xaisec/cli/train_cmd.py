"""``xaisec train``: seeded, resumable CPU training with a progress bar; writes safetensors + a JSON card."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from xaisec.cli.common import device_name, finite_float, image_size, non_negative_int, positive_int, seed_int
from xaisec.models import MODELS

if TYPE_CHECKING:
    from xaisec.training import TrainConfig
    from xaisec.training.defenses import BatchLoss


def add_parser(p: argparse.ArgumentParser) -> None:
    trainable = [n for n, s in MODELS.items() if s.imagenet_arch is None]
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", choices=trainable, metavar="NAME",
                       help=f"a zoo model with its data set, one of: {', '.join(trainable)}")
    which.add_argument("--arch", default=None, metavar="ARCH",
                       help="an architecture trained on --data (class count, channels and size from the data): "
                            "resnet20, resnet32, resnet44, resnet56, vgg11_bn, densenet40, mobilenetv2, pneumonia_cnn, "
                            "torchvision:NAME or timm:NAME; writes OUT/model.safetensors + OUT/card.json")
    p.add_argument("--image-size", type=image_size, default=None, help="resize every image to S x S (centre crop)")
    p.add_argument("--resize-mode", default="crop", choices=("crop", "pad"), help="crop (default) or pad to S x S")
    p.add_argument("--split", type=finite_float(0, 1, low_open=True, high_open=True), default=0.8,
                   help="with --arch: the training fraction when the data has no test/ folder (seeded, stratified)")
    p.add_argument("--data", help="data set name or path (default: the model's data set from ../shared)")
    p.add_argument("--out", default=None, help="output folder (default: runs/train/<model>); rerun to resume")
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=finite_float(0, low_open=True), default=0.1,
                   help="peak learning rate of the one-cycle schedule (> 0)")
    p.add_argument("--weight-decay", type=finite_float(0), default=5e-4, help="(>= 0)")
    p.add_argument("--label-smoothing", type=finite_float(0, 1, high_open=True), default=0.0, help="in [0, 1)")
    p.add_argument("--crop-pad", type=non_negative_int, default=None,
                   help="random translation in pixels (default 4; 2 for 28px)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    p.add_argument("--class-weights", action="store_true", help="weight the loss by inverse class frequency")
    p.add_argument("--no-amp", action="store_true", help="train in float32 instead of bfloat16 autocast")
    p.add_argument("--init-weights", default=None,
                   help="fine-tune: start from these weights (.safetensors or checkpoint) instead of random ones")
    p.add_argument("--limit", type=positive_int, default=None, help="train on a seeded random sample of N images")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_name, default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--install", action="store_true",
                   help="also copy the weights and card into the package (maintainers: ships them)")
    add_defense_arguments(p)


def run(args: argparse.Namespace) -> int:

    from xaisec.models import spec
    from xaisec.models.weights import install_weights
    from xaisec.training import TrainConfig, train
    from xaisec.utils.checks import XaisecError

    if args.arch is not None:
        if getattr(args, "defense", None):
            raise XaisecError("--defense fine-tunes a zoo --model; it does not apply to --arch")
        if not args.data:
            raise XaisecError("--arch needs --data FOLDER (an image folder <class>/<image>, or train/ and test/)")
        if args.out is None:
            raise XaisecError("--arch needs --out DIR (the model folder: model.safetensors + card.json)")
        size = args.image_size or 32
        small = size <= 28
    else:
        s = spec(args.model)
        small = s.input_size[-1] <= 28
    cfg = TrainConfig(
        model=args.model or args.arch, arch=args.arch, image_size=args.image_size,
        resize_mode=args.resize_mode, split=args.split,
        data=args.data, out=args.out or f"runs/train/{args.model}", epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        crop_pad=args.crop_pad if args.crop_pad is not None else (2 if small else 4) if args.arch is None
        else max(1, round(size / 8)),
        flip=not args.no_flip, class_weights=args.class_weights, amp=not args.no_amp, seed=args.seed,
        limit=args.limit, device=args.device, init_weights=args.init_weights,
    )
    cfg, batch_loss = defense_from_args(args, cfg)
    res = train(cfg, progress=not args.quiet, batch_loss=batch_loss)
    print(f"{args.model or args.arch}: test accuracy {res.accuracy:.4f}")
    print(f"weights: {res.weights}\ncard: {res.card}")
    if args.install:
        print(f"installed into the package: {', '.join(str(p) for p in install_weights(res.weights, res.card))}")
    return 0


# ---- training-time defenses (issue 24): one argument group -------------------------------------------------
def add_defense_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("defenses", "fine-tune with a training-time defense (default: start from the shipped "
                             "weights of --model, or --init-weights)")
    g.add_argument("--defense", default=None, help="adversarial or interpretation-robust")
    g.add_argument("--attack", default="pgd", help="adversarial: the attack making the examples (pgd)")
    g.add_argument("--eps", default="8/255", help="L-inf budget, e.g. 8/255 (adversarial, interpretation-robust)")
    g.add_argument("--alpha", default=None, help="step of the inner PGD (adversarial: 2/255; robust: 2.5 eps/steps)")
    g.add_argument("--steps", default=None,
                   help="adversarial: PGD iteration counts, one copy each (5,10,15); robust: inner steps (3)")
    g.add_argument("--interpreter", default="cam", help="interpretation-robust: a differentiable interpreter (cam)")
    g.add_argument("--gamma", type=float, default=0.01, help="interpretation-robust: weight of the discrepancy")
    g.add_argument("--ramp", type=float, default=0.3, help="interpretation-robust: eps ramp, fraction of the run")
    g.add_argument("--name", default=None, help="name of the written weights/card (default: <model>_<defense>)")


def defense_from_args(args: argparse.Namespace, cfg: TrainConfig) -> tuple[TrainConfig, BatchLoss | None]:
    """The :class:`~xaisec.training.defenses.BatchLoss` named by ``--defense`` and the config to fine-tune with."""
    import dataclasses

    from xaisec.training.defenses import build_defense, parse_fraction

    name = getattr(args, "defense", None)
    if not name:
        return (dataclasses.replace(cfg, name=args.name) if getattr(args, "name", None) else cfg), None
    eps = parse_fraction(args.eps)
    if name == "adversarial":
        steps = tuple(int(s) for s in str(args.steps or "5,10,15").split(","))
        opts = {"attack": args.attack, "eps": eps, "steps": steps}
        if args.alpha is not None:
            opts["alpha"] = parse_fraction(args.alpha)
        suffix = "at"
    elif name == "interpretation-robust":
        from xaisec.interpreters import get as get_interpreter

        interp = args.interpreter
        opts = {"interpreter": lambda m: get_interpreter(interp, m), "interpreter_name": interp, "gamma": args.gamma,
                "eps": eps, "steps": int(args.steps or 3), "ramp": args.ramp}
        if args.alpha is not None:
            opts["alpha"] = parse_fraction(args.alpha)
        suffix = "introbust"
    else:
        build_defense(name)  # the unknown-defense error, listing the known ones
        raise AssertionError
    defense = build_defense(name, **opts)
    cfg = dataclasses.replace(cfg, init_weights=cfg.init_weights or "shipped",
                              name=args.name or f"{cfg.model}_{suffix}")
    if args.out is None:
        cfg = dataclasses.replace(cfg, out=f"runs/train/{cfg.name}")
    return cfg, defense
