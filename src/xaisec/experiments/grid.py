"""Resumable experiment grids: one JSON file per cell, written atomically, skipped when present.

A cell is (model, interpreter, attack, framework). ``run_grid`` evaluates the missing cells, in this
process or in a pool of worker processes (one torch thread each), and every finished cell is on disk at
once, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from xaisec.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    model: str
    interpreter: str
    attack: str
    framework: str = "pgd"
    n: int = 100
    steps_scale: float = 0.25
    seed: int = 0
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return f"{self.model}__{self.interpreter}__{self.attack}__{self.framework}".replace("+", "plus")


def cell_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.key}.json"


def adversarial_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.key}.safetensors"


def run_cell(cell: Cell, out: str | Path, data: str = "cifar10", threads: int | None = None) -> dict[str, Any]:
    """Attack ``cell.n`` seeded, correctly classified test images; write the cell's JSON and its x_adv."""
    from xaisec.data import load as load_data
    from xaisec.experiments.records import attack_record
    from xaisec.experiments.runner import correctly_classified, run_attack
    from xaisec.models import load, spec

    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    model = load(cell.model)
    ds = correctly_classified(model, load_data(data if spec(cell.model).dataset == "cifar10" else
                                               spec(cell.model).dataset, "test"), cell.n, seed=cell.seed)
    x, y = ds.float_images(model.device), ds.labels.to(model.device)
    t0 = time.time()
    opts = dict(cell.options)
    interp_opts = opts.pop("interpreter_options", None)
    res = run_attack(model, cell.interpreter, cell.attack, x, y, framework=cell.framework, seed=cell.seed,
                     steps_scale=cell.steps_scale, interpreter_options=interp_opts, **opts)
    record = attack_record(res, config={"cell": asdict(cell), "data": ds.name}, seed=cell.seed,
                           class_name=model.class_name)
    record["wall_seconds"] = time.time() - t0
    atomic_write_bytes(adversarial_path(out, cell), save({"x": res.x.contiguous(), "x_adv": res.x_adv.contiguous(),
                                                          "y": res.y.contiguous()}))
    atomic_write_json(cell_path(out, cell), record)
    return record


def _options_list(options: tuple[tuple[str, Any], ...]) -> list[list[Any]]:
    """Cell options as they read back from a record's JSON."""
    return json.loads(json.dumps([list(o) for o in options]))


def _recorded_options(path: Path) -> list[list[Any]] | None:
    """The options a finished cell's record was made with (None if the record does not say)."""
    try:
        return json.loads(path.read_text())["config"]["cell"]["options"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _run_cell_worker(args: tuple[Cell, str, str]) -> tuple[str, float]:
    cell, out, data = args
    rec = run_cell(cell, out, data, threads=1)
    return cell.key, rec["wall_seconds"]


def run_grid(cells: list[Cell], out: str | Path, *, data: str = "cifar10", workers: int = 1,
             progress: bool = True) -> list[dict[str, Any]]:
    """Run every cell whose JSON is missing; return all cells' records (read back from disk)."""
    from tqdm.auto import tqdm

    out = Path(out)
    todo = [c for c in cells if not cell_path(out, c).exists()]
    for c in (c for c in cells if c not in todo):
        if (made := _recorded_options(cell_path(out, c))) != _options_list(c.options):
            log.warning("%s in %s was made with options %s, not %s; it is kept as it is (delete %s to re-run it)",
                        c.key, out, made, _options_list(c.options), cell_path(out, c))
    log.info("%d of %d cells to run (%d already done)", len(todo), len(cells), len(cells) - len(todo))
    bar = tqdm(total=len(todo), desc="grid cells", disable=not progress)
    if workers <= 1:
        for c in todo:
            bar.set_postfix_str(c.key)
            run_cell(c, out, data)
            bar.update(1)
    else:
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_cell_worker, (c, str(out), data)) for c in todo]
            for f in cf.as_completed(futures):
                key, secs = f.result()
                bar.set_postfix_str(f"{key} {secs:.0f}s")
                bar.update(1)
    bar.close()
    return [json.loads(cell_path(out, c).read_text()) for c in cells if cell_path(out, c).exists()]


def load_adversarial(out: str | Path, cell: Cell) -> dict[str, torch.Tensor]:
    return load_file(str(adversarial_path(Path(out), cell)))
