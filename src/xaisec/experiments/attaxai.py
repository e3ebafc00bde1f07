"""Reproduction of AttaXAI (Tamam et al., TMLR 2023) on the shipped CIFAR-10 ResNet-20, with the Dombrowski
white-box baseline: ``xaisec bench reproduce --paper attaxai``.

Pairs: 2P seeded, correctly classified CIFAR-10 test images (a prefix-stable sample); image 2i is attacked
towards the map of image 2i + 1, so a run with more pairs reuses the cells of a smaller one. A cell is
(explainer, attack, a block of pairs), an engine task (:mod:`xaisec.experiments.engine`, ``--backend
local|ray``); each finished cell is one JSON record under ``out/cells`` (skipped when present), so an
interrupted run resumes. Tables: per explainer, label kept, median map-MSE ratio
(adversarial vs benign distance to the target map), best-so-far map MSE at 10k queries and at the end,
output MSE, input MSE, queries and seconds per pair.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from xaisec.experiments.engine import Task
from xaisec.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

EXPLAINERS = ("grad", "grad_x_input", "guided_backprop", "lrp", "deeplift")
FULL = {"pairs": 20, "queries": 50_000, "block": 2, "dombrowski_iterations": 1500}
QUICK = {"pairs": 2, "queries": 1_250, "block": 2, "dombrowski_iterations": 100}


def _pairs(model: Any, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from xaisec.data import load as load_data
    from xaisec.experiments.runner import correctly_classified

    ds = correctly_classified(model, load_data("cifar10", "test"), 2 * n, seed=seed)
    x, y = ds.float_images(model.device), ds.labels.to(model.device)
    if x.shape[0] < 2 * n:
        raise RuntimeError(f"only {x.shape[0]} correctly classified images for {n} pairs")
    return x[0::2], y[0::2], x[1::2], y[1::2]


def cell_task(*, model_name: str, explainer: str, attack: str, start: int, stop: int, pairs: int, queries: int,
              seed: int, iterations: int) -> Task:
    """The engine task attacking pairs [start, stop) with ``attack`` ("attaxai": ``queries`` per pair, or
    "dombrowski": ``iterations``)."""
    budget = ("queries", queries) if attack == "attaxai" else ("iterations", iterations)
    key = f"{attack}__{explainer}__{'q' if attack == 'attaxai' else 'it'}{budget[1]}__pairs{start}-{stop}"
    return Task(key, "xaisec.experiments.attaxai:compute_cell", (
        ("model_name", model_name), ("explainer", explainer), ("attack", attack), ("start", start), ("stop", stop),
        ("pairs", pairs), ("seed", seed), budget))


def compute_cell(*, model_name: str, explainer: str, attack: str, start: int, stop: int, pairs: int, seed: int,
                 queries: int | None = None, iterations: int | None = None) -> dict[str, Any]:
    """Attack pairs [start, stop) with ``attack``; returns the cell's record (writes nothing)."""
    from xaisec.attacks import get as get_attack
    from xaisec.models import load

    model = load(model_name, device="cpu")
    x, y, xt, _ = _pairs(model, pairs, seed)
    sl = slice(start, stop)
    opts: dict[str, Any] = {"target_images": xt[sl]}
    if attack == "attaxai":
        opts["queries"] = queries
    else:
        opts["iterations"] = iterations
    t0 = time.time()
    atk = get_attack(attack, model, explainer, seed=seed + start, progress=False, **opts)
    res = atk(x[sl], y[sl])
    return {
        "attack": attack, "explainer": explainer, "model": model_name, "pairs": [start, stop], "queries": queries,
        "iterations": iterations, "seed": seed, "wall_seconds": time.time() - t0, "config": res.config,
        "history": res.history, "metrics": {k: v.tolist() for k, v in res.metrics.items()},
    }


def run_cell(out: Path, *, model_name: str, explainer: str, attack: str, start: int, stop: int, pairs: int,
             queries: int, seed: int, iterations: int, progress: bool = False) -> dict[str, Any]:
    """Run (or read back) one cell here and write its record under ``out/cells``."""
    from xaisec.experiments.papers import run_here

    return run_here(Path(out), cell_task(model_name=model_name, explainer=explainer, attack=attack, start=start,
                                         stop=stop, pairs=pairs, queries=queries, seed=seed, iterations=iterations))


def _summary(cells: list[dict[str, Any]], queries: int) -> dict[str, Any]:
    m: dict[str, list[float]] = {}
    for c in cells:
        for k, v in c["metrics"].items():
            m.setdefault(k, []).extend(v)
    n = len(m.get("label_kept", []))
    row: dict[str, Any] = {"pairs": n}
    if n == 0:
        return row
    mean = statistics.fmean
    row.update({
        "label_kept": mean(m["label_kept"]), "median_ratio": statistics.median(m["map_mse_ratio"]),
        "mean_ratio": mean(m["map_mse_ratio"]), "map_mse": mean(m["map_mse"]),
        "map_mse_benign": mean(m["map_mse_benign"]), "output_mse": mean(m["output_mse"]),
        "input_mse": mean(m["input_mse"]), "input_mse_normalized": mean(m["input_mse_normalized"]),
        "seconds_per_pair": mean(m["seconds_per_image"]),
    })
    if "queries" in m:
        row["queries_per_pair"] = mean(m["queries"])
        row["setup_queries_per_pair"] = mean(m["setup_queries"])
    q10 = [k for k in m if k.startswith("best_map_mse_q") and int(k[14:]) >= 10_000]
    if q10:
        first = min(q10, key=lambda k: int(k[14:]))
        last = max((k for k in m if k.startswith("best_map_mse_q")), key=lambda k: int(k[14:]))
        row["best_map_mse_first"] = {"queries": int(first[14:]), "mean": mean(m[first])}
        row["best_map_mse_last"] = {"queries": int(last[14:]), "mean": mean(m[last])}
        row["last_over_first"] = mean(m[last]) / max(mean(m[first]), 1e-30)
    return row


def _markdown(tables: dict[str, Any]) -> str:
    lines = [f"# AttaXAI on {tables['model']} ({tables['pairs']} pairs, {tables['queries']} queries per pair)", "",
             "| attack | explainer | pairs | label kept | median map-MSE ratio | map MSE | benign map MSE | output MSE "
             "| input MSE (px) | input MSE (norm.) | best map MSE 10k -> end | queries/pair | s/pair |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in tables["rows"].items():
        attack, explainer = key.split("/")
        if not r.get("label_kept") and r.get("pairs", 0) == 0:
            continue
        curve = ""
        if "best_map_mse_first" in r:
            curve = (f"{r['best_map_mse_first']['mean']:.3g} -> {r['best_map_mse_last']['mean']:.3g} "
                     f"(x{r['last_over_first']:.2f})")
        lines.append(
            f"| {attack} | {explainer} | {r['pairs']} | {r['label_kept'] * 100:.0f}% | {r['median_ratio']:.3f} "
            f"| {r['map_mse']:.3g} | {r['map_mse_benign']:.3g} | {r['output_mse']:.2g} | {r['input_mse']:.2g} "
            f"| {r['input_mse_normalized']:.2g} | {curve} | {r.get('queries_per_pair', 0):.0f} "
            f"| {r['seconds_per_pair']:.0f} |")
    lines += ["", "map-MSE ratio = MSE(g(x_adv), g(x_t)) / MSE(g(x), g(x_t)) on |attribution|-summed, sum-1 maps; "
              "output MSE on softmax vectors (mean over classes); input MSE in pixels and in normalised units."]
    return "\n".join(lines) + "\n"


def reproduce(out: str | Path, *, quick: bool = False, seed: int = 0, workers: int = 1, progress: bool = True,
              backend: str = "local", address: str | None = None,
              model: str = "cifar10_resnet20", explainers: tuple[str, ...] | list[str] = EXPLAINERS,
              pairs: int | None = None, queries: int | None = None, block: int | None = None,
              dombrowski: tuple[str, ...] | list[str] = ("grad",), dombrowski_iterations: int | None = None,
              ) -> dict[str, Any]:
    """Run (or resume) the AttaXAI grid into ``out`` on ``backend`` (``workers`` cells at once, see
    :func:`xaisec.experiments.engine.run_tasks`); returns the tables (also out/tables.json, tables.md).

    ``quick``: 2 pairs, 1,250 queries, 100 Dombrowski iterations (a smoke run). Full: 20 pairs x 50,000 queries
    per explainer (hours on a 2-core CPU). ``pairs``/``queries``/``block``/``explainers`` override either.
    """
    from xaisec.experiments.papers import run_cells

    out = Path(out)
    cfg = dict(QUICK if quick else FULL)
    cfg.update({k: v for k, v in {"pairs": pairs, "queries": queries, "block": block,
                                  "dombrowski_iterations": dombrowski_iterations}.items() if v is not None})
    jobs = [("attaxai", e) for e in explainers] + [("dombrowski", e) for e in dombrowski]
    grid = {job: [cell_task(model_name=model, explainer=job[1], attack=job[0], start=start,
                            stop=min(start + cfg["block"], cfg["pairs"]), pairs=cfg["pairs"], queries=cfg["queries"],
                            seed=seed, iterations=cfg["dombrowski_iterations"])
                  for start in range(0, cfg["pairs"], cfg["block"])] for job in jobs}
    found = run_cells([t for tasks in grid.values() for t in tasks], out, backend=backend, workers=workers,
                      address=address, progress=progress, desc="attaxai cells")
    rows = {f"{attack}/{explainer}": _summary([found[t.key] for t in tasks], cfg["queries"])
            for (attack, explainer), tasks in grid.items()}
    tables = {"paper": "attaxai", "model": model, "seed": seed, "quick": quick, **cfg, "rows": rows}
    atomic_write_json(out / "tables.json", tables)
    atomic_write_text(out / "tables.md", _markdown(tables))
    return tables


__all__ = ["EXPLAINERS", "cell_task", "compute_cell", "reproduce", "run_cell"]
