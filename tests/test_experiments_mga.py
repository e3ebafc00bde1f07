"""MGA reproduction grid: tables from finished cells (no recomputation)."""

from __future__ import annotations

import pytest

from xaisec.experiments import mga
from xaisec.utils.io import atomic_write_json


def test_mga_tables_from_cells(tmp_path, monkeypatch):
    monkeypatch.setattr("xaisec.models.load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    cell = {"wall_seconds": 8.0, "metrics": {"success": [1.0, 1.0, 0.0, 1.0], "transfer_success": [1.0, 0.0, 0.0, 0.0],
                                             "surrogate_success": [1.0] * 4, "queries": [1.0, 9.0, 200.0, 31.0],
                                             "iou": [0.5] * 4, "linf": [0.03] * 4, "noise_rate": [0.1] * 4}}
    atomic_write_json(tmp_path / "cells" / "t__s__gradcam__pgd__b200__0-4.json", cell)
    tables = mga.reproduce(tmp_path, quick=True, target="t", surrogate="s", seed_attacks=["pgd"], progress=False)
    r = tables["rows"]["pgd"]
    assert r["success"] == 0.75 and r["transfer_success"] == 0.25 and r["queries_median"] == 20.0
    assert r["queries_mean_success"] == pytest.approx(41 / 3)
    assert "| pgd | 4 | 100.0% | 25.0% | 75.0% |" in (tmp_path / "tables.md").read_text()
