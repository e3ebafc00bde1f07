"""``xaisec train-rts``: train the real-time saliency (RTS) masking network for a classifier on the CPU."""

from __future__ import annotations

import argparse

from xaisec.models import MODELS


def add_parser(p: argparse.ArgumentParser) -> None:
    trainable = [n for n, s in MODELS.items() if s.imagenet_arch is None]
    p.add_argument("--model", required=True, choices=trainable, metavar="NAME",
                   help=f"the classifier to explain, one of: {', '.join(trainable)}")
    p.add_argument("--weights", default=None,
                   help="the classifier's weights (.safetensors or torch checkpoint; default: the shipped ones)")
    p.add_argument("--data", help="data set name or path (default: the model's data set from ../shared)")
    p.add_argument("--out", default=None, help="output folder (default: runs/train-rts/<model>); rerun to resume")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine decay to lr/100)")
    p.add_argument("--fake-prob", type=float, default=0.3,
                   help="fraction of samples trained with a random wrong class (their mask should be empty)")
    p.add_argument("--width", type=int, default=16, help="channels of the network's full-resolution scale")
    p.add_argument("--limit", type=int, default=None, help="use only a seeded random subset of N training images")
    p.add_argument("--no-amp", action="store_true", help="train in float32 instead of bfloat16 autocast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--install", action="store_true",
                   help="also copy the weights and card into the package (maintainers: ships them)")


def run(args: argparse.Namespace) -> int:

    import torch

    from xaisec.interpreters.rts import RTSObjective, train_rts
    from xaisec.models import load, spec
    from xaisec.models.weights import install_weights

    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    s = spec(args.model)
    classifier = load(args.model, weights=args.weights, device=args.device)
    res = train_rts(
        classifier, args.data or s.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, out=args.out or f"runs/train-rts/{args.model}", progress=not args.quiet,
        objective=RTSObjective(fake_prob=args.fake_prob), limit=args.limit, width=args.width,
        amp=not args.no_amp, name=args.model, classifier_weights=args.weights,
    )
    m = res.metrics
    if m:
        print(f"rts {args.model}: mean mask area {m['area']:.3f} (wrong class {m['area_fake_class']:.3f}); "
              f"classifier accuracy clean {m['accuracy_clean']:.4f}, kept region {m['accuracy_preserved']:.4f}, "
              f"region removed {m['accuracy_destroyed']:.4f}")
    print(f"weights: {res.weights}\ncard: {res.card}")
    if args.install:
        print(f"installed into the package: {', '.join(str(p) for p in install_weights(res.weights, res.card))}")
    return 0
