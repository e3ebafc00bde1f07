"""The reproduction benchmark of the ADV^2 / AdvEdge papers on CIFAR-10, as a resumable grid.

Cells: every shipped model x {grad, cam, gradcam, rts, mask} x {pgd, adv2, advedge, advedge+} on the pgd
framework, and for the ResNet-20 also the cw and stadv frameworks. n = 100 images for ResNet-20 cells and
``n_small`` (>= 32) for MASK and the larger models. Tables: ASR, misclassification confidence, L1, IoU,
noise rate and seconds per image per cell, plus the interpreter-transferability matrix of ADV^2 on the
ResNet-20 (inputs made against one interpreter, L1 and IoU measured on every other).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from xaisec.experiments.grid import Cell, adversarial_path, load_adversarial, run_grid
from xaisec.utils.checks import XaisecError
from xaisec.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

INTERPRETERS = ("grad", "cam", "gradcam", "rts", "mask")
ATTACKS = ("pgd", "adv2", "advedge", "advedge+")
MAIN_MODEL = "cifar10_resnet20"
TABLE_KEYS = ("success", "confidence", "l1", "iou", "noise_rate", "seconds_per_image")
# ``xaisec bench reproduce --quick`` (and ``run_paper("adv2", quick=True)``): the ResNet-20, three fast
# interpreters, every attack on the pgd framework, 8 images, a tenth of the papers' steps
QUICK: dict[str, Any] = {"models": [MAIN_MODEL], "interpreters": ("cam", "gradcam", "grad"), "attacks": ATTACKS,
                         "frameworks": ("pgd",), "n": 8, "n_small": 8, "steps_scale": 0.1}


def available_models() -> list[str]:
    from xaisec.models import MODELS, shipped_weights

    return [m for m in MODELS if MODELS[m].dataset == "cifar10" and shipped_weights(m) is not None]


def build_cells(models: list[str], interpreters: tuple[str, ...] = INTERPRETERS, *, n: int = 100, n_small: int = 32,
                steps_scale: float = 0.25, seed: int = 0, attacks: tuple[str, ...] = ATTACKS,
                frameworks: tuple[str, ...] = ("pgd", "cw", "stadv"), mask_restarts: int = 1,
                model_options: dict[str, Any] | None = None) -> list[Cell]:
    """The grid: every model x interpreter x attack on the pgd framework; the other frameworks on the
    ResNet-20 only (and not for MASK, whose bilevel attack is PGD-based). ``mask_restarts`` > 1 gives the
    bilevel MASK attacks (not the plain pgd baseline) that many restarts. ``models`` are any model specs
    (:func:`xaisec.models.loading.load_model_spec`); ``model_options`` (weights, card fields, None values
    dropped) go to the loading of every one of them."""
    if mask_restarts < 1:
        raise XaisecError(f"mask_restarts must be >= 1, got {mask_restarts}")
    from xaisec.attacks import FRAMEWORKS
    from xaisec.interpreters import INTERPRETERS as KNOWN_INTERPRETERS

    # every name is checked before the first cell runs (not when its cell's turn comes, hours later)
    for kind, given, known in (("attack", attacks, ATTACKS), ("framework", frameworks, tuple(FRAMEWORKS)),
                               ("interpreter", interpreters, tuple(KNOWN_INTERPRETERS))):
        bad = [g for g in given if g not in known]
        if bad:
            raise XaisecError(f"unknown {kind} {', '.join(map(repr, bad))} for the reproduction grid; known: "
                              f"{', '.join(known)}")
    mopts = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                         for k, v in (model_options or {}).items() if v is not None))
    restarts: tuple = (("restarts", mask_restarts),) if mask_restarts > 1 else ()
    cells = []
    for model in models:
        for interp in interpreters:
            size = n if (model == MAIN_MODEL and interp != "mask") else n_small
            opts: tuple = (("interpreter_options", {"iterations": 100}),) if interp == "mask" else ()
            for attack in attacks:
                extra = restarts if interp == "mask" and attack != "pgd" else ()
                for fw in frameworks:
                    if fw == "pgd" or (model == MAIN_MODEL and interp != "mask"):
                        cells.append(Cell(model, interp, attack, fw, size, steps_scale, seed, opts + extra, mopts))
    return cells


_INTERPRETER_RANK = {name: i for i, name in enumerate(INTERPRETERS)}
_ATTACK_RANK = {name: i for i, name in enumerate(ATTACKS)}


def _order(record: dict[str, Any]) -> tuple:
    c = record["config"]["cell"]
    return (c["model"] != MAIN_MODEL, c["model"], c["framework"] != "pgd", c["framework"],
            _INTERPRETER_RANK.get(c["interpreter"], 99), c["interpreter"], _ATTACK_RANK.get(c["attack"], 99))


def _fmt(key: str, v: float) -> str:
    return f"{v * 100:.1f}%" if key == "success" else f"{v:.3f}" if key != "seconds_per_image" else f"{v:.2f}"


def markdown_table(records: list[dict[str, Any]]) -> str:
    lines = ["| model | interpreter | attack | framework | n | ASR | confidence | L1 | IoU | noise rate | s/image |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        c = r["config"]["cell"]
        m = r["mean"]
        lines.append(f"| {c['model']} | {c['interpreter']} | {c['attack']} | {c['framework']} | {r['n']} | "
                     + " | ".join(_fmt(k, m[k]) for k in TABLE_KEYS) + " |")
    return "\n".join(lines)


@torch.no_grad()
def transferability(out: Path, cells: list[Cell], interpreters: tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """For ADV^2 inputs made against interpreter A (rows), mean L1 and IoU of interpreter B's (columns)
    adversarial map to B's benign map, on the ResNet-20."""
    from xaisec.interpreters import get as get_interpreter
    from xaisec.metrics import map_iou, map_l1
    from xaisec.models import load

    if not any(c.model == MAIN_MODEL and c.attack == "adv2" and c.framework == "pgd" for c in cells):
        return {}
    model = load(MAIN_MODEL)
    interps = {}
    for name in interpreters:
        try:
            interps[name] = get_interpreter(name, model, **({"iterations": 100} if name == "mask" else {}))
        except Exception as exc:  # e.g. rts without weights
            log.warning("transferability: skipping %s (%s)", name, exc)
    matrix: dict[str, dict[str, dict]] = {}
    for cell in cells:
        wanted = cell.model == MAIN_MODEL and cell.attack == "adv2" and cell.framework == "pgd"
        if not wanted or cell.interpreter not in interps:
            continue
        inputs = adversarial_path(out, cell)
        if not inputs.exists():
            # e.g. a cell record copied in without its inputs: re-run the cell to get this row back
            log.warning("transferability: no adversarial inputs for %s (%s); delete its JSON and rerun to add "
                        "the row", cell.key, inputs)
            continue
        stamp = inputs.stat().st_mtime_ns
        adv: dict[str, torch.Tensor] | None = None
        row = {}
        for name, g in interps.items():
            # cached per (row cell, column interpreter); invalidated when the cell's inputs change
            cache = out / "transfer" / f"{cell.key}__{name}.json"
            if cache.exists():
                cached = json.loads(cache.read_text())
                if cached.get("stamp") == stamp:
                    row[name] = cached["value"]
                    continue
            if adv is None:
                adv = load_adversarial(out, cell)
                x, x_adv = adv["x"].to(model.device), adv["x_adv"].to(model.device)
                pred_clean, pred_adv = model(x).argmax(1), model(x_adv).argmax(1)
            mb, ma = g(x, pred_clean), g(x_adv, pred_adv)
            row[name] = {"l1": float(map_l1(ma, mb).mean()), "iou": float(map_iou(ma, mb).mean())}
            atomic_write_json(cache, {"stamp": stamp, "value": row[name]})
        matrix[cell.interpreter] = row
    return matrix


def transfer_markdown(matrix: dict[str, dict[str, dict]]) -> str:
    if not matrix:
        return "(no ADV^2 cells with their adversarial inputs for the ResNet-20 yet)"
    cols = list(next(iter(matrix.values())))
    lines = ["| made against \\ measured on | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for row, vals in matrix.items():
        lines.append(f"| {row} | " + " | ".join(f"L1 {vals[c]['l1']:.3f} / IoU {vals[c]['iou']:.2f}" for c in cols)
                     + " |")
    return "\n".join(lines)


def _read_records(folder: Path) -> list[dict[str, Any]]:
    """Every cell record in ``folder``; an unreadable one (e.g. of a cell outside this selection, which the
    engine did not re-run) is named in a warning and left out of the tables."""
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
            _ = rec["config"]["cell"]["model"]  # a cell record names its cell
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s is not a readable cell record (%s: %s); left out of the tables (delete it, or rerun "
                        "with its cell selected)", path, type(exc).__name__, exc)
            continue
        records.append(rec)
    return records


def reproduce(out: str | Path, *, models: list[str] | None = None, interpreters: tuple[str, ...] = INTERPRETERS,
              attacks: tuple[str, ...] = ATTACKS, frameworks: tuple[str, ...] = ("pgd", "cw", "stadv"),
              n: int = 100, n_small: int = 32, steps_scale: float = 0.25, seed: int = 0, workers: int = 1,
              data: str = "cifar10", progress: bool = True, mask_restarts: int = 1, backend: str = "local",
              address: str | None = None, model_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) the grid and write ``results.json`` and ``results.md`` into ``out``. The tables hold
    every cell finished in ``out``, also those of earlier runs with other selections. ``models``: zoo names or
    any other model spec, each loaded with ``model_options`` (see :func:`build_cells`)."""
    out = Path(out)
    models = models or available_models()
    cells = build_cells(models, interpreters, n=n, n_small=n_small, steps_scale=steps_scale, seed=seed,
                        attacks=attacks, frameworks=frameworks, mask_restarts=mask_restarts,
                        model_options=model_options)
    run_grid(cells, out, data=data, workers=workers, progress=progress, backend=backend, address=address)
    records = sorted(_read_records(out / "cells"), key=_order)
    done = [Cell(**{**r["config"]["cell"], "options": tuple(tuple(o) for o in r["config"]["cell"]["options"]),
                    "model_options": tuple(tuple(o) for o in r["config"]["cell"].get("model_options", ()))})
            for r in records]
    matrix = transferability(out, done, tuple(dict.fromkeys(c.interpreter for c in done)))
    summary = {"cells": [{"cell": r["config"]["cell"], "n": r["n"], "mean": r["mean"]} for r in records],
               "transferability": matrix, "steps_scale": steps_scale, "seed": seed}
    atomic_write_json(out / "results.json", summary)
    md = (f"# xaisec reproduction benchmark (CIFAR-10, eps 8/255, random target class, steps x{steps_scale})\n\n"
          + markdown_table(records) + "\n\n## Interpreter transferability (ADV^2 on the ResNet-20)\n\n"
          + transfer_markdown(matrix) + "\n")
    atomic_write_text(out / "results.md", md)
    atomic_write_json(out / "tables.json", summary)  # the names every paper's folder uses (index.html)
    atomic_write_text(out / "tables.md", md)
    return summary


def load_summary(out: str | Path) -> dict[str, Any]:
    return json.loads((Path(out) / "results.json").read_text())
