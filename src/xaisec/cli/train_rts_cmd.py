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
    g = p.add_argument_group("defenses", "AID: adversarial interpretation distillation (fine-tunes an RTS network)")
    g.add_argument("--defense", default=None, help="aid: alternate the RTS loss and -||g(x) - g(ADV^2(x))||_1")
    g.add_argument("--init", default=None,
                   help="start from this rts_*.safetensors (default with --defense aid: the shipped RTS of --model)")
    g.add_argument("--aid-steps", type=int, default=5, help="ADV^2 iterations against the current network")
    g.add_argument("--aid-eps", default="8/255", help="ADV^2 L-inf budget")
    g.add_argument("--aid-lam", type=float, default=10.0, help="ADV^2 map-term weight")
    g.add_argument("--name", default=None, help="name in the written files (default: <model>, aid: <model>_aid)")


def run(args: argparse.Namespace) -> int:

    import torch

    from xaisec.interpreters.rts import rts_weights_path
    from xaisec.models import load, spec
    from xaisec.models.weights import install_weights
    from xaisec.training.defenses import parse_fraction
    from xaisec.training.rts import AIDSettings, RTSObjective, train_rts
    from xaisec.utils.checks import XaisecError

    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    s = spec(args.model)
    classifier = load(args.model, weights=args.weights, device=args.device)
    aid, init, name = None, args.init, args.name or args.model
    if args.defense is not None:
        if args.defense != "aid":
            raise XaisecError(f"unknown defense {args.defense!r} for train-rts; known: aid "
                              "(adversarial / interpretation-robust are `xaisec train --defense`)")
        aid = AIDSettings(steps=args.aid_steps, eps=parse_fraction(args.aid_eps), lam=args.aid_lam)
        if init is None:
            init = rts_weights_path(args.model)
            if not init.is_file():
                raise XaisecError(f"AID fine-tunes an RTS network but none is shipped for {args.model}: train one "
                                  f"(`xaisec train-rts --model {args.model}`) or pass --init PATH")
        name = args.name or f"{args.model}_aid"
    res = train_rts(
        classifier, args.data or s.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, out=args.out or f"runs/train-rts/{name}", progress=not args.quiet,
        objective=RTSObjective(fake_prob=args.fake_prob), limit=args.limit, width=args.width,
        amp=not args.no_amp, name=name, classifier_weights=args.weights, init=init, aid=aid,
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
