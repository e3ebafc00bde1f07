"""AttaXAI reproduction grid: tables from cells, and resuming from finished cells without recomputing."""

from __future__ import annotations

import pytest

from xaisec.experiments import attaxai
from xaisec.utils.io import atomic_write_json


def _attaxai_cell(ratio: list[float]) -> dict:
    n = len(ratio)
    return {"metrics": {"label_kept": [1.0] * n, "map_mse_ratio": ratio, "map_mse": [1e-6] * n,
                        "map_mse_benign": [2e-6] * n, "output_mse": [1e-5] * n, "input_mse": [1e-4] * n,
                        "input_mse_normalized": [2e-3] * n, "seconds_per_image": [3.0] * n, "queries": [250.0] * n,
                        "setup_queries": [2.0] * n, "best_map_mse_q10000": [2e-6] * n,
                        "best_map_mse_q50000": [1e-6] * n}}


def test_attaxai_tables_from_cells():
    row = attaxai._summary([_attaxai_cell([0.2, 0.4]), _attaxai_cell([0.9])], 50_000)
    assert row["pairs"] == 3 and row["median_ratio"] == 0.4 and row["label_kept"] == 1.0
    assert row["best_map_mse_first"]["queries"] == 10_000 and row["last_over_first"] == pytest.approx(0.5)
    md = attaxai._markdown({"model": "m", "pairs": 3, "queries": 50_000, "rows": {"attaxai/grad": row}})
    assert "| attaxai | grad | 3 | 100% | 0.400 |" in md


def test_attaxai_resumes_from_finished_cells(tmp_path, monkeypatch):
    def no_compute(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr("xaisec.models.load", no_compute)
    for start in (0, 1):
        atomic_write_json(tmp_path / "cells" / f"attaxai__grad__q500__pairs{start}-{start + 1}.json",
                          _attaxai_cell([0.5]))
    tables = attaxai.reproduce(tmp_path, quick=True, explainers=["grad"], dombrowski=(), pairs=2, queries=500,
                               block=1, progress=False)
    assert tables["rows"]["attaxai/grad"]["pairs"] == 2
    assert (tmp_path / "tables.md").exists() and (tmp_path / "tables.json").exists()
