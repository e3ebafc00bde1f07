"""Argument helpers shared by sub-commands: checked argument types, ``--threads``, ``--device``, ``--out``.

Every value is checked when the command line is parsed (argparse prints a one-line usage error), or by
:func:`prepare`, which ``xaisec.cli.main.main`` calls before a command starts any work.
"""

from __future__ import annotations

import argparse
import math
import re

EPS_HELP = ("a fraction such as 8/255, or a number in (0, 1] in [0, 1] pixel units (0.031); a plain number > 1 "
            "such as 8 is refused (write 8/255)")


def _number(text: str) -> float:
    text = text.strip()
    if "/" in text:
        num, den = text.split("/", 1)
        value = float(num) / float(den)
    else:
        value = float(text)
    return value


def parse_eps(text: str) -> float:
    """A budget or step in [0, 1] pixel units: ``'8/255'``, ``'0.031'`` or ``'1'``; one rule for every flag.

    Finite values in (0, 1] only. A plain number above 1 (``'8'``) is refused with the hint to write ``8/255``,
    since it could mean 8 or 8/255; ``inf``, ``nan``, zero and negative values are refused.
    """
    try:
        value = _number(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise argparse.ArgumentTypeError(f"not a budget: {text!r} ({EPS_HELP})") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"the budget must be finite, got {text!r} ({EPS_HELP})")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the budget must be > 0, got {text!r} ({EPS_HELP})")
    if value > 1:
        hint = f" (did you mean {text.strip()}/255?)" if "/" not in text else ""
        raise argparse.ArgumentTypeError(f"the budget must be at most 1 (the whole pixel range), got {text!r}{hint}")
    return value


def finite_float(low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False):
    """An argparse type: a finite float within the given bounds (open or closed)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if (low is not None and (value <= low if low_open else value < low)) or (
                high is not None and (value >= high if high_open else value > high)):
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            rng = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
            raise argparse.ArgumentTypeError(f"must be in {rng}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def int_at_least(low: int):
    """An argparse type: an int >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def seed_int(text: str) -> int:
    """An argparse type: a seed, an int in [0, 2**63)."""
    value = non_negative_int(text)
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"must be < 2**63, got {value}")
    return value


def device_name(text: str) -> str:
    """An argparse type: cpu, cuda, cuda:N, mps or auto (availability is checked by :func:`prepare`)."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text.strip()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use cpu, cuda, cuda:N, mps or auto")
    return text.strip()


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N``: torch intra-op threads (default: torch's own choice, usually one per core)."""
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads (default: torch's choice; use 1 when several runs share the cores)")


def prepare(args: argparse.Namespace) -> None:
    """Checks and settings common to every command, before it starts work: ``--threads`` is applied, the
    ``--device`` must exist here, and ``--out`` must be (or be creatable as) a writable folder.

    Raises:
        XaisecError: with a one-line message that says what is wrong and how to fix it.
    """
    import torch

    from xaisec.utils.checks import XaisecError, resolve_device
    from xaisec.utils.io import check_out_dir

    # the same rules for commands whose own parser takes plain ints and floats
    for attr, low in (("seed", 0), ("workers", 1), ("batch_size", 1), ("n", 1), ("limit", 1), ("epochs", 1),
                      ("threads", 1)):
        v = getattr(args, attr, None)
        if isinstance(v, int) and not isinstance(v, bool) and v < low:
            raise XaisecError(f"--{attr.replace('_', '-')} must be >= {low}, got {v}")
    for attr in ("steps_scale", "lr"):
        v = getattr(args, attr, None)
        if isinstance(v, float) and not (math.isfinite(v) and v > 0):
            raise XaisecError(f"--{attr.replace('_', '-')} must be a finite number > 0, got {v}")
    seed = getattr(args, "seed", None)
    if isinstance(seed, int) and seed >= 2**63:
        raise XaisecError(f"--seed must be < 2**63, got {seed}")
    threads = getattr(args, "threads", None)
    if threads:
        torch.set_num_threads(int(threads))
    device = getattr(args, "device", None)
    if isinstance(device, str):
        resolve_device(device)
    out = getattr(args, "out", None)
    if isinstance(out, str) and out:
        check_out_dir(out)


# ---- any model, any image folder (issue 19) ----------------------------------------------------------------
def image_size(text: str) -> int:
    """An argparse type: an image size in pixels, an int >= 1."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an image size: {text!r} (give pixels, e.g. 64)") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"the image size must be > 0 pixels, got {value}")
    return value


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r} (e.g. 0.485,0.456,0.406)") from exc
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"give finite numbers, e.g. 0.5,0.5,0.5; got {text!r}")
    return values


def _input_size(text: str) -> tuple[int, int, int]:
    parts = [p for p in re.split(r"[,x\s]+", text.strip()) if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an input size: {text!r} (give C,H,W such as 3,32,32)") from exc
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"the input size is C,H,W with positive integers (3,32,32), got {text!r}")
    return values  # type: ignore[return-value]


def _class_list(text: str) -> list[str]:
    """``a,b,c`` or a text file with one class name a line."""
    from pathlib import Path

    p = Path(text)
    if p.is_file():
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no class names in {text!r} (give a,b,c or a file with one a line)")
    return names


MODEL_HELP = ("a zoo name (see `xaisec info models`), a folder with model.safetensors + card.json, a TorchScript "
              "file (.pt), torchvision:NAME, timm:NAME, or a factory module:function / file.py:function")


def add_model_args(p: argparse.ArgumentParser, *, default: str | None = "cifar10_resnet20",
                   with_model: bool = True) -> None:
    """``--model`` and what the wrapper needs: --weights, --card, --mean, --std, --cam-layer, --fc-layer,
    --classes, --input-size (flags override the card). ``with_model=False``: the flags only, for a command
    that takes its models otherwise (``bench reproduce --models``); they then apply to every model."""
    if with_model:
        g = p.add_argument_group("model", "which classifier; the flags below override its model card")
        g.add_argument("--model", default=default, required=default is None, help=MODEL_HELP)
    else:
        g = p.add_argument_group("model", "how the models are loaded; these flags apply to every model and "
                                          "override their model cards")
    g.add_argument("--weights", default=None,
                   help="weights: .safetensors or a torch checkpoint (read with weights_only; never unpickled); "
                        "'random' for a fresh initialisation")
    g.add_argument("--card", default=None, help="model card (JSON or TOML; default: the one next to the model)")
    g.add_argument("--mean", type=_float_list, default=None, help="per-channel mean, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", type=_float_list, default=None, help="per-channel std, e.g. 0.229,0.224,0.225")
    g.add_argument("--cam-layer", default=None, help="dotted name of the layer CAM-type interpreters read")
    g.add_argument("--fc-layer", default=None, help="dotted name of the linear head (for CAM)")
    g.add_argument("--classes", type=_class_list, default=None, help="class names: a,b,c or a file, one a line")
    g.add_argument("--input-size", type=_input_size, default=None, help="C,H,W the model takes, e.g. 3,32,32")


MODEL_OPTIONS = ("weights", "card", "mean", "std", "cam_layer", "fc_layer", "classes", "input_size")


def model_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`~xaisec.models.loading.load_model_spec` that :func:`add_model_args`' flags
    give (weights, card fields), None where a flag is not given; plain values, so they pickle to workers."""
    return {k: getattr(args, k, None) for k in MODEL_OPTIONS}


def model_from_args(args: argparse.Namespace, spec: str | None = None):
    """The :class:`~xaisec.models.Classifier` named by :func:`add_model_args`' flags (or ``spec`` with those
    flags), on ``args.device``."""
    from xaisec.models.loading import load_model_spec

    return load_model_spec(args.model if spec is None else spec, **model_options(args),
                           device=getattr(args, "device", None))


def add_image_args(p: argparse.ArgumentParser) -> None:
    """--image-size, --resize-mode and --strict for commands that read data."""
    g = p.add_argument_group("images", "how image folders are read")
    g.add_argument("--image-size", type=image_size, default=None,
                   help="resize every image to S x S (default: the model's input size)")
    g.add_argument("--resize-mode", default="crop", choices=("crop", "pad"),
                   help="crop: shorter side to S, centre crop (default); pad: longer side to S, black borders")
    g.add_argument("--strict", action="store_true", help="fail on an unreadable file instead of skipping it")


def split_fraction(split: str | None) -> float | None:
    """``0.8`` -> 0.8 (a seeded split of a folder that has none); a split name -> None."""
    try:
        value = float(split) if split is not None else None
    except ValueError:
        return None
    if value is None or not 0 < value < 1:
        from xaisec.utils.checks import XaisecError

        raise XaisecError(f"--split is a split name (train, test) or a fraction in (0, 1) such as 0.8, got {split!r}")
    return value


def data_from_args(args: argparse.Namespace, model=None, *, source: str | None = None, part: str = "test"):
    """The data set of ``--data`` (or ``source``) for ``model``: images resized to ``--image-size`` (default:
    the model's input size), converted to the model's channel count, labels mapped onto the model's classes.

    ``--split`` is a split name, or a fraction such as 0.8: a seeded (seed 0), stratified split of a folder
    without one, of which ``part`` ("train": the fraction, "test": the rest) is returned.
    """
    from pathlib import Path

    from xaisec.data import load as load_data
    from xaisec.data.labels import align_labels
    from xaisec.utils.checks import XaisecError

    src = source or getattr(args, "data", None)
    if src is None:
        raise XaisecError("give --data (an image folder <class>/<image>, a .tar, a .npz or a data set name)")
    size = getattr(args, "image_size", None)
    in_size = getattr(model, "input_size", None)
    if size is None and in_size is not None and in_size[1] == in_size[2]:
        size = int(in_size[1])
    chans = int(in_size[0]) if in_size is not None else None
    mode = None if chans is None else ("L" if chans == 1 else "RGB")
    kw = {"image_size": size, "resize_mode": getattr(args, "resize_mode", "crop"), "mode": mode,
          "strict": getattr(args, "strict", False), "progress": not getattr(args, "quiet", False)}
    split = getattr(args, "split", "test")
    fraction = split_fraction(split)
    path = Path(str(src))
    if fraction is not None:
        whole = "train" if (path / "train").is_dir() and not (path / "test").is_dir() else "test"
        if (path / "test").is_dir():
            raise XaisecError(f"{src} has a test/ split already; pass --split test (or train)")
        first, rest = load_data(src, whole, **kw).split(fraction, seed=0)
        data = first if part == "train" else rest
    else:
        if path.is_dir() and split == "test" and not (path / "test").is_dir() and (path / "train").is_dir():
            raise XaisecError(f"{src} has train/ but no test/ folder; pass --split train, or --split 0.8 for the "
                              "part `xaisec train` held out")
        data = load_data(src, split, **kw)
        if path.is_dir() and not (path / split).is_dir() and not any(path.glob("*.npz")):
            log_info = f"{src} has no {split}/ folder: using all {len(data)} images (--split 0.8: the held-out part)"
            import logging

            logging.getLogger("xaisec.data").info(log_info)
    if chans is not None:
        data = data.with_channels(chans)
    if model is not None:
        data = align_labels(data, model)
        if getattr(model, "classes", None) is None:
            model.classes = list(data.classes)
    return data


def default_data(model_spec: str) -> str:
    """The data set of a zoo model (``cifar10_resnet20`` -> ``cifar10``); other models need --data."""
    from xaisec.models.registry import MODELS
    from xaisec.utils.checks import XaisecError

    if model_spec in MODELS:
        return MODELS[model_spec].dataset
    raise XaisecError(f"--model {model_spec} has no default data set: pass --data FOLDER (or a .tar / .npz)")
