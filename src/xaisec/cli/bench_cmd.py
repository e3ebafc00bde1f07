"""``xaisec bench reproduce``: the papers' tables on CIFAR-10 as a resumable grid."""

from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    r = sub.add_parser("reproduce", help="the papers' tables as resumable grids (default: ADV^2 / AdvEdge)",
                       description="Runs or resumes a paper's reproduction grid; writes its tables into --out.")
    r.add_argument("--paper", default="adv2",
                   help="adv2 (the ADV^2 / AdvEdge grid, default), another paper of `xaisec info papers`, "
                        "a comma-separated selection, or all; papers other than adv2 write into OUT/PAPER")
    r.add_argument("--quick", action="store_true", help="a reduced setting of each paper other than adv2")
    r.add_argument("--out", default="runs/reproduce", help="output folder (rerun the same command to resume)")
    r.add_argument("--models", default=None, help="comma-separated models (default: every shipped CIFAR-10 model)")
    r.add_argument("--interpreters", default="grad,cam,gradcam,rts,mask")
    r.add_argument("--attacks", default="pgd,adv2,advedge,advedge+")
    r.add_argument("--frameworks", default="pgd,cw,stadv", help="cw and stadv run on the ResNet-20 only")
    r.add_argument("--n", type=int, default=100, help="images per ResNet-20 cell")
    r.add_argument("--n-small", type=int, default=32, help="images per MASK and larger-model cell")
    r.add_argument("--steps-scale", type=float, default=0.25, help="fraction of the papers' step counts")
    r.add_argument("--workers", type=int, default=1,
                   help="cells at once: worker processes (local) or CPUs of a new local Ray instance")
    r.add_argument("--backend", default="local", choices=("local", "ray"),
                   help="local: this machine's process pool (default); ray: one Ray task per cell")
    r.add_argument("--address", default=None,
                   help="with --backend ray: auto or HOST:PORT of a running cluster (default: start a local one)")
    r.add_argument("--data", default="cifar10")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--mask-restarts", type=int, default=1,
                   help="restarts of the bilevel MASK attacks (best real map wins; use a fresh --out)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xaisec.experiments.papers import paper_names, run_paper
    from xaisec.experiments.reproduce import reproduce

    for name in paper_names(args.paper):
        if name != "adv2":
            run_paper(name, Path(args.out) / name, quick=args.quick, seed=args.seed, workers=args.workers,
                      progress=not args.quiet)
            print((Path(args.out) / name / "tables.md").read_text())
    if "adv2" not in paper_names(args.paper):
        return 0
    models = args.models.split(",") if args.models else None
    reproduce(args.out, models=models, interpreters=tuple(args.interpreters.split(",")),
              attacks=tuple(args.attacks.split(",")), frameworks=tuple(args.frameworks.split(",")), n=args.n,
              n_small=args.n_small, steps_scale=args.steps_scale, seed=args.seed, workers=args.workers,
              data=args.data, progress=not args.quiet, mask_restarts=args.mask_restarts, backend=args.backend,
              address=args.address)
    print((Path(args.out) / "results.md").read_text())
    return 0
