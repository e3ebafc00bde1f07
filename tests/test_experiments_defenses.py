"""xaisec.experiments.defenses: registration, settings, and tables from partial results."""

from __future__ import annotations

import json

import pytest

from xaisec.experiments import defenses
from xaisec.experiments.papers import PAPERS, paper_names
from xaisec.utils.checks import XaisecError


def test_registered_and_sized() -> None:
    assert "defenses" in PAPERS and paper_names("defenses") == ["defenses"]
    quick, full = defenses.settings(True), defenses.settings(False)
    assert full["n_eval"] >= 200 and full["n_cal"] == 1000 and full["n_ens"] == 2000
    assert quick["n_eval"] < full["n_eval"]
    assert set(defenses.FS3) <= set(defenses.ALL_SQUEEZERS)


def test_tables_from_partial_cells(tmp_path) -> None:
    cells = tmp_path / "cells"
    cells.mkdir()
    (cells / "fs__calibration.json").write_text(json.dumps({"thresholds": {"median:2": 1.2, "joint": 1.5},
                                                            "n_calibration": 10, "fpr": 0.05}))
    (cells / "fs__gradcam__pgd.json").write_text(json.dumps({
        "interpreter": "gradcam", "attack": "pgd", "adaptive": None, "n": 4, "n_success": 3, "success": 0.75,
        "iou": 0.4, "l1": 0.2, "detection": {"median:2": 0.5, "joint": 2 / 3}}))
    t = defenses.collect(tmp_path, quick=True)
    assert len(t["feature_squeezing"]) == 1 and t["ms_bpda"] == [] and t["ensemble_attack"] == []
    md = defenses.render_tables(t)
    assert "| gradcam | pgd | 3 / 4 | 75.0% | 0.400 | 50.0% |" in md and "66.7%" in md


def test_unknown_part(tmp_path) -> None:
    with pytest.raises(XaisecError, match="unknown part"):
        defenses.reproduce(tmp_path, quick=True, parts=("nope",))


def test_batch_cache_matches_run_attack_and_takes_over_stale_locks(tiny_model, tiny_batch, tmp_path) -> None:
    from types import SimpleNamespace

    import torch

    from xaisec.experiments.runner import run_attack

    x, y = tiny_batch
    ctx = SimpleNamespace(s={"batch": 4}, out=tmp_path, seed=0, progress=False)
    partial = tmp_path / "cells" / "partial"
    partial.mkdir(parents=True)
    (partial / "k__bs4__b1.lock").write_text("999999999")  # a killed process's lock
    got = defenses._run(ctx, "k", tiny_model, "gradcam", "pgd", x, y, steps_scale=0.01)
    want = run_attack(tiny_model, "gradcam", "pgd", x, y, batch_size=4, seed=0, steps_scale=0.01)
    assert torch.equal(got.x_adv, want.x_adv) and torch.equal(got.target, want.target)
    assert sorted(p.name for p in partial.iterdir()) == ["k__bs4__b0.pt", "k__bs4__b1.pt"]
    again = defenses._run(ctx, "k", tiny_model, "gradcam", "pgd", x, y, steps_scale=0.01)  # from the cache
    assert torch.equal(again.x_adv, got.x_adv)
