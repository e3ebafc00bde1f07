"""``xaisec bench reproduce``: the papers' tables on CIFAR-10 as a resumable grid."""

from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    r = sub.add_parser("reproduce", help="ADV^2 / AdvEdge tables: models x interpreters x attacks (resumable)",
                       description="Runs or resumes the reproduction grid; writes results.json and results.md.")
    r.add_argument("--out", default="runs/reproduce", help="output folder (rerun the same command to resume)")
    r.add_argument("--models", default=None, help="comma-separated models (default: every shipped CIFAR-10 model)")
    r.add_argument("--interpreters", default="grad,cam,gradcam,rts,mask")
    r.add_argument("--attacks", default="pgd,adv2,advedge,advedge+")
    r.add_argument("--frameworks", default="pgd,cw,stadv", help="cw and stadv run on the ResNet-20 only")
    r.add_argument("--n", type=int, default=100, help="images per ResNet-20 cell")
    r.add_argument("--n-small", type=int, default=32, help="images per MASK and larger-model cell")
    r.add_argument("--steps-scale", type=float, default=0.25, help="fraction of the papers' step counts")
    r.add_argument("--workers", type=int, default=1, help="worker processes (one torch thread each)")
    r.add_argument("--data", default="cifar10")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--mask-restarts", type=int, default=1,
                   help="restarts of the bilevel MASK attacks (best real map wins; use a fresh --out)")


def run(args: argparse.Namespace) -> int:
    from xaisec.experiments.reproduce import reproduce

    models = args.models.split(",") if args.models else None
    reproduce(args.out, models=models, interpreters=tuple(args.interpreters.split(",")),
              attacks=tuple(args.attacks.split(",")), frameworks=tuple(args.frameworks.split(",")), n=args.n,
              n_small=args.n_small, steps_scale=args.steps_scale, seed=args.seed, workers=args.workers,
              data=args.data, progress=not args.quiet, mask_restarts=args.mask_restarts)
    print((__import__("pathlib").Path(args.out) / "results.md").read_text())
    return 0
