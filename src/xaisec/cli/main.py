"""``xaisec`` entry point: sub-commands are modules in this package, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from xaisec import __version__
from xaisec.cli.common import add_threads, prepare
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
    "detect": ("xaisec.cli.detect_cmd", "adversarial-input detectors (feature squeezing, interpreter ensemble)"),
    "universal": ("xaisec.cli.universal_cmd", "train or apply a universal perturbation (JUAP, GAP, UAP); report"),
    "leaderboard": ("xaisec.cli.leaderboard_cmd", "explanation-robustness leaderboard: build it, or --add a model"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: what is wrong, and where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        _add_threads_to_leaves(p)
    return parser


def _add_threads_to_leaves(p: argparse.ArgumentParser) -> None:
    """``--threads`` on every command that has none (on each sub-command of a command with sub-commands)."""
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if subs:
        for action in subs:
            for child in set(action.choices.values()):
                _add_threads_to_leaves(child)
    elif not any("--threads" in a.option_strings for a in p._actions):
        add_threads(p)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _unexpected(command: str, exc: BaseException) -> str:
    """A one-line message for an error xaisec did not anticipate, naming the likely cause."""
    from PIL import Image

    if isinstance(exc, Image.DecompressionBombError):
        return (f"xaisec {command}: error: an image is too large to decode safely ({_one_line(exc)}); remove it, or "
                "shrink it, from the data")
    if isinstance(exc, MemoryError):
        return f"xaisec {command}: error: out of memory; use a smaller --batch-size or fewer images"
    if isinstance(exc, PermissionError):
        return f"xaisec {command}: error: permission denied: {exc.filename or _one_line(exc)}; check --out"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"xaisec {command}: error: {_one_line(exc)}{where}"
    return (f"xaisec {command}: error: {type(exc).__name__}: {_one_line(exc)} (unexpected: run with -v for the "
            "traceback, and please report it)")


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
        prepare(args)
        return int(module.run(args) or 0)
    except XaisecError as exc:
        print(f"xaisec {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xaisec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for bad input: one line, the traceback only with -v
        log.debug("traceback", exc_info=True)
        print(_unexpected(args.command, exc), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
