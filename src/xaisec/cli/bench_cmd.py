"""``xaisec bench reproduce``: the papers' tables on CIFAR-10 as a resumable grid."""

from __future__ import annotations

import argparse

from xaisec.cli.common import MODEL_HELP, add_model_args, model_options


def add_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    r = sub.add_parser("reproduce", help="the papers' tables as resumable grids (default: ADV^2 / AdvEdge)",
                       description="Runs or resumes a paper's reproduction grid; writes its tables into --out.")
    r.add_argument("--paper", default="adv2",
                   help="adv2 (the ADV^2 / AdvEdge grid, default), another paper of `xaisec info papers`, "
                        "a comma-separated selection, or all; each paper writes into OUT/PAPER (adv2 alone: into "
                        "OUT) and OUT/index.html shows every paper's tables and plots")
    r.add_argument("--quick", action="store_true",
                   help="a reduced setting of every paper (adv2: the ResNet-20, cam/gradcam/grad, pgd framework, "
                        "8 images, steps x 0.1, unless the flags below say otherwise)")
    r.add_argument("--out", default="runs/reproduce", help="output folder (rerun the same command to resume)")
    r.add_argument("--models", default=None,
                   help="comma-separated models (default: every shipped CIFAR-10 model); each is " + MODEL_HELP)
    r.add_argument("--interpreters", default=None, help="adv2 grid (default grad,cam,gradcam,rts,mask)")
    r.add_argument("--attacks", default=None, help="adv2 grid (default pgd,adv2,advedge,advedge+)")
    r.add_argument("--frameworks", default=None,
                   help="adv2 grid (default pgd,cw,stadv); cw and stadv run on the ResNet-20 only")
    r.add_argument("--n", type=int, default=None, help="images per ResNet-20 cell (default 100)")
    r.add_argument("--n-small", type=int, default=None, help="images per MASK and larger-model cell (default 32)")
    r.add_argument("--steps-scale", type=float, default=None, help="fraction of the papers' step counts (default 0.25)")
    r.add_argument("--workers", type=int, default=None,
                   help="cells at once, one torch thread each: worker processes (local) or CPUs of a new local "
                        "Ray instance (default: this machine's cores, at most 8); the same --workers gives the "
                        "same numbers on both backends")
    r.add_argument("--backend", default="local", choices=("local", "ray"),
                   help="local: this machine's process pool (default); ray: one Ray task per cell")
    r.add_argument("--address", default=None,
                   help="with --backend ray: auto or HOST:PORT of a running cluster (default: start a local one)")
    r.add_argument("--data", default="cifar10")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--mask-restarts", type=int, default=1,
                   help="restarts of the bilevel MASK attacks (best real map wins; use a fresh --out)")
    add_model_args(r, with_model=False)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xaisec.experiments.engine import default_workers
    from xaisec.experiments.papers import paper_folder, paper_names, run_papers
    from xaisec.utils.checks import XaisecError

    mopts = {k: v for k, v in model_options(args).items() if v is not None}
    if mopts and not args.models:
        flags = ", ".join("--" + k.replace("_", "-") for k in mopts)
        raise XaisecError(f"{flags} need --models (the models they load), e.g. --models net.py:make")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if models is not None and "adv2" in paper_names(args.paper):
        from xaisec.models import MODELS
        from xaisec.models.loading import load_model_spec

        for m in models:  # a bad spec fails here in one line, not in every cell of a worker
            if mopts or m not in MODELS:
                load_model_spec(m, **mopts, device="cpu")
    adv2 = {"models": models, "interpreters": _split(args.interpreters), "attacks": _split(args.attacks),
            "frameworks": _split(args.frameworks), "n": args.n, "n_small": args.n_small,
            "steps_scale": args.steps_scale}
    adv2 = {k: v for k, v in adv2.items() if v is not None}  # the rest: QUICK with --quick, else the defaults
    adv2.update(data=args.data, mask_restarts=args.mask_restarts, model_options=mopts)
    names = paper_names(args.paper)
    workers = args.workers if args.workers is not None else default_workers()
    run_papers(names, args.out, quick=args.quick, seed=args.seed, workers=workers, progress=not args.quiet,
               backend=args.backend, address=args.address, adv2_options=adv2)  # index.html after each paper
    for name in names:
        print((paper_folder(args.out, name, names) / "tables.md").read_text())
    print(f"index: {(Path(args.out) / 'index.html').resolve()}")
    return 0


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())
