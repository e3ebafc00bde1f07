"""The papers ``xaisec bench reproduce --paper NAME`` reproduces, all on one grid engine.

Every paper is a module function ``reproduce(out, *, quick, seed, workers, progress, backend, address) -> dict``
whose cells are :class:`xaisec.experiments.engine.Task` s run by :func:`xaisec.experiments.engine.run_tasks`
under ``out/cells`` (one JSON record per finished cell, written atomically by the driver, skipped when present,
so a run resumes; binary outputs such as perturbations or adversarial images next to it), in stages when some
cells need others' outputs. The paper's tables are built from the records into ``out/tables.json`` and
``out/tables.md``. ``adv2`` is the ADV^2 / AdvEdge grid of :mod:`xaisec.experiments.reproduce` (its many
options are flags of ``bench reproduce``; ``quick`` selects :data:`xaisec.experiments.reproduce.QUICK`).

:func:`run_papers` runs a selection into one results folder, ``OUT/<paper>/`` per paper, and rebuilds
``OUT/index.html`` (:mod:`xaisec.reports.index`) after each paper.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)

# name -> ("package.module:function", what it reproduces); modules are imported only when their paper runs
PAPERS: dict[str, tuple[str, str]] = {
    "adv2": ("xaisec.experiments.reproduce:reproduce", "ADV^2 and AdvEdge / AdvEdge+ tables (models x interpreters "
                                                        "x attacks x frameworks) and interpreter transferability"),
    "defenses": ("xaisec.experiments.defenses:reproduce", "feature squeezing, median/bit squeezing, ensemble detector"),
    "robust-training": ("xaisec.experiments.robust_training:reproduce", "adversarial / int.-robust training, AID"),
    "patch": ("xaisec.experiments.patch:reproduce", "Grad-CAM patch (Le et al. 2021): plain / attract / hide / faint"),
    "juap": ("xaisec.experiments.juap:reproduce", "JUAP / JAP (Ning et al. 2024) vs UAP, GAP, PGD: Tables II, IV, V"),
    "attaxai": ("xaisec.experiments.attaxai:reproduce", "AttaXAI black-box NES (Tamam et al. 2023) + Dombrowski"),
    "mga": ("xaisec.experiments.mga:reproduce", "surrogate AdvEdge/PGD + microbial GA transfer (AdvEdge Table III)"),
}


def paper_names(selection: str) -> list[str]:
    """'all' or a comma-separated selection -> known paper names (an unknown name is an error)."""
    names = list(PAPERS) if selection == "all" else [s.strip() for s in selection.split(",") if s.strip()]
    unknown = [n for n in names if n not in PAPERS]
    if unknown or not names:
        raise XaisecError(f"unknown paper {', '.join(unknown) or repr(selection)}; known: all, {', '.join(PAPERS)}")
    return list(dict.fromkeys(names))


class ResultsFolder:
    """A paper's results folder, passed to the tasks of a later stage that read an earlier stage's files.

    Where the folder is is no setting of a cell: the engine's settings hash sees only this constant ``repr``,
    so a moved or copied results folder resumes instead of re-running. (A cluster's workers must see the
    folder at the same path: a shared file system.)"""

    __slots__ = ("path",)

    def __init__(self, path: str | Path) -> None:
        self.path = str(Path(path).resolve())

    def __repr__(self) -> str:
        return "ResultsFolder()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResultsFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


def settings_of(record: dict[str, Any] | None) -> str | None:
    """The settings hash the engine stamped on ``record`` (None for an unstamped one): a later stage's task
    names its inputs' hashes among its kwargs, so it re-runs when they were re-made with other settings."""
    from xaisec.experiments import engine

    stamp = (record or {}).get(getattr(engine, "STAMP", "engine"))
    return stamp.get("settings") if isinstance(stamp, dict) else None


def without_stamp(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """``record`` without the engine's stamp (for tables that embed whole records)."""
    from xaisec.experiments import engine

    key = getattr(engine, "STAMP", "engine")
    return None if record is None else {k: v for k, v in record.items() if k != key}


def run_cells(tasks: Iterable[Any], out: str | Path, *, backend: str = "local", workers: int = 1,
              address: str | None = None, progress: bool = True, desc: str = "cells") -> dict[str, dict[str, Any]]:
    """One stage of a paper: run the tasks whose record is missing under ``out/cells`` on ``backend``
    (:func:`xaisec.experiments.engine.run_tasks`), add their keys to ``out/manifest.json`` (the cells the index
    links) and return every task's record by key, read back from disk."""
    from xaisec.experiments import engine
    from xaisec.utils.io import atomic_write_json

    tasks = list(tasks)
    cells = Path(out) / "cells"
    engine.run_tasks(tasks, cells, backend=backend, workers=workers, address=address, progress=progress, desc=desc)
    manifest = Path(out) / "manifest.json"
    try:
        keys = json.loads(manifest.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        keys = []
    new = [t.key for t in tasks if t.key not in set(keys)]
    if new:
        atomic_write_json(manifest, {"cells": keys + new})
    return {t.key: json.loads(engine.record_path(cells, t).read_text()) for t in tasks}


def run_here(out: str | Path, task: Any) -> dict[str, Any]:
    """``task``'s record under ``out/cells``: read back when it exists, else computed in this process and
    written (record and binary outputs) as the engine's driver writes them."""
    from xaisec.experiments import engine

    cells = Path(out) / "cells"
    path = engine.record_path(cells, task)
    if path.exists():
        return json.loads(path.read_text())
    record, blobs, _ = engine.execute(task)
    engine.write_outputs(cells, task, record, blobs)
    return record


def saved_files(obj: Any) -> dict[str, bytes]:
    """The files ``obj.save(path)`` writes (a safetensors file and its JSON card next to it, as universal
    perturbations and patches save themselves) as a cell's binary outputs: ``{"safetensors": ..., "card.json":
    ...}``, which the engine writes as ``<key>.safetensors`` and ``<key>.card.json``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(obj.save(Path(tmp) / "cell.safetensors"))
        card = path.with_suffix(".json")
        return {"safetensors": path.read_bytes(), **({"card.json": card.read_bytes()} if card.exists() else {})}


def run_paper(name: str, out: str | Path, *, quick: bool = False, seed: int = 0, workers: int = 1,
              progress: bool = True, backend: str = "local", address: str | None = None,
              **options: Any) -> dict[str, Any]:
    """Run (or resume) one paper's grid into ``out`` on ``backend``; returns its tables. ``options`` go to the
    paper's ``reproduce`` (for ``adv2``: its selection, over :data:`~xaisec.experiments.reproduce.QUICK` when
    ``quick``)."""
    name = paper_names(name)[0]
    module, func = PAPERS[name][0].split(":")
    mod = importlib.import_module(module)
    if name == "adv2":
        return getattr(mod, func)(Path(out), **{**(mod.QUICK if quick else {}), **options}, seed=seed,
                                  workers=workers, progress=progress, backend=backend, address=address)
    return getattr(mod, func)(Path(out), quick=quick, seed=seed, workers=workers, progress=progress,
                              backend=backend, address=address, **options)


def paper_folder(out: str | Path, name: str, names: list[str]) -> Path:
    """Where ``name`` writes in a run of ``names`` into ``out``: ``out/<name>``, except ``adv2`` run alone,
    which writes into ``out`` itself (the layout of ``xaisec bench reproduce`` without ``--paper``)."""
    return Path(out) if names == ["adv2"] else Path(out) / name


def run_papers(selection: str | list[str], out: str | Path, *, quick: bool = False, seed: int = 0,
               workers: int = 1, progress: bool = True, backend: str = "local", address: str | None = None,
               adv2_options: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Run (or resume) every paper of ``selection`` ('all', 'a,b' or a list) into ``out/<paper>`` and rebuild
    ``out/index.html`` after each; returns each paper's tables."""
    from xaisec.reports.index import build_index

    names = paper_names(selection if isinstance(selection, str) else ",".join(selection))
    results = {}
    for name in names:
        log.info("paper %s -> %s", name, paper_folder(out, name, names))
        opts = (adv2_options or {}) if name == "adv2" else {}
        results[name] = run_paper(name, paper_folder(out, name, names), quick=quick, seed=seed, workers=workers,
                                  progress=progress, backend=backend, address=address, **opts)
        build_index(out)
    return results
