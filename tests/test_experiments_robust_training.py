"""The robust-training evaluation (xaisec.experiments.robust_training): measurements, cells, tables."""

import json

import pytest
import torch

from xaisec.experiments import robust_training as rt
from xaisec.experiments.papers import PAPERS


def test_registered():
    assert PAPERS["robust-training"][0] == "xaisec.experiments.robust_training:reproduce"


def test_pgd_accuracy_and_tau_on_a_tiny_model(tiny_model, tiny_batch):
    x, _ = tiny_batch
    y = tiny_model(x).argmax(1)
    assert rt.pgd_accuracy(tiny_model, x, y, 0.0, 5) == 1.0
    from xaisec.models import wrap

    torch.manual_seed(0)
    linear = wrap(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 5)), mean=(0.5,) * 3,
                  std=(0.25,) * 3).eval()
    y_lin = linear(x).argmax(1)
    assert rt.pgd_accuracy(linear, x, y_lin, 0.0, 5) == 1.0
    assert rt.pgd_accuracy(linear, x, y_lin, 0.3, 5) < 0.5  # a large budget flips a linear model's predictions
    row = rt.mean_tau(tiny_model, x, y, 8 / 255, 5)
    assert row["images"] == 6 and 0 < row["found"] <= 6 and -1 <= row["tau"] < 1
    assert row["topk_mass_drop"] > 0


def test_cells_are_written_once_and_resumed(tmp_path, monkeypatch):
    from xaisec.experiments.papers import run_cells

    calls = []

    def fake(kind, model_name, seed, n_all, **params):
        calls.append((kind, params["n_clean"]))
        return {"value": 0.5}

    monkeypatch.setattr(rt, "compute_cell", fake)  # the engine task rt.cell_task names
    task = rt.cell_task("c", "clean", "cifar10_resnet20", seed=0, n_all=8, n_clean=8)
    a = run_cells([task], tmp_path, progress=False)
    b = run_cells([task], tmp_path, progress=False)
    assert calls == [("clean", 8)] and a == b and a["c"]["value"] == 0.5
    assert json.loads((tmp_path / "cells" / "c.json").read_text())["value"] == 0.5


def test_render_tables():
    cfg = rt.settings(quick=True)
    row = {"clean": 0.86, "advedge": 1.0, "adv2": 0.95, **{f"pgd_{e}": 0.1 for e in cfg["eps"]},
           **{f"tau_{e}": (None if e == 0 else 0.2) for e in cfg["eps"]}}
    tables = {"settings": cfg, "seed": 0, "models": ["cifar10_resnet20"], "missing": ["cifar10_resnet20_at"],
              "rows": {"cifar10_resnet20": row},
              "aid": {"adv2_l1_aid_rts": 0.2, "adv2_l1_normal_rts": 0.05, "pgd_l1_normal_rts": 0.2,
                      "benign_l1_aid_vs_normal": 0.01}}
    md = rt.render(tables)
    assert "| cifar10_resnet20 | 0.860 | 1.000 | 0.950 |" in md
    assert "not measured (no shipped weights): cifar10_resnet20_at" in md and "AID" in md
    assert rt.settings(quick=False)["n"] == 200 and cfg["eps"] == [0, 2, 4, 6, 8, 10]


@pytest.mark.slow
def test_quick_reproduce_on_shipped_models(tmp_path):  # pragma: no cover - needs the CIFAR-10 copy and time
    from tests.conftest import shared_or_skip

    shared_or_skip("data", "cifar10-jpeg.tar")
    torch.set_num_threads(1)
    tables = rt.reproduce(tmp_path, quick=True)
    assert (tmp_path / "tables.md").exists() and "cifar10_resnet20" in tables["rows"]
