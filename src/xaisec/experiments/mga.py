"""Reproduction of the black-box transfer experiment of AdvEdge (Abdukhamidov et al., TDSC 2023, Table III):
a surrogate attack (AdvEdge or PGD) refined by a microbial genetic algorithm that queries the target's
probabilities: ``xaisec bench reproduce --paper mga``.

CIFAR-10: target = shipped ResNet-20 with Grad-CAM, surrogate = another shipped architecture (VGG-11-BN by
default), untargeted, eps 8/255, budget 10,000 queries per image. A cell is (seed attack, block of images),
an engine task (:mod:`xaisec.experiments.engine`, ``--backend local|ray``): one JSON record under
``out/cells`` (skipped when present). Tables: surrogate success, pure-transfer success,
success after the search, queries (mean / median over all images, and over the fooled ones), IoU of the
target's own Grad-CAM benign vs adversarial (top 20%).
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

from xaisec.experiments.engine import Task
from xaisec.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

FULL = {"n": 200, "budget": 10_000, "block": 25}
QUICK = {"n": 4, "budget": 200, "block": 4}


def cell_task(*, target: str, surrogate: str, interpreter: str, seed_attack: str, start: int, stop: int, n: int,
              budget: int, seed: int, seed_options: dict | None = None) -> Task:
    """The engine task attacking images [start, stop) of the ``n``-image sample."""
    key = f"{target}__{surrogate}__{interpreter}__{seed_attack}__b{budget}__{start}-{stop}"
    return Task(key, "xaisec.experiments.mga:compute_cell", (
        ("target", target), ("surrogate", surrogate), ("interpreter", interpreter), ("seed_attack", seed_attack),
        ("start", start), ("stop", stop), ("n", n), ("budget", budget), ("seed", seed),
        ("seed_options", seed_options)))


def compute_cell(*, target: str, surrogate: str, interpreter: str, seed_attack: str, start: int, stop: int, n: int,
                 budget: int, seed: int, seed_options: dict | None = None) -> dict[str, Any]:
    """Run the MGA attack on images [start, stop); returns the cell's record (writes nothing)."""
    from xaisec.attacks import get as get_attack
    from xaisec.data import load as load_data
    from xaisec.experiments.runner import correctly_classified
    from xaisec.models import load

    model = load(target, device="cpu")
    ds = correctly_classified(model, load_data("cifar10", "test"), n, seed=seed)
    x, y = ds.float_images(model.device)[start:stop], ds.labels.to(model.device)[start:stop]
    t0 = time.time()
    atk = get_attack("mga", model, interpreter, surrogate=surrogate, seed_attack=seed_attack, budget=budget,
                     seed=seed + start, progress=False, seed_options=seed_options)
    res = atk(x, y)
    return {"target": target, "surrogate": surrogate, "interpreter": interpreter, "seed_attack": seed_attack,
            "images": [start, stop], "budget": budget, "seed": seed, "wall_seconds": time.time() - t0,
            "config": res.config, "metrics": {k: v.tolist() for k, v in res.metrics.items()}}


def run_cell(out: Path, *, target: str, surrogate: str, interpreter: str, seed_attack: str, start: int, stop: int,
             n: int, budget: int, seed: int, progress: bool = False, seed_options: dict | None = None
             ) -> dict[str, Any]:
    """Run (or read back) one cell here and write its record under ``out/cells``."""
    from xaisec.experiments.papers import run_here

    return run_here(Path(out), cell_task(target=target, surrogate=surrogate, interpreter=interpreter,
                                         seed_attack=seed_attack, start=start, stop=stop, n=n, budget=budget,
                                         seed=seed, seed_options=seed_options))


def _summary(cells: list[dict[str, Any]]) -> dict[str, Any]:
    m: dict[str, list[float]] = {}
    for c in cells:
        for k, v in c["metrics"].items():
            m.setdefault(k, []).extend(v)
    n = len(m.get("success", []))
    if n == 0:
        return {"n": 0}
    q, ok = m["queries"], m["success"]
    q_ok = [a for a, s in zip(q, ok, strict=True) if s]
    mean = statistics.fmean
    return {
        "n": n, "surrogate_success": mean(m["surrogate_success"]), "transfer_success": mean(m["transfer_success"]),
        "success": mean(ok), "queries_mean": mean(q), "queries_median": statistics.median(q),
        "queries_mean_success": mean(q_ok) if q_ok else None,
        "queries_median_success": statistics.median(q_ok) if q_ok else None,
        "iou": mean(m["iou"]), "linf": mean(m["linf"]), "noise_rate": mean(m["noise_rate"]),
        "seconds_per_image": sum(c["wall_seconds"] for c in cells) / n,
    }


def _markdown(tables: dict[str, Any]) -> str:
    lines = [f"# MGA transfer attack: target {tables['target']} + {tables['interpreter']}, surrogate "
             f"{tables['surrogate']}, eps 8/255, budget {tables['budget']}", "",
             "| seed attack | images | surrogate success | pure transfer | success after search | queries mean "
             "| queries median | queries mean (fooled) | IoU benign vs adv | s/image |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in tables["rows"].items():
        if not r.get("n"):
            continue
        qs = "-" if r["queries_mean_success"] is None else f"{r['queries_mean_success']:.0f}"
        lines.append(f"| {name} | {r['n']} | {r['surrogate_success'] * 100:.1f}% | {r['transfer_success'] * 100:.1f}% "
                     f"| {r['success'] * 100:.1f}% | {r['queries_mean']:.0f} | {r['queries_median']:.0f} | {qs} "
                     f"| {r['iou']:.3f} | {r['seconds_per_image']:.1f} |")
    lines += ["", "Queries count every target query (the transfer query included). IoU: top-20% pixels of the "
              "target's Grad-CAM of x and of x_adv. PneumoniaMNIST (target and surrogate trained on disjoint "
              "halves) is not run: it needs two models xaisec does not ship."]
    return "\n".join(lines) + "\n"


def reproduce(out: str | Path, *, quick: bool = False, seed: int = 0, workers: int = 1, progress: bool = True,
              backend: str = "local", address: str | None = None,
              target: str = "cifar10_resnet20", surrogate: str = "cifar10_vgg11_bn", interpreter: str = "gradcam",
              seed_attacks: tuple[str, ...] | list[str] = ("advedge", "pgd"), n: int | None = None,
              budget: int | None = None, block: int | None = None) -> dict[str, Any]:
    """Run (or resume) the MGA grid into ``out`` on ``backend`` (``workers`` cells at once, see
    :func:`xaisec.experiments.engine.run_tasks`); returns the tables (also out/tables.json, tables.md).

    Full: 200 images x budget 10,000 per seed attack; ``quick``: 4 images, budget 200. ``n``/``budget``/``block``
    override either; images are a prefix-stable seeded sample, so a larger ``n`` reuses finished cells when the
    block size is unchanged.
    """
    from xaisec.experiments.papers import run_cells

    out = Path(out)
    cfg = dict(QUICK if quick else FULL)
    cfg.update({k: v for k, v in {"n": n, "budget": budget, "block": block}.items() if v is not None})
    grid = {sa: [cell_task(target=target, surrogate=surrogate, interpreter=interpreter, seed_attack=sa, start=start,
                           stop=min(start + cfg["block"], cfg["n"]), n=cfg["n"], budget=cfg["budget"], seed=seed)
                 for start in range(0, cfg["n"], cfg["block"])] for sa in seed_attacks}
    found = run_cells([t for tasks in grid.values() for t in tasks], out, backend=backend, workers=workers,
                      address=address, progress=progress, desc="mga cells")
    rows = {sa: _summary([found[t.key] for t in tasks]) for sa, tasks in grid.items()}
    tables = {"paper": "mga", "target": target, "surrogate": surrogate, "interpreter": interpreter, "seed": seed,
              "quick": quick, **cfg, "rows": rows}
    atomic_write_json(out / "tables.json", tables)
    atomic_write_text(out / "tables.md", _markdown(tables))
    return tables


__all__ = ["FULL", "QUICK", "cell_task", "compute_cell", "reproduce", "run_cell"]
