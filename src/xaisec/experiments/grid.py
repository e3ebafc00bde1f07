"""Resumable experiment grids: one JSON file per cell, written atomically, skipped when present.

A cell is (model, interpreter, attack, framework). The model is any spec of
:func:`xaisec.models.loading.load_model_spec` (a zoo name, a TorchScript file, a factory, a folder with a
card...), with ``model_options`` (weights, card fields) as keyword arguments; cells carry the spec string and
the worker loads it. ``run_grid`` evaluates the missing cells, in this
process, in a pool of worker processes (one torch thread each) or on Ray (:mod:`xaisec.experiments.engine`);
the driver writes every finished cell at once, atomically, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
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
    model_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return f"{model_label(self.model)}__{self.interpreter}__{self.attack}__{self.framework}".replace("+", "plus")


def model_label(spec: str) -> str:
    """A file-name-safe name of a model spec: a zoo name as it is; else its last path part with a short hash of
    the whole spec (``/a/net.py:make`` -> ``net.py_make-1f0c3a2b``), so that two specs never share a name."""
    if re.fullmatch(r"[A-Za-z0-9_.-]+", spec):
        return spec
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]).strip("_.")
    return f"{tail or 'model'}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


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
    from xaisec.models import MODELS, load, spec

    if cell.model in MODELS and not cell.model_options:
        model = load(cell.model)
        source = load_data(data if spec(cell.model).dataset == "cifar10" else spec(cell.model).dataset, "test")
    else:  # any model spec, loaded here in the worker; the data resized to its input and labels aligned
        from types import SimpleNamespace

        from xaisec.cli.common import data_from_args
        from xaisec.models.loading import load_model_spec

        model = load_model_spec(cell.model, **dict(cell.model_options))
        source = data_from_args(SimpleNamespace(data=data, split="test", quiet=True), model)
    ds = correctly_classified(model, source, cell.n, seed=cell.seed)
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


def _stamped(path: Path) -> bool:
    """Whether a record carries the engine's settings stamp (then the engine re-runs it if the cell changed)."""
    from xaisec.experiments.engine import STAMP

    try:
        return isinstance(json.loads(path.read_text()).get(STAMP), dict)
    except (OSError, ValueError, AttributeError):
        return False


def run_grid(cells: list[Cell], out: str | Path, *, data: str = "cifar10", workers: int = 1,
             progress: bool = True, backend: str = "local", address: str | None = None) -> list[dict[str, Any]]:
    """Run every cell whose JSON is missing (on ``backend``, see :func:`xaisec.experiments.engine.run_tasks`);
    return all cells' records (read back from disk)."""
    out = Path(out)
    done = [c for c in cells if cell_path(out, c).exists()]
    for c in [c for c in done if not _stamped(cell_path(out, c))]:  # the engine checks stamped records itself
        if (made := _recorded_options(cell_path(out, c))) != _options_list(c.options):
            log.warning("%s in %s was made with options %s, not %s; it is kept as it is (delete %s to re-run it)",
                        c.key, out, made, _options_list(c.options), cell_path(out, c))
    log.info("%d of %d cells to run (%d already done)", len(cells) - len(done), len(cells), len(done))
    run_tasks([cell_task(c, data) for c in cells], out / "cells", backend=backend, workers=workers,
              address=address, progress=progress, desc="grid cells")
    return [json.loads(cell_path(out, c).read_text()) for c in cells if cell_path(out, c).exists()]


def load_adversarial(out: str | Path, cell: Cell) -> dict[str, torch.Tensor]:
    return load_file(str(adversarial_path(Path(out), cell)))
