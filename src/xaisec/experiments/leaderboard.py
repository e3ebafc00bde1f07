"""The explanation-robustness leaderboard: how well each model (and defended model) keeps its explanations
honest under one fixed threat model, in ``leaderboard.json`` and a static, sortable ``leaderboard.html``.

Threat model (:func:`threat_model`): L-inf, eps 8/255, white-box (attacks differentiate through the whole
model, a defense included; straight-through for bit-depth squeezing, whose gradient is zero).

* accuracy: clean top-1 on a seeded sample of test images, and under untargeted PGD-20 (step 2/255,
  seeded random start) on a seeded sample;
* explanations: ADV^2 (pgd framework, random target class, target map = the benign map, the papers' step
  schedules x ``steps_scale`` 0.25) on seeded, correctly classified test images, per interpreter (grad, cam,
  gradcam, and rts where the model has an RTS network): mean IoU (top 20% pixels) and L1 of the adversarial
  map to the benign one, and the attack's success rate. A high IoU means the attacker fooled the
  classifier while the explanation still looked benign; the board ranks by the mean IoU over grad, cam
  and gradcam, lowest (hardest to fake) first.

Entries come from the cell records of the ADV^2 reproduction grid (:mod:`xaisec.experiments.reproduce`;
the accuracy is evaluated here), from entry files, or from :func:`evaluate` (``xaisec leaderboard --add``),
which computes everything through the grid engine so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import xaisec
from xaisec.utils.checks import XaisecError
from xaisec.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

SCHEMA = 1
EPS = 8 / 255
PGD_STEPS = 20
PGD_STEP_SIZE = 2 / 255
STEPS_SCALE = 0.25
INTERPRETERS = ("grad", "cam", "gradcam", "rts")
RANKED = ("grad", "cam", "gradcam")  # the interpreters every model has: the ranking's mean is over these
N_CLEAN = 1000
N_ROBUST = 500
OPTIONAL = ("rts",)  # skipped (with a warning) when the model has no such network


def threat_model(steps_scale: float = STEPS_SCALE) -> dict[str, Any]:
    """The settings that define the leaderboard's threat model (JSON-ready)."""
    return {
        "norm": "Linf", "eps": EPS, "eps_text": "8/255",
        "white_box": "attacks differentiate through the whole model, defense included (straight-through "
                     "gradient for bit-depth squeezing)",
        "accuracy_attack": {"name": "PGD", "steps": PGD_STEPS, "step_size": PGD_STEP_SIZE, "step_size_text": "2/255",
                            "random_start": True, "restarts": 1, "loss": "cross-entropy, untargeted",
                            "images": "seeded random test images (misclassified ones count as broken)"},
        "explanation_attack": {"name": "adv2", "framework": "pgd", "steps_scale": steps_scale,
                               "target_class": "random", "target_map": "benign",
                               "step": "1/255 decaying to 0.1/255, the papers' schedules x steps_scale",
                               "images": "seeded random correctly classified test images"},
        "metrics": {
            "iou": "IoU of the top-20% pixels of the adversarial map g(x_adv) and the benign map g(x); high = "
                   "the attack kept the explanation looking benign",
            "l1": "mean |g(x_adv) - g(x)| per pixel, maps min-max normalised; low = kept",
            "success": "ADV^2 reached its random target class (iou and l1 average over every attacked image; "
                       "iou_successful over the successful ones)",
            "mean_iou": "mean IoU over " + ", ".join(RANKED) + " (the ranking: lowest first)",
        },
    }


def _settings(steps_scale: float, seed: int, n_clean: int, n_robust: int) -> dict[str, Any]:
    return {"eps": EPS, "pgd_steps": PGD_STEPS, "pgd_step_size": PGD_STEP_SIZE, "steps_scale": steps_scale,
            "seed": seed, "n_clean": n_clean, "n_robust": n_robust}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def slug(name: str) -> str:
    """A file-name-safe form of an entry name (with a short hash when characters had to be replaced)."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.")[:80] or "entry"
    return clean if clean == name else f"{clean}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def _check_interpreters(interpreters: Sequence[str]) -> tuple[str, ...]:
    from xaisec.interpreters import INTERPRETERS as KNOWN

    names = tuple(dict.fromkeys(interpreters))
    if not names:
        raise XaisecError("give at least one interpreter, e.g. grad,cam,gradcam,rts")
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise XaisecError(f"unknown interpreter {', '.join(unknown)}; known: {', '.join(KNOWN)}")
    return names


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise XaisecError(f"{what} must be an int >= 1, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------ computing


def accuracy_record(model: torch.nn.Module, data: Any, *, n_clean: int = N_CLEAN, n_robust: int = N_ROBUST,
                    seed: int = 0, batch_size: int = 100) -> dict[str, Any]:
    """Clean accuracy on ``n_clean`` and PGD-20 (L-inf 8/255, step 2/255, seeded random start) accuracy on
    ``n_robust`` seeded random images of ``data`` (an ImageDataset with the model's labels). Both in [0, 1]."""
    from xaisec.data.labels import align_labels
    from xaisec.training.evaluate import pgd_accuracy, tensor_accuracy

    _count(n_clean, "n_clean")
    _count(n_robust, "n_robust")
    data = align_labels(data, model)
    if len(data) == 0:
        raise XaisecError(f"{data.name}: no images to measure accuracy on")
    device = next(model.parameters()).device
    model.eval()
    clean = data.sample(n_clean, seed=seed)
    x, y = clean.float_images(device), clean.labels.to(device)
    clean_acc = tensor_accuracy(model, x, y, batch_size)
    robust = data.sample(n_robust, seed=seed + 1)
    xr, yr = robust.float_images(device), robust.labels.to(device)
    robust_acc = pgd_accuracy(model, xr, yr, EPS, PGD_STEPS, seed, alpha=PGD_STEP_SIZE, batch_size=batch_size)
    return {"clean_accuracy": clean_acc, "clean_n": len(clean), "robust_accuracy": robust_acc,
            "robust_n": len(robust), "data": data.name, "seed": seed}


def adv2_record(model: torch.nn.Module, data: Any, interpreter: str, *, n: int = 32, steps_scale: float = STEPS_SCALE,
                seed: int = 0, cell: dict[str, Any] | None = None) -> dict[str, Any]:
    """ADV^2 (pgd framework, eps 8/255, random target) against ``interpreter`` on ``n`` seeded, correctly
    classified images of ``data``: a cell record as the reproduction grid writes it
    (:func:`xaisec.experiments.records.attack_record`)."""
    from xaisec.experiments.records import attack_record
    from xaisec.experiments.runner import correctly_classified, run_attack

    ds = correctly_classified(model, data, _count(n, "n"), seed=seed)
    device = next(model.parameters()).device
    res = run_attack(model, interpreter, "adv2", ds.float_images(device), ds.labels.to(device), framework="pgd",
                     seed=seed, eps=EPS, steps_scale=steps_scale)
    info = {"interpreter": interpreter, "attack": "adv2", "framework": "pgd", "n": n, "steps_scale": steps_scale,
            "seed": seed, "options": [], **(cell or {})}
    return attack_record(res, config={"cell": info, "data": ds.name}, seed=seed,
                         class_name=getattr(model, "class_name", str))


def _available(model: torch.nn.Module, interpreters: tuple[str, ...]) -> tuple[str, ...]:
    """The interpreters that can be built for ``model``; an optional one (rts) without a network is skipped."""
    from xaisec.interpreters import get as get_interpreter

    keep = []
    for name in interpreters:
        try:
            get_interpreter(name, model)
        except XaisecError as exc:
            if name not in OPTIONAL:
                raise XaisecError(f"interpreter {name!r} does not work on this model: {exc}") from exc
            log.warning("leaderboard: %s has no %s network, so %s is skipped (train one with `xaisec train-%s`)",
                        getattr(model, "name", "the model"), name.upper(), name, name)
            log.debug("leaderboard: %s", exc)
            continue
        keep.append(name)
    if not keep:
        raise XaisecError("none of the interpreters works on this model")
    return tuple(keep)


def evaluate(model: torch.nn.Module, data: Any, *, name: str, model_spec: str | None = None,
             defense: str | None = None, bpda: bool | None = None, interpreters: Sequence[str] = INTERPRETERS,
             n: int = 32, n_clean: int = N_CLEAN, n_robust: int = N_ROBUST, steps_scale: float = STEPS_SCALE,
             seed: int = 0, cache: str | Path, command: str | None = None, progress: bool = False) -> dict[str, Any]:
    """One leaderboard entry for ``model`` (a Classifier; behind ``defense``, a squeezer spec such as
    ``"median:2"``, when given) on ``data`` (its test ImageDataset): accuracy and ADV^2 per interpreter.

    The pieces run as grid-engine tasks whose records land in ``cache``/<name>-<hash> (the hash covers the
    weights, the defense and every setting), so an interrupted run resumes and a repeated one is instant.
    ``bpda`` None: straight-through only for bit-depth squeezing. Same seed, same numbers.
    """
    from xaisec.defenses import defend, fingerprint, parse
    from xaisec.experiments.engine import Task, run_tasks

    interpreters = _check_interpreters(interpreters)
    for value, what in ((n, "n"), (n_clean, "n_clean"), (n_robust, "n_robust")):
        _count(value, what)
    if not (isinstance(steps_scale, (int, float)) and math.isfinite(steps_scale) and steps_scale > 0):
        raise XaisecError(f"steps_scale must be a number > 0, got {steps_scale!r}")
    base = model
    if defense is not None:
        squeezer = parse(defense)
        defense = squeezer.spec
        bpda = squeezer.spec.startswith("bits") if bpda is None else bool(bpda)
        model = defend(base, squeezer, bpda=bpda)
    else:
        bpda = None
    model.eval()
    interpreters = _available(model, interpreters)
    settings = _settings(steps_scale, seed, n_clean, n_robust)
    acc = _accuracy(model, base, data, name=name, defense=defense, bpda=bpda, n_clean=n_clean, n_robust=n_robust,
                    seed=seed, cache=Path(cache), progress=progress)
    key = json.dumps({"weights": fingerprint(base), "defense": defense, "bpda": bpda, "data": [data.name, len(data)],
                      "eps": EPS, "steps_scale": steps_scale, "seed": seed, "n": n}, sort_keys=True)
    folder = Path(cache) / f"{slug(name)}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    cell = {"model": model_spec or name, "defense": defense, "bpda": bpda}
    tasks = [Task(f"adv2__{i}", "xaisec.experiments.leaderboard:adv2_record",
                  (("model", model), ("data", data), ("interpreter", i), ("n", n), ("steps_scale", steps_scale),
                   ("seed", seed), ("cell", cell))) for i in interpreters]
    run_tasks(tasks, folder, progress=progress, desc=f"leaderboard {name}")
    cells = {i: json.loads((folder / f"adv2__{i}.json").read_text()) for i in interpreters}
    first = next(iter(cells.values()))
    made = {"how": "xaisec leaderboard --add", "command": command, "date": _now(),
            "n_images": {"adv2": {i: r["n"] for i, r in cells.items()}, "clean": acc["clean_n"],
                         "robust": acc["robust_n"]},
            "seed": seed, "torch": first["versions"]["torch"]}
    return make_entry(name, model=model_spec or name, defense=defense, bpda=bpda, data=acc["data"], accuracy=acc,
                      cells=cells, settings=settings, version=xaisec.__version__, made=made)


# ------------------------------------------------------------------------------------------ entries


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def make_entry(name: str, *, model: str, defense: str | None, data: str | None, accuracy: dict[str, Any] | None,
               cells: dict[str, dict[str, Any]], settings: dict[str, Any], version: str, made: dict[str, Any],
               bpda: bool | None = None) -> dict[str, Any]:
    """An entry from its ADV^2 cell records (interpreter -> record) and its accuracy record (or None)."""
    interp = {}
    for i, r in cells.items():
        m = r["mean"]
        interp[i] = {"iou": _finite(m.get("iou")), "l1": _finite(m.get("l1")), "success": _finite(m.get("success")),
                     "iou_successful": _iou_successful(r), "n": r.get("n"), "iterations": r.get("iterations"),
                     "seconds_per_image": _finite(m.get("seconds_per_image"))}
    ranked = [i for i in RANKED if i in interp]
    acc = accuracy or {}
    return {
        "name": name, "model": model, "defense": defense, "bpda": bpda, "data": data,
        "dataset": _dataset_of(model, data),
        "clean_accuracy": _finite(acc.get("clean_accuracy")), "clean_n": acc.get("clean_n"),
        "robust_accuracy": _finite(acc.get("robust_accuracy")), "robust_n": acc.get("robust_n"),
        "interpreters": interp,
        "mean_iou": _mean(interp[i]["iou"] for i in ranked), "mean_l1": _mean(interp[i]["l1"] for i in ranked),
        "mean_success": _mean(v["success"] for v in interp.values()), "mean_over": ranked,
        "settings": settings, "xaisec_version": version, "made": made,
    }


def _iou_successful(record: dict[str, Any]) -> float | None:
    """Mean IoU over the images where ADV^2 reached its target (from the record's per-image rows), or None."""
    rows = record.get("images")
    if not isinstance(rows, list):
        return None
    vals = [_finite(r.get("iou")) for r in rows if isinstance(r, dict) and r.get("success") in (1, 1.0, True)]
    return _mean(vals)


def _dataset_of(model: str, data: str | None) -> str:
    from xaisec.models import MODELS

    if model in MODELS:
        return MODELS[model].dataset
    text = (data or "").lower()
    for known in ("cifar100", "cifar10", "pneumoniamnist", "imagenet"):
        if known in text:
            return known
    return data.split(":")[0] if data else "unknown"


def is_standard(entry: dict[str, Any], steps_scale: float = STEPS_SCALE) -> bool:
    """Whether the entry was made under the board's threat model (eps, PGD and ADV^2 step budgets)."""
    s = entry.get("settings") or {}
    return (math.isclose(s.get("eps", -1), EPS, abs_tol=1e-9) and s.get("pgd_steps") == PGD_STEPS
            and math.isclose(s.get("pgd_step_size", -1), PGD_STEP_SIZE, abs_tol=1e-9)
            and math.isclose(s.get("steps_scale", -1), steps_scale, rel_tol=1e-9))


# ------------------------------------------------------------------------------------------ reading results


def _json_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise XaisecError(f"results folder {source} does not exist; give the --out folder of `xaisec bench reproduce` "
                          "(holding cells/*.json) or a folder of leaderboard entry files")
    files = [p for p in sorted(source.glob("*.json")) + sorted(source.glob("cells/*.json"))
             + sorted(source.glob("entries/*.json")) if not p.name.startswith(".")]
    return files


def _cell_problem(rec: dict[str, Any]) -> str | None:
    """What is wrong with a cell record (None when it is usable)."""
    cell = rec["config"]["cell"] if isinstance(rec.get("config"), dict) else None
    if not isinstance(cell, dict):
        return "config.cell is not an object"
    for k in ("model", "interpreter", "attack", "framework"):
        if not isinstance(cell.get(k), str):
            return f"config.cell.{k} is missing"
    mean = rec.get("mean")
    if not isinstance(mean, dict):
        return "mean is missing"
    for k in ("iou", "l1", "success"):
        if _finite(mean.get(k)) is None:
            return f"mean.{k} is missing or not a finite number"
    if isinstance(rec.get("n"), bool) or not isinstance(rec.get("n"), int) or rec["n"] < 1:
        return "n is missing"
    return None


def _off_threat(rec: dict[str, Any], steps_scale: float) -> str | None:
    cfg, cell = rec["config"], rec["config"]["cell"]
    if not math.isclose(_finite(cfg.get("eps")) or -1.0, EPS, abs_tol=1e-6):
        return f"eps {cfg.get('eps')} is not 8/255"
    if not math.isclose(_finite(cell.get("steps_scale")) or -1.0, steps_scale, rel_tol=1e-9):
        return f"steps_scale {cell.get('steps_scale')} is not {steps_scale}"
    if cfg.get("target_class", "random") != "random" or cfg.get("target_map", "benign") != "benign":
        return "not a random-target, benign-map ADV^2 run"
    if cell.get("options"):
        return f"cell options {cell['options']} differ from the standard attack"
    return None


def _entry_problem(e: Any) -> str | None:
    if not isinstance(e, dict) or not isinstance(e.get("name"), str):
        return "an entry has no name"
    if not isinstance(e.get("interpreters"), dict) or not e["interpreters"]:
        return f"entry {e.get('name')!r} has no interpreters"
    for i, v in e["interpreters"].items():
        if not isinstance(v, dict) or _finite(v.get("iou")) is None:
            return f"entry {e['name']!r}: interpreter {i} has no finite iou"
    return None


def read_results(sources: Sequence[str | Path], *, interpreters: Sequence[str] = INTERPRETERS,
                 steps_scale: float = STEPS_SCALE) -> tuple[dict[tuple[str, str | None], dict[str, tuple[dict, Path]]],
                                                            list[dict[str, Any]], list[tuple[Path, str]]]:
    """Read every JSON file of ``sources`` (grid folders with cells/*.json, folders of entry files or
    leaderboard.json files, single files).

    Returns (cells, entries, bad): the usable ADV^2 pgd-framework cells as (model, defense) -> interpreter ->
    (record, path); the entries of entry / leaderboard files; and (path, reason) of every unreadable or
    malformed file (cells of other attacks, interpreters or settings are not bad, just not used).
    """
    interpreters = _check_interpreters(interpreters)
    cells: dict[tuple[str, str | None], dict[str, tuple[dict, Path]]] = {}
    entries: list[dict[str, Any]] = []
    bad: list[tuple[Path, str]] = []
    for source in sources:
        for path in _json_files(Path(source)):
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                bad.append((path, f"not readable JSON ({type(exc).__name__}: {str(exc)[:80]})"))
                continue
            if not isinstance(rec, dict):
                bad.append((path, "not a JSON object"))
            elif "config" in rec and "mean" in rec:
                if (problem := _cell_problem(rec)) is not None:
                    bad.append((path, problem))
                    continue
                cell = rec["config"]["cell"]
                if cell["attack"] != "adv2" or cell["framework"] != "pgd" or cell["interpreter"] not in interpreters:
                    continue
                if (off := _off_threat(rec, steps_scale)) is not None:
                    log.info("leaderboard: %s not used: %s", path, off)
                    continue
                key = (cell["model"], cell.get("defense"))
                slot = cells.setdefault(key, {})
                if cell["interpreter"] in slot:
                    log.warning("leaderboard: %s and %s are both the %s cell of %s; using the later one",
                                slot[cell["interpreter"]][1], path, cell["interpreter"], key[0])
                slot[cell["interpreter"]] = (rec, path)
            elif isinstance(rec.get("entries"), list):
                for e in rec["entries"]:
                    if (problem := _entry_problem(e)) is not None:
                        bad.append((path, problem))
                    else:
                        entries.append(e)
            elif "interpreters" in rec and "name" in rec:
                if (problem := _entry_problem(rec)) is not None:
                    bad.append((path, problem))
                else:
                    entries.append(rec)
            elif ("cells" in rec and "transferability" in rec) or ("clean_accuracy" in rec and "robust_n" in rec):
                log.debug("leaderboard: %s is a grid summary or an accuracy record, not a cell", path)
            else:
                bad.append((path, "neither a cell record, an entry nor a leaderboard"))
    return cells, entries, bad


def _zoo_accuracy(model_name: str, defense: str | None, *, n_clean: int, n_robust: int, seed: int, cache: Path,
                  progress: bool) -> dict[str, Any] | None:
    """Accuracy of a zoo model named in cell records (cached like :func:`evaluate`'s); None if it cannot load."""
    from xaisec.data import load as load_data
    from xaisec.defenses import defend, parse
    from xaisec.models import MODELS
    from xaisec.models.loading import load_model_spec

    if model_name not in MODELS:
        log.warning("leaderboard: %s is not a zoo model; its accuracy is left empty (use --add to measure it)",
                    model_name)
        return None
    try:
        base = load_model_spec(model_name)
        bpda = parse(defense).spec.startswith("bits") if defense else None
        model = defend(base, defense, bpda=bool(bpda)) if defense else base
        data = load_data(MODELS[model_name].dataset, "test")
    except (XaisecError, OSError) as exc:
        log.warning("leaderboard: cannot evaluate the accuracy of %s (%s); left empty", model_name, exc)
        return None
    return _accuracy(model.eval(), base, data, name=model_name + (f"+{defense}" if defense else ""), defense=defense,
                     bpda=bpda, n_clean=n_clean, n_robust=n_robust, seed=seed, cache=cache, progress=progress)


def _accuracy(model: torch.nn.Module, base: torch.nn.Module, data: Any, *, name: str, defense: str | None,
              bpda: bool | None, n_clean: int, n_robust: int, seed: int, cache: Path, progress: bool) -> dict[str, Any]:
    """:func:`accuracy_record` as a grid-engine task cached in ``cache``/<name>-acc-<hash of weights and settings>."""
    from xaisec.defenses import fingerprint
    from xaisec.experiments.engine import Task, run_tasks

    key = {"weights": fingerprint(base), "defense": defense, "data": [data.name, len(data)], "n_clean": n_clean,
           "n_robust": n_robust, "seed": seed, "eps": EPS, "steps": PGD_STEPS, **({"bpda": bpda} if defense else {})}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    folder = cache / f"{slug(name)}-acc-{digest}"
    task = Task("accuracy", "xaisec.experiments.leaderboard:accuracy_record",
                (("model", model), ("data", data), ("n_clean", n_clean), ("n_robust", n_robust), ("seed", seed)))
    run_tasks([task], folder, progress=progress, desc=f"accuracy {name}")
    return json.loads((folder / "accuracy.json").read_text())


def build(sources: Sequence[str | Path], out: str | Path, *, interpreters: Sequence[str] = INTERPRETERS,
          steps_scale: float = STEPS_SCALE, n_clean: int = N_CLEAN, n_robust: int = N_ROBUST, seed: int = 0,
          accuracy: bool = True, fresh: bool = False, cache: str | Path | None = None, command: str | None = None,
          progress: bool = False) -> dict[str, Any]:
    """Build ``out``/leaderboard.json and leaderboard.html from ``sources`` (see :func:`read_results`).

    Cell records become one entry per model; their accuracy is evaluated here (``accuracy=False``: left
    empty) and cached under ``cache`` (default ``out``/cells). Entries already in ``out``/leaderboard.json
    that the sources do not replace are kept unless ``fresh``. Bad files are named in a warning and skipped;
    nothing usable at all is an error.
    """
    out = Path(out)
    cache = Path(cache) if cache is not None else out / "cells"
    cells, entries, bad = read_results(sources, interpreters=interpreters, steps_scale=steps_scale)
    if bad:
        log.warning("leaderboard: skipped %d bad file(s): %s", len(bad), "; ".join(f"{p} ({why})" for p, why in bad))
    if not cells and not entries:
        where = ", ".join(str(s) for s in sources)
        named = f"; bad files: {', '.join(str(p) for p, _ in bad)}" if bad else ""
        raise XaisecError(f"no usable ADV^2 cell records (pgd framework, eps 8/255, steps_scale {steps_scale}) or "
                          f"leaderboard entries in {where}{named}; run `xaisec bench reproduce --out DIR` and give "
                          "--from DIR")
    settings = _settings(steps_scale, seed, n_clean, n_robust)
    made_entries = []
    for (model, defense), slot in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        recs = {i: slot[i][0] for i in _check_interpreters(interpreters) if i in slot}
        acc = (_zoo_accuracy(model, defense, n_clean=n_clean, n_robust=n_robust, seed=seed, cache=cache,
                             progress=progress) if accuracy else None)
        first = next(iter(recs.values()))
        cell = first["config"]["cell"]
        made = {"how": "ADV^2 cell records of the adv2 grid" + ("; accuracy evaluated here" if acc else ""),
                "command": command, "date": _now(),
                "records": f"made by xaisec bench reproduce (adv2 grid, pgd framework, steps-scale "
                           f"{cell.get('steps_scale')}, seed {cell.get('seed')}, xaisec "
                           f"{first.get('versions', {}).get('xaisec', '?')})",
                "record_files": [str(slot[i][1]) for i in recs],
                "n_images": {"adv2": {i: r["n"] for i, r in recs.items()},
                             "clean": acc["clean_n"] if acc else None, "robust": acc["robust_n"] if acc else None},
                "seed": cell.get("seed"), "torch": first.get("versions", {}).get("torch")}
        name = model + (f"+{defense}" if defense else "")
        made_entries.append(make_entry(
            name, model=model, defense=defense, bpda=cell.get("bpda"), data=first["config"].get("data"),
            accuracy=acc, cells=recs, version=first.get("versions", {}).get("xaisec", "unknown"), made=made,
            settings={**settings, "seed": cell.get("seed", seed),
                      **({} if acc else {"n_clean": None, "n_robust": None})}))
    board = _load_board(out) if not fresh else None
    kept = board["entries"] if board else []
    new = entries + made_entries
    if n_kept := len({e["name"] for e in kept} - {e["name"] for e in new}):
        log.info("leaderboard: kept %d entries already in %s (--fresh drops them)", n_kept, out / "leaderboard.json")
    merged = merge(kept, new)
    return write_board(out, merged, steps_scale=steps_scale, command=command)


def merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` entries with every entry of ``new`` added or replacing the one of the same name."""
    by_name = {e["name"]: e for e in old}
    for e in new:
        if e["name"] in by_name and by_name[e["name"]] is not e:
            log.info("leaderboard: replacing entry %s", e["name"])
        by_name[e["name"]] = e
    return list(by_name.values())


def _load_board(out: Path) -> dict[str, Any] | None:
    path = out / "leaderboard.json"
    if not path.exists():
        return None
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise XaisecError(f"{path} is not readable JSON ({exc}); delete it or use --fresh") from exc
    if not isinstance(board, dict) or not isinstance(board.get("entries"), list):
        raise XaisecError(f"{path} is not a leaderboard (no 'entries' list); delete it or use --fresh")
    return board


def load(out: str | Path) -> dict[str, Any]:
    """The leaderboard in ``out``/leaderboard.json (an error if there is none)."""
    board = _load_board(Path(out))
    if board is None:
        raise XaisecError(f"no leaderboard.json in {out}; build one with "
                          f"`xaisec leaderboard --from RESULTS --out {out}`")
    return board


def _sort_key(e: dict[str, Any]) -> tuple:
    m = e.get("mean_iou")
    return (e.get("dataset") or "", m is None, m if m is not None else 0.0, e["name"])


def ranked(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries in board order (per data set, lowest mean IoU first) with ``rank`` set within each data set."""
    order = sorted(entries, key=_sort_key)
    counts: dict[str, int] = {}
    result = []
    for e in order:
        ds = e.get("dataset") or ""
        counts[ds] = counts.get(ds, 0) + 1
        result.append({**e, "rank": counts[ds]})
    return result


def write_board(out: str | Path, entries: list[dict[str, Any]], *, steps_scale: float = STEPS_SCALE,
                command: str | None = None) -> dict[str, Any]:
    """Write ``out``/leaderboard.json and leaderboard.html for ``entries``; returns the board."""
    out = Path(out)
    rows = ranked(entries)
    for e in rows:
        if not is_standard(e, steps_scale):
            log.warning("leaderboard: %s was made with other settings (%s) than the board's threat model; it is "
                        "marked in the table", e["name"], e.get("settings"))
    board = {"leaderboard": "xaisec explanation robustness", "schema": SCHEMA, "xaisec_version": xaisec.__version__,
             "updated": _now(), "command": command, "threat_model": threat_model(steps_scale),
             "ranking": "per data set, by mean_iou ascending (lower = explanations harder to fake)",
             "interpreters": list(INTERPRETERS), "entries": rows}
    atomic_write_json(out / "leaderboard.json", board)
    atomic_write_text(out / "leaderboard.html", render_html(board))
    log.info("leaderboard: %d entries in %s", len(rows), out / "leaderboard.json")
    return board


def add(out: str | Path, entry: dict[str, Any], *, command: str | None = None) -> dict[str, Any]:
    """Add ``entry`` to ``out``'s board (replacing one of the same name), write its entry file
    ``out``/entries/<name>.json, and rebuild the HTML."""
    out = Path(out)
    board = _load_board(out)
    atomic_write_json(out / "entries" / f"{slug(entry['name'])}.json", entry)
    steps = STEPS_SCALE  # a new board has the standard threat model; an entry made otherwise is marked
    if board is not None:
        steps = board.get("threat_model", {}).get("explanation_attack", {}).get("steps_scale", STEPS_SCALE)
    return write_board(out, merge(board["entries"] if board else [], [entry]), steps_scale=steps,
                       command=command if board is None else board.get("command"))


# ------------------------------------------------------------------------------------------ HTML


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _td(text: str, value: Any = None, *, cls: str = "", style: str = "", title: str = "") -> str:
    v = "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
    attrs = f' data-v="{html.escape(v)}"'
    attrs += f' class="{cls}"' if cls else ""
    attrs += f' style="{style}"' if style else ""
    attrs += f' title="{html.escape(title)}"' if title else ""
    return f"<td{attrs}>{html.escape(text)}</td>"


def _heat(iou: float | None) -> str:
    """Background for an IoU cell: red where the attack kept the map (high IoU), green where it did not."""
    if iou is None:
        return ""
    hue = 120 * (1 - max(0.0, min(1.0, iou)))
    return f"background:hsl({hue:.0f},70%,88%)"


COLORS = {"grad": "#4c72b0", "cam": "#dd8452", "gradcam": "#55a868", "rts": "#c44e52", "mask": "#8172b3"}
KIND_COLORS = {"standard": "#4c72b0", "defended": "#c44e52", "robust-trained": "#55a868"}


def _kind(e: dict[str, Any]) -> str:
    from xaisec.models import MODELS

    if e.get("defense"):
        return "defended"
    desc = MODELS[e["model"]].description.lower() if e.get("model") in MODELS else ""
    return "robust-trained" if "adversarially" in desc or "robust trained" in desc else "standard"


def _scatter_svg(rows: list[dict[str, Any]]) -> str:
    """Mean ADV^2 IoU (y) against PGD-20 accuracy (x), one labelled point per entry."""
    pts = [e for e in rows if e.get("robust_accuracy") is not None and e.get("mean_iou") is not None]
    w, h, left, right, top, bottom = 640, 400, 60, 190, 20, 50
    pw, ph = w - left - right, h - top - bottom
    top_acc = max([0.0] + [e["robust_accuracy"] for e in pts])
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2) if top_acc * 1.15 <= 5 * s)
    xmax = step * max(1, math.ceil(top_acc * 1.15 / step))

    pad = 8  # keep points on the axes inside the frame

    def sx(v: float) -> float:
        return left + pad + (pw - 2 * pad) * v / xmax

    def sy(v: float) -> float:
        return top + pad + (ph - 2 * pad) * (1 - v)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             'aria-label="mean ADV2 IoU against PGD-20 accuracy">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>']
    if not pts:
        parts.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle">no entry has both a robust '
                     'accuracy and a mean IoU yet</text>')
    for i in range(6):
        v = i / 5
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for i in range(round(xmax / step) + 1):
        v = i * step
        parts.append(f'<line x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{top}" y2="{top + ph}" stroke="#e3e3e3"/>'
                     f'<text x="{sx(v):.1f}" y="{top + ph + 16}" text-anchor="middle">{v * 100:.0f}%</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{h - 10}" text-anchor="middle">accuracy under PGD-20, L-inf 8/255 '
                 '(higher = more robust)</text>')
    parts.append(f'<text transform="translate(16,{top + ph / 2}) rotate(-90)" text-anchor="middle">mean ADV² IoU '
                 '(lower = harder to fake)</text>')
    # labels right of the plot, spread out vertically, with leader lines
    order = sorted(pts, key=lambda e: sy(e["mean_iou"]))
    drawn = sorted(range(len(order)), key=lambda k: _kind(order[k]) != "standard")  # defended / robust on top
    ys: list[float] = []
    for e in order:
        y = max(sy(e["mean_iou"]), (ys[-1] + 15) if ys else top + 6)
        ys.append(y)
    overflow = (ys[-1] - (top + ph)) if ys else 0
    if overflow > 0:
        ys = [max(top + 6, y - overflow) for y in ys]
    for k in drawn:
        e, ly = order[k], ys[k]
        px, py = sx(e["robust_accuracy"]), sy(e["mean_iou"])
        color = KIND_COLORS[_kind(e)]
        parts.append(f'<line x1="{px:.1f}" y1="{py:.1f}" x2="{left + pw + 8}" y2="{ly:.1f}" stroke="{color}" '
                     'stroke-opacity="0.35"/>')
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="5" fill="{color}" stroke="#fff"><title>'
                     f'{html.escape(e["name"])}: IoU {e["mean_iou"]:.3f}, PGD-20 {_pct(e["robust_accuracy"])}'
                     '</title></circle>')
        parts.append(f'<text x="{left + pw + 12}" y="{ly + 4:.1f}" fill="{color}">{html.escape(_short(e["name"]))}'
                     '</text>')
    lx = left + 8
    for kind, color in KIND_COLORS.items():
        parts.append(f'<circle cx="{lx}" cy="{top + ph - 10}" r="5" fill="{color}"/>'
                     f'<text x="{lx + 9}" y="{top + ph - 6}">{kind}</text>')
        lx += 20 + 8 * len(kind)
    parts.append("</svg>")
    return "".join(parts)


def _short(name: str, limit: int = 26) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


def _bars_svg(rows: list[dict[str, Any]], interpreters: Sequence[str]) -> str:
    """ADV^2 IoU per interpreter, one group of horizontal bars per entry."""
    bar, gap, left, right, top = 9, 12, 200, 60, 34
    w = 640
    pw = w - left - right
    group = bar * len(interpreters) + gap
    h = top + group * len(rows) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             'aria-label="ADV2 IoU per interpreter">']
    lx = left
    for i in interpreters:
        parts.append(f'<rect x="{lx}" y="8" width="12" height="12" fill="{COLORS.get(i, "#777")}"/>'
                     f'<text x="{lx + 16}" y="18">{html.escape(i)}</text>')
        lx += 30 + 8 * len(i)
    for k in range(6):
        x = left + pw * k / 5
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{h - 36}" stroke="#e3e3e3"/>'
                     f'<text x="{x:.1f}" y="{h - 22}" text-anchor="middle">{k / 5:.1f}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{h - 6}" text-anchor="middle">ADV² IoU of the adversarial map to the '
                 'benign map (top 20%)</text>')
    for r, e in enumerate(rows):
        y0 = top + r * group
        parts.append(f'<text x="{left - 8}" y="{y0 + bar * len(interpreters) / 2 + 4:.1f}" text-anchor="end">'
                     f'{html.escape(_short(e["name"]))}</text>')
        for j, i in enumerate(interpreters):
            v = (e["interpreters"].get(i) or {}).get("iou")
            y = y0 + j * bar
            if v is None:
                parts.append(f'<text x="{left + 4}" y="{y + bar - 1}" font-size="9" fill="#999">{i}: n/a</text>')
                continue
            parts.append(f'<rect x="{left}" y="{y}" width="{pw * v:.1f}" height="{bar - 1}" '
                         f'fill="{COLORS.get(i, "#777")}"><title>{html.escape(e["name"])} {i}: IoU {v:.3f}</title>'
                         f'</rect><text x="{left + pw * v + 4:.1f}" y="{y + bar - 1}" font-size="9">{v:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


_JS = """
(function () {
  function cellValue(row, idx) { return row.children[idx].getAttribute('data-v'); }
  function sortBy(th) {
    var table = th.closest('table');
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var va = cellValue(a, idx), vb = cellValue(b, idx);
      if (va === '' && vb === '') return 0;
      if (va === '') return 1;
      if (vb === '') return -1;
      var na = Number(va), nb = Number(vb);
      var c = (!isNaN(na) && !isNaN(nb)) ? na - nb : va.localeCompare(vb);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { r.classList.remove('ds-first'); body.appendChild(r); });
    table.querySelectorAll('th[data-sort]').forEach(function (h) { h.setAttribute('aria-sort', 'none'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
  }
  document.querySelectorAll('th[data-sort]').forEach(function (th) {
    th.addEventListener('click', function () { sortBy(th); });
    th.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); sortBy(th); }
    });
  });
  document.body.setAttribute('data-ready', '1');
})();
"""

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1500px;
       padding: 0 16px; color: #222; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; }
.sub { color: #555; margin-top: 0; }
table.lb { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
table.lb th, table.lb td { border: 1px solid #ddd; padding: 4px 5px; text-align: right; white-space: nowrap; }
table.lb td.t, table.lb th.t { text-align: left; }
table.lb thead th { background: #f0f2f5; position: sticky; top: 0; }
table.lb th[data-sort] { cursor: pointer; user-select: none; }
table.lb th[data-sort]:hover { background: #e2e6ec; }
table.lb th[aria-sort="ascending"]::after { content: " ▲"; font-size: 10px; }
table.lb th[aria-sort="descending"]::after { content: " ▼"; font-size: 10px; }
table.lb tr.group th { font-weight: 600; text-align: center; background: #e8ebf0; }
table.lb tr.ds-first td { border-top: 2px solid #777; }
.scroll { overflow-x: auto; }
.warn { color: #b35c00; font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.plots figure { margin: 0; } .plots figcaption { color: #555; max-width: 640px; font-size: 13px; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
dl.tm { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
dl.tm dt { font-weight: 600; } dl.tm dd { margin: 0; }
code, pre { background: #f4f4f4; border-radius: 3px; } code { padding: 0 3px; } pre { padding: 8px; overflow-x: auto; }
table.made td, table.made th { text-align: left; white-space: normal; vertical-align: top; }
"""


def render_html(board: dict[str, Any]) -> str:
    """The static, self-contained page: threat model, sortable table, two inline-SVG plots, provenance."""
    rows = board["entries"]
    tm = board["threat_model"]
    ea, aa = tm["explanation_attack"], tm["accuracy_attack"]
    steps_scale = ea["steps_scale"]
    interps = [i for i in board.get("interpreters", INTERPRETERS) if any(i in e["interpreters"] for e in rows)]
    extra = sorted({i for e in rows for i in e["interpreters"]} - set(interps))
    interps += extra
    head = ['<th class="t" data-sort title="rank within the data set">#</th>',
            '<th class="t" data-sort>model</th>', '<th class="t" data-sort>defense</th>',
            '<th class="t" data-sort>data</th>',
            '<th data-sort title="top-1 accuracy on clean test images">clean</th>',
            '<th data-sort title="accuracy under PGD-20, L-inf 8/255">PGD-20</th>',
            f'<th data-sort title="mean ADV² IoU over {", ".join(RANKED)}: the ranking (lower = explanations '
            'harder to fake)">mean IoU</th>',
            '<th data-sort title="mean ADV² success over the interpreters">success</th>']
    for i in interps:
        head += [f'<th data-sort title="{i}: IoU (top 20%) of the ADV² map to the benign map; lower = harder to fake">'
                 'IoU</th>',
                 f'<th data-sort title="{i}: L1 of the ADV² map to the benign map; higher = harder to fake">L1</th>',
                 f'<th data-sort title="{i}: ADV² success rate">succ.</th>']
    head += ['<th data-sort title="images per ADV² cell (see “How each entry was made”)">n</th>']
    group = ('<tr class="group"><th colspan="4"></th><th colspan="2">accuracy</th><th colspan="2">ADV² (summary)</th>'
             + "".join(f'<th colspan="3">{html.escape(i)}</th>' for i in interps) + '<th></th></tr>')
    body = []
    for k, e in enumerate(rows):
        std = is_standard(e, steps_scale)
        shown = e["model"] if e["name"] in (e["model"], f"{e['model']}+{e.get('defense')}") else e["name"]
        tip = f"model {e['model']}" + ("" if std else f"; made with other settings: {json.dumps(e.get('settings'))}")
        tds = [_td(str(e["rank"]), e["rank"], cls="t"),
               _td(shown + ("" if std else " †"), shown, cls="t" + ("" if std else " warn"), title=tip),
               _td(e.get("defense") or "none", e.get("defense") or "", cls="t"),
               _td(e.get("dataset") or "", e.get("dataset"), cls="t", title=e.get("data") or ""),
               _td(_pct(e.get("clean_accuracy")), e.get("clean_accuracy"), title=f"n = {e.get('clean_n')}"),
               _td(_pct(e.get("robust_accuracy")), e.get("robust_accuracy"), title=f"n = {e.get('robust_n')}"),
               _td(_num(e.get("mean_iou")), e.get("mean_iou"), style=_heat(e.get("mean_iou")),
                   title="over " + ", ".join(e.get("mean_over", []))),
               _td(_pct(e.get("mean_success")), e.get("mean_success"))]
        ns = []
        for i in interps:
            v = e["interpreters"].get(i)
            if v is None:
                tds += [_td("n/a", None, cls="na", title=f"no {i} for this model")] + [_td("", None)] * 2
                continue
            ns.append(v.get("n"))
            succ = v.get("iou_successful")
            tip = (f"n = {v.get('n')}, {v.get('iterations')} iterations"
                   + (f"; IoU over the successful attacks only: {succ:.3f}" if succ is not None else ""))
            tds += [_td(_num(v.get("iou")), v.get("iou"), style=_heat(v.get("iou")), title=tip),
                    _td(_num(v.get("l1")), v.get("l1"), title=tip), _td(_pct(v.get("success")), v.get("success"))]
        n_text = "/".join(str(x) for x in dict.fromkeys(ns))
        tds.append(_td(n_text, min((x for x in ns if x), default=None)))
        first = k > 0 and e.get("dataset") != rows[k - 1].get("dataset")
        body.append(('<tr class="ds-first">' if first else "<tr>") + "".join(tds) + "</tr>")
    prov = []
    for e in rows:
        made = e.get("made") or {}
        n = made.get("n_images") or {}
        cmd = made.get("command") or ""
        what = html.escape((made.get("how") or "").replace("ADV^2", "ADV²"))
        if isinstance(made.get("records"), str):
            what += "<br>" + html.escape(made["records"])
        adv = n.get("adv2") if isinstance(n.get("adv2"), dict) else {}
        images = ("ADV² " + ", ".join(f"{k} {v}" for k, v in adv.items()) + f"; clean {n.get('clean')}; "
                  f"PGD-20 {n.get('robust')}")
        date = str(made.get("date") or "").replace("T", " ").replace("+00:00", " UTC")
        prov.append(f"<tr><td>{html.escape(e['name'])}</td><td>{what}</td><td><code>{html.escape(cmd)}</code></td>"
                    f"<td>{html.escape(date)}</td><td>{html.escape(images)}</td>"
                    f"<td>{html.escape(str(e.get('xaisec_version')))}</td></tr>")
    nonstd = any(not is_standard(e, steps_scale) for e in rows)
    tm_rows = [
        ("budget", f"L-inf, eps {tm['eps_text']}, white-box: {tm['white_box']}"),
        ("accuracy", f"clean top-1; under untargeted PGD-{aa['steps']} (step {aa['step_size_text']}, seeded random "
                     f"start, {aa['restarts']} restart), on {aa['images']}"),
        ("explanations", f"ADV² on the {ea['framework']} framework, target class {ea['target_class']}, target map = "
                         f"the {ea['target_map']} map, step {ea['step']} (steps_scale {steps_scale}), on "
                         f"{ea['images']}"),
        ("metrics", "; ".join(f"{k}: {v}" for k, v in tm["metrics"].items())),
        ("ranking", board.get("ranking", "")),
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>xaisec explanation-robustness leaderboard</title><style>{_CSS}</style></head>
<body>
<h1>Explanation-robustness leaderboard</h1>
<p class="sub">How hard is it to fool a model <em>and</em> keep its explanation looking benign? ADV² (Zhang et al.
2020) attacks each model and interpreter at L-inf 8/255; a high IoU of the adversarial map to the benign map
means the explanation did not reveal the attack. {len(rows)} entries; xaisec {html.escape(board['xaisec_version'])},
updated {html.escape(board['updated'])}. Ranked within each data set by the mean IoU over {', '.join(RANKED)},
lowest first; click a column header to sort.</p>
<div class="scroll"><table class="lb"><thead>{group}<tr>{''.join(head)}</tr></thead>
<tbody>{''.join(body)}</tbody></table></div>
<p>Reading it: a lower IoU, a higher L1 and a lower ADV² success mean the explanation resists the attack
better. IoU cells: red = the attack kept the explanation (bad for the defender), green = it did not. “n/a”: the model
has no such interpreter (RTS needs a trained masking network). Hover a cell for n and iterations.
{'<span class="warn">† made with other settings than the threat model below (see the entry’s settings).</span>'
 if nonstd else ''}</p>
<h2>Plots</h2>
<div class="plots">
<figure>{_scatter_svg(rows)}<figcaption>Mean ADV² IoU (over {', '.join(RANKED)}) against robust accuracy.
A model that resists both attacks sits at the bottom right.</figcaption></figure>
<figure>{_bars_svg(rows, interps)}<figcaption>ADV² IoU per interpreter, entries in board order.</figcaption>
</figure>
</div>
<h2>Threat model</h2>
<dl class="tm">{''.join(f'<dt>{k}</dt><dd>{html.escape(v)}</dd>' for k, v in tm_rows)}</dl>
<h2>Add a model</h2>
<pre>xaisec leaderboard --add --model MODEL [--defense median:2] [--n 32] --out DIR</pre>
<p>MODEL is anything <code>xaisec --model</code> takes (a zoo name, a folder with a model card, a TorchScript
file, a factory). The entry records the command, the date and the number of images.</p>
<h2>How each entry was made</h2>
<table class="lb made"><thead><tr><th>entry</th><th>source</th><th>command</th><th>date</th><th>images</th>
<th>xaisec</th></tr></thead><tbody>{''.join(prov)}</tbody></table>
<p class="sub">Built by: <code>{html.escape(board.get('command') or '')}</code></p>
<script>{_JS}</script>
</body></html>
"""

