"""The papers ``xaisec bench reproduce --paper NAME`` reproduces, each a resumable grid of its own.

``adv2`` is the ADV^2 / AdvEdge grid of :mod:`xaisec.experiments.reproduce` (its many options are flags of
``bench reproduce``). Every other paper is a module function ``reproduce(out, *, quick, seed, workers,
progress) -> dict`` that runs (or resumes) its cells under ``out``, one JSON file per finished cell written
atomically and skipped when present, and writes its tables as ``tables.json`` and ``tables.md`` there.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from xaisec.utils.checks import XaisecError

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
    return names


def run_paper(name: str, out: str | Path, *, quick: bool = False, seed: int = 0, workers: int = 1,
              progress: bool = True) -> dict[str, Any]:
    """Run (or resume) one paper's grid other than ``adv2`` into ``out``; returns its tables."""
    if paper_names(name)[0] == "adv2":
        raise XaisecError("the adv2 grid takes its own options: call xaisec.experiments.reproduce.reproduce")
    target, _ = PAPERS[name]
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)(Path(out), quick=quick, seed=seed, workers=workers,
                                                          progress=progress)
