"""Model cards: the small JSON or TOML file next to a model's weights that says how to wrap it.

A card holds what :class:`~xaisec.models.Classifier` needs and the weights cannot say, plus how to
rebuild the network when the weights are a bare state dict::

    {"arch": "resnet20",                      # a zoo architecture, "torchvision:NAME", "timm:NAME", or
     "factory": "pkg.module:func",            #   a Python factory (one of arch / factory / model)
     "model": "cifar10_resnet20",             #   or a zoo model name
     "arch_options": {"in_channels": 1, "num_classes": 2, "stem_stride": 1},
     "weights": "model.safetensors",
     "mean": [0.5], "std": [0.25], "cam_layer": "layer3", "fc_layer": "linear",
     "classes": ["normal", "pneumonia"], "input_size": [1, 32, 32]}

The same keys in TOML (``card.toml``) work. Training cards of ``xaisec train`` carry more (history,
accuracy); the loader reads only the keys above (and ``normalisation``/``data.classes`` as fallbacks).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from xaisec.utils.checks import XaisecError
from xaisec.utils.io import atomic_write_json

log = logging.getLogger(__name__)

CARD_NAMES = ("card.json", "card.toml", "model.json", "model.toml")
CARD_FORMAT = "xaisec-model-card/1"
WRAPPER_KEYS = ("mean", "std", "cam_layer", "fc_layer", "classes", "input_size")


def find_card(path: str | Path) -> Path | None:
    """The card of a model folder or file: ``card.json|toml`` / ``model.json|toml`` in a folder, or
    ``<stem>.json|toml`` beside a file (then the folder's ``card.*``); None when there is none."""
    path = Path(path)
    if path.is_dir():
        for name in CARD_NAMES:
            if (path / name).is_file():
                return path / name
        weights = sorted(path.glob("*.safetensors"))
        if len(weights) == 1 and weights[0].with_suffix(".json").is_file():
            return weights[0].with_suffix(".json")
        return None
    for suffix in (".json", ".toml"):
        cand = path.with_suffix(suffix)
        if cand.is_file() and cand != path:
            return cand
    for name in ("card.json", "card.toml"):
        if (path.parent / name).is_file():
            return path.parent / name
    return None


def read_card(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML card into a dict; a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise XaisecError(f"{path}: no such model card file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".toml":
            import tomllib

            card = tomllib.loads(text)
        else:
            card = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise XaisecError(f"{path}: not a readable JSON/TOML model card ({exc})") from exc
    if not isinstance(card, dict):
        raise XaisecError(f"{path}: a model card must be a JSON object / TOML table, got {type(card).__name__}")
    return card


def _floats(value: Any, key: str, where: str) -> list[float]:
    if isinstance(value, (int, float)):
        value = [value]
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise XaisecError(f"{where}: {key} must be a list of numbers, got {value!r}") from exc
    if not out or any(v != v or v in (float("inf"), float("-inf")) for v in out):
        raise XaisecError(f"{where}: {key} must be finite numbers, got {value!r}")
    return out


def card_fields(card: dict[str, Any], where: str = "card") -> dict[str, Any]:
    """The wrapper and rebuild fields of a card, validated: mean, std, cam_layer, fc_layer, classes,
    input_size, arch, arch_options, factory, model, weights, name (absent ones are None)."""
    norm = card.get("normalisation") if isinstance(card.get("normalisation"), dict) else {}
    data = card.get("data") if isinstance(card.get("data"), dict) else {}
    out: dict[str, Any] = {
        "mean": card.get("mean", norm.get("mean")),
        "std": card.get("std", norm.get("std")),
        "cam_layer": card.get("cam_layer"),
        "fc_layer": card.get("fc_layer"),
        "classes": card.get("classes", data.get("classes")),
        "input_size": card.get("input_size"),
        "arch": card.get("arch"),
        "arch_options": card.get("arch_options") or {},
        "factory": card.get("factory"),
        "model": card.get("model"),
        "architecture": card.get("architecture"),  # training cards: the zoo model a renamed model is built as
        "weights": card.get("weights"),
        "name": card.get("name"),
    }
    for key in ("mean", "std"):
        if out[key] is not None:
            out[key] = _floats(out[key], key, where)
    if out["classes"] is not None:
        if not isinstance(out["classes"], list) or not out["classes"]:
            raise XaisecError(f"{where}: classes must be a non-empty list of names, got {out['classes']!r}")
        out["classes"] = [str(c) for c in out["classes"]]
    if out["input_size"] is not None:
        size = out["input_size"]
        if not (isinstance(size, list) and len(size) == 3 and all(isinstance(v, int) and v > 0 for v in size)):
            raise XaisecError(f"{where}: input_size must be [C, H, W] positive integers, got {size!r}")
        out["input_size"] = tuple(size)
    for key in ("cam_layer", "fc_layer", "arch", "factory", "model", "architecture", "weights", "name"):
        if out[key] is not None and not isinstance(out[key], str):
            raise XaisecError(f"{where}: {key} must be a string, got {out[key]!r}")
    if not isinstance(out["arch_options"], dict):
        raise XaisecError(f"{where}: arch_options must be a table of options, got {out['arch_options']!r}")
    return out


def tidy_floats(values) -> list[float]:
    """Float32 values (a tensor or list) as short decimals (7 significant digits) that read back identically."""
    flat = values.flatten().tolist() if hasattr(values, "flatten") else list(values)
    return [float(f"{float(v):.7g}") for v in flat]


def write_card(path: str | Path, **fields: Any) -> Path:
    """Atomically write a JSON card (``format`` is added; tuples become lists; None values are dropped)."""
    card = {"format": CARD_FORMAT}
    for k, v in fields.items():
        if v is not None:
            card[k] = list(v) if isinstance(v, tuple) else v
    return atomic_write_json(path, card)
