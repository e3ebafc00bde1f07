"""``xaisec leaderboard``: the explanation-robustness leaderboard (leaderboard.json and a sortable HTML page).

* ``--from RESULTS [--from ...]``: build it from the cell records of ``xaisec bench reproduce`` (the adv2
  grid) and/or folders of leaderboard entry files; the accuracy of each model is evaluated (cached).
* ``--add --model SPEC [--defense median:2] [--n 32]``: evaluate one model under the fixed threat model and
  add (or replace) its entry.
* neither: re-render the HTML from ``--out``/leaderboard.json.
"""

from __future__ import annotations

import argparse
import math
import shlex

from xaisec.cli.common import add_model_args, device_name, positive_int, seed_int


def add_parser(p: argparse.ArgumentParser) -> None:
    from xaisec.experiments.leaderboard import N_CLEAN, N_ROBUST, STEPS_SCALE

    p.add_argument("--out", required=True, help="leaderboard folder: leaderboard.json, leaderboard.html, entries/")
    p.add_argument("--from", dest="sources", action="append", default=None, metavar="RESULTS",
                   help="a `xaisec bench reproduce` output folder (cells/*.json), a folder of cell records, or a "
                        "folder of leaderboard entry files / leaderboard.json; repeat for several")
    p.add_argument("--add", action="store_true", help="evaluate --model (with --defense) and add its entry")
    add_model_args(p, default="")
    p.add_argument("--defense", default=None, help="put a squeezer in front of the model: median:2, bits:5, "
                                                    "nlm:13-3-2")
    p.add_argument("--bpda", default="auto", choices=("auto", "on", "off"),
                   help="straight-through gradient through the defense (auto: only for bits, whose gradient is 0)")
    p.add_argument("--data", default=None, help="test data (default: the zoo model's data set)")
    p.add_argument("--name", default=None, help="the entry's name on the board (default: MODEL[+DEFENSE])")
    p.add_argument("--interpreters", default="grad,cam,gradcam,rts",
                   help="interpreters attacked by ADV^2 (rts is skipped when the model has no RTS network)")
    p.add_argument("--n", type=positive_int, default=32, help="correctly classified images per ADV^2 cell")
    p.add_argument("--n-clean", type=positive_int, default=N_CLEAN, help="test images for clean accuracy")
    p.add_argument("--n-robust", type=positive_int, default=N_ROBUST, help="test images for PGD-20 accuracy")
    p.add_argument("--steps-scale", type=float, default=STEPS_SCALE,
                   help="fraction of the papers' ADV^2 steps (the threat model fixes 0.25; others are marked)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--cache", default=None, help="where the per-cell records go (default: OUT/cells; resumable)")
    p.add_argument("--fresh", action="store_true", help="with --from: drop the entries already in OUT")
    p.add_argument("--no-accuracy", action="store_true",
                   help="with --from: do not evaluate the models' accuracy (the fields stay empty)")
    p.add_argument("--device", type=device_name, default=None, help="cpu, cuda, cuda:N, mps (default: auto)")


def _command(args: argparse.Namespace) -> str:
    """The command line that makes the same entry (or board)."""
    parts = ["xaisec", "leaderboard"]
    if args.add:
        parts += ["--add", "--model", args.model]
        for flag in ("weights", "card", "cam_layer", "fc_layer", "defense", "data", "name"):
            if getattr(args, flag, None):
                parts += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        if args.defense and args.bpda != "auto":
            parts += ["--bpda", args.bpda]
        parts += ["--interpreters", args.interpreters, "--n", str(args.n)]
    else:
        for s in args.sources or []:
            parts += ["--from", s]
        if args.no_accuracy:
            parts.append("--no-accuracy")
    parts += ["--n-clean", str(args.n_clean), "--n-robust", str(args.n_robust),
              "--steps-scale", f"{args.steps_scale:g}", "--seed", str(args.seed), "--out", args.out]
    return shlex.join(parts)


def _summary(board: dict) -> str:
    from xaisec.experiments.leaderboard import _num, _pct

    interps = board.get("interpreters", [])
    lines = [f"{'#':>2}  {'entry':<34} {'clean':>6} {'PGD-20':>7} {'meanIoU':>7} "
             + " ".join(f"{i:>7}" for i in interps)]
    for e in board["entries"]:
        ious = [_num((e["interpreters"].get(i) or {}).get("iou")) for i in interps]
        lines.append(f"{e['rank']:>2}  {e['name'][:34]:<34} {_pct(e.get('clean_accuracy')):>6} "
                     f"{_pct(e.get('robust_accuracy')):>7} {_num(e.get('mean_iou')):>7} "
                     + " ".join(f"{v:>7}" for v in ious))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xaisec.experiments import leaderboard as lb
    from xaisec.utils.checks import XaisecError

    if not (math.isfinite(args.steps_scale) and args.steps_scale > 0):
        raise XaisecError(f"--steps-scale must be a number > 0, got {args.steps_scale}")
    interpreters = lb._check_interpreters([s.strip() for s in args.interpreters.split(",") if s.strip()])
    out = Path(args.out)
    command = _command(args)
    if args.add and args.sources:
        raise XaisecError("give either --from RESULTS (build) or --add --model SPEC (one entry), not both")
    if args.add:
        from xaisec.cli.common import data_from_args, default_data, model_from_args

        if not args.model:
            raise XaisecError("--add needs --model SPEC (a zoo name, a model folder, a TorchScript file, ...)")
        model = model_from_args(args)
        data = data_from_args(args, model, source=args.data or default_data(args.model))
        name = args.name or args.model + (f"+{args.defense}" if args.defense else "")
        bpda = None if args.bpda == "auto" else args.bpda == "on"
        entry = lb.evaluate(model, data, name=name, model_spec=args.model, defense=args.defense, bpda=bpda,
                            interpreters=interpreters, n=args.n, n_clean=args.n_clean, n_robust=args.n_robust,
                            steps_scale=args.steps_scale, seed=args.seed, cache=args.cache or out / "cells",
                            command=command, progress=not args.quiet)
        board = lb.add(out, entry, command=command)
    elif args.sources:
        board = lb.build(args.sources, out, interpreters=interpreters, steps_scale=args.steps_scale,
                         n_clean=args.n_clean, n_robust=args.n_robust, seed=args.seed,
                         accuracy=not args.no_accuracy, fresh=args.fresh, cache=args.cache, command=command,
                         progress=not args.quiet)
    else:
        old = lb.load(out)
        steps = old.get("threat_model", {}).get("explanation_attack", {}).get("steps_scale", args.steps_scale)
        board = lb.write_board(out, old["entries"], steps_scale=steps, command=old.get("command"))
    print(_summary(board))
    print(f"wrote {out / 'leaderboard.json'} ({len(board['entries'])} entries) and {out / 'leaderboard.html'}")
    return 0
