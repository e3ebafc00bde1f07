"""The patch reproduction grid: cell summaries, resuming from finished cells, the tables."""

from __future__ import annotations

import json

from xaisec.attacks import get
from xaisec.experiments.papers import PAPERS
from xaisec.experiments.patch import CONFIGS, MODELS, cell_summary, markdown, reproduce


def test_registered_and_grid() -> None:
    assert PAPERS["patch"][0] == "xaisec.experiments.patch:reproduce"
    assert set(CONFIGS) == {"plain", "attract", "hide", "faint"}
    assert MODELS["cifar10_resnet20"]["layer"] == "layer3" and MODELS["cifar10_vgg11_bn"]["layer"] == "features.13"


def test_cell_summary_of_a_real_result(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    res = get("patch", tiny_model, "gradcam", map_mode="attract", steps=3, seed=0)(x, y)
    row = cell_summary(res)
    assert row["n"] == 6 and 0 <= row["success"] <= 1
    assert abs(row["area_share"] - 1 / 16) < 1e-6
    assert row["patch_mass_success"] is None or 0 <= row["patch_mass_success"] <= 1


def test_reproduce_resumes_from_cell_files(tmp_path) -> None:
    cells = tmp_path / "cells"
    cells.mkdir()
    row = {"model": "cifar10_resnet20", "config": "hide", "layer": "layer3", "size": 0.25, "ratio": 1.0,
           "map_mode": "hide", "success": 0.9, "patch_mass": 0.03, "patch_mass_success": 0.02,
           "patch_mass_up": 0.04, "patch_mass_clean": 0.05, "area_share": 0.0625, "fidelity_off_patch": 0.4,
           "wall_seconds": 12.0}
    (cells / "cifar10_resnet20_hide.json").write_text(json.dumps(row))
    tables = reproduce(tmp_path, models=["cifar10_resnet20"], configs=["hide"], universal=(), progress=False)
    assert tables["rows"] == [row]
    md = (tmp_path / "tables.md").read_text()
    assert "| cifar10_resnet20 | layer3 | hide |" in md and "90.0%" in md
    assert json.loads((tmp_path / "tables.json").read_text())["rows"][0]["patch_mass"] == 0.03
    assert "xaisec bench reproduce --paper patch" in markdown(tables)
