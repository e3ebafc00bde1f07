"""``xaisec`` entry point: sub-commands are modules in this package, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from xaisec import __version__
from xaisec.utils.checks import XaisecError

log = logging.getLogger("xaisec")

# name -> (module, one-line help); modules are imported only when their command runs
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("xaisec.cli.demo_cmd", "PGD vs ADV^2 against Grad-CAM on the shipped ResNet-20 and bundled images"),
    "train": ("xaisec.cli.train_cmd", "train a registered CIFAR-10 or PneumoniaMNIST model on the CPU"),
    "train-rts": ("xaisec.cli.train_rts_cmd", "train the real-time saliency (RTS) masking network for a classifier"),
    "eval": ("xaisec.cli.eval_cmd", "top-1 accuracy of a model on a data set"),
    "attack": ("xaisec.cli.attack_cmd", "attack a model and its interpreter; write results.json and report.html"),
    "explain": ("xaisec.cli.explain_cmd", "attribution maps as heat-map overlays (one PNG per image and a grid)"),
    "bench": ("xaisec.cli.bench_cmd", "benchmarks: `bench reproduce` runs the papers' tables (resumable)"),
    "info": ("xaisec.cli.info_cmd", "list models, data sets and other registered components"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xaisec",
        description="Red-team interpretable deep learning systems: attack a classifier and its explanation together.",
    )
    parser.add_argument("--version", action="version", version=f"xaisec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_parser(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except XaisecError as exc:
        print(f"xaisec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xaisec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
