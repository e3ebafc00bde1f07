"""The JUAP reproduction grid: cells, resumability, tables (cell runs replaced by a fake)."""

from __future__ import annotations

import json
from dataclasses import asdict

import xaisec.experiments.juap as J
from xaisec.experiments.papers import PAPERS


def _fake_run(calls: list[str]):
    def compute_cell(cell, setting, data_seed):
        calls.append(cell.key)
        fr = {"uap": 0.6, "gap": 0.65, "juap": 0.7, "jap": 1.0, "pgd": 1.0}[cell.method]
        iou = 0.3 if cell.method in ("uap", "gap", "pgd") else 0.6 if cell.lam else 0.35
        rec = {"cell": asdict(cell), "key": cell.key, "norm_value": cell.eps * 0.999,
               "eval": {it: {"n": 10, "fooling_ratio": fr + 0.01 * cell.seed, "l1": 1 - iou, "iou": iou,
                             "iou_threshold": iou} for it in cell.evaluate_with}}
        return rec

    return compute_cell


def test_cells_cover_the_grid() -> None:
    cells = J.build_cells(J.FULL, seed=0)
    keys = [c.key for c in cells]
    assert len(keys) == len(set(keys))
    main = [c for c in cells if c.model == J.MAIN_MODEL and c.kind == "universal" and c.seed == 0]
    assert {(c.method, c.generator, c.interpreter, c.norm) for c in main} >= {
        ("juap", "unet", "rts", "l2"), ("juap", "resnet", "gradcam", "linf"), ("uap", None, None, "l2"),
        ("gap", "resnet", None, "linf")}
    assert {c.seed for c in cells} == {0, 1, 2}
    assert not any(c.model == "cifar10_vgg11_bn" and c.interpreter == "cam" for c in cells)  # no CAM head
    assert [c.method for c in cells if c.kind == "jap"] == ["jap", "pgd"]
    assert PAPERS["juap"][0] == "xaisec.experiments.juap:reproduce"


def test_reproduce_resumes_and_writes_tables(tmp_path, monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(J, "compute_cell", _fake_run(calls))  # the engine task J.cell_task names
    t = J.reproduce(tmp_path, quick=True, progress=False)
    n = len(J.build_cells(J.QUICK))
    assert len(calls) == n
    (tmp_path / "cells" / f"{calls[0]}.json").unlink()
    J.reproduce(tmp_path, quick=True, progress=False)
    assert len(calls) == n + 1  # only the missing cell ran again
    saved = json.loads((tmp_path / "tables.json").read_text())
    assert saved["table_iv_jap_vs_pgd"] and saved["lambda_ablation"]
    fr = {(r["method"], r["norm"]): r["fooling_ratio"] for r in t["table_ii_fooling"]}
    assert fr[("UAP", "linf")] == 0.6 and fr[("R-JUAP-cam", "l2")] == 0.7
    abl = {r["lam"]: r["iou"] for r in t["lambda_ablation"] if r["interpreter"] == "cam"}
    assert abl[0.0] == 0.35 and abl[J.QUICK.lam] == 0.6
    assert all(r["budget_holds"] for r in t["table_v"])
    md = (tmp_path / "tables.md").read_text()
    assert "Table II" in md and "| UAP | 60.0 |" in md and "xaisec bench reproduce --paper juap --quick" in md
