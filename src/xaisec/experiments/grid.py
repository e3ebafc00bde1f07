"""Resumable experiment grids: one JSON file per cell, written atomically, skipped when present.

A cell is (model, interpreter, attack, framework). ``run_grid`` evaluates the missing cells, in this
process, in a pool of worker processes (one torch thread each) or on Ray (:mod:`xaisec.experiments.engine`);
the driver writes every finished cell at once, atomically, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from xaisec.experiments.engine import Task, execute, run_tasks, write_outputs

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


def compute_cell(cell: Cell, data: str = "cifar10") -> tuple[dict[str, Any], dict[str, bytes]]:
    """Attack ``cell.n`` seeded, correctly classified test images; returns the cell's record and its x_adv
    (safetensors bytes). Writes nothing: the grid's driver does (:mod:`xaisec.experiments.engine`)."""
    from xaisec.data import load as load_data
    from xaisec.experiments.records import attack_record
    from xaisec.experiments.runner import correctly_classified, run_attack
    from xaisec.models import load, spec

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
    adversarial = save({"x": res.x.contiguous(), "x_adv": res.x_adv.contiguous(), "y": res.y.contiguous()})
    return record, {"safetensors": adversarial}


def cell_task(cell: Cell, data: str = "cifar10") -> Task:
    """The engine task that computes ``cell`` (one CPU)."""
    return Task(cell.key, "xaisec.experiments.grid:compute_cell", (("cell", cell), ("data", data)))


def run_cell(cell: Cell, out: str | Path, data: str = "cifar10", threads: int | None = None) -> dict[str, Any]:
    """Compute one cell here and write its JSON and its x_adv into ``out``/cells."""
    task = cell_task(cell, data)
    record, blobs, _ = execute(task, threads)
    write_outputs(Path(out) / "cells", task, record, blobs)
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


def run_grid(cells: list[Cell], out: str | Path, *, data: str = "cifar10", workers: int = 1,
             progress: bool = True, backend: str = "local", address: str | None = None) -> list[dict[str, Any]]:
    """Run every cell whose JSON is missing (on ``backend``, see :func:`xaisec.experiments.engine.run_tasks`);
    return all cells' records (read back from disk)."""
    out = Path(out)
    done = [c for c in cells if cell_path(out, c).exists()]
    for c in done:
        if (made := _recorded_options(cell_path(out, c))) != _options_list(c.options):
            log.warning("%s in %s was made with options %s, not %s; it is kept as it is (delete %s to re-run it)",
                        c.key, out, made, _options_list(c.options), cell_path(out, c))
    log.info("%d of %d cells to run (%d already done)", len(cells) - len(done), len(cells), len(done))
    run_tasks([cell_task(c, data) for c in cells], out / "cells", backend=backend, workers=workers,
              address=address, progress=progress, desc="grid cells")
    return [json.loads(cell_path(out, c).read_text()) for c in cells if cell_path(out, c).exists()]


def load_adversarial(out: str | Path, cell: Cell) -> dict[str, torch.Tensor]:
    return load_file(str(adversarial_path(Path(out), cell)))
