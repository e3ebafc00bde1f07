"""Every paper's grid on the engine: run_tasks for every paper, the same records with 1 and 2 workers, an
interrupted grid resumed to the same tables, and the one results folder with its index.html.

The papers' cell functions are replaced by fast fakes (deterministic functions of the task's settings with the
record layout the tables read), so these tests check the grids' plumbing, not the attacks."""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict
from pathlib import Path

import pytest

from xaisec.experiments import attaxai, defenses, engine, grid, juap, mga, patch, robust_training
from xaisec.experiments.papers import (
    PAPERS,
    ResultsFolder,
    paper_folder,
    paper_names,
    run_paper,
    run_papers,
    settings_of,
)
from xaisec.reports.index import build_index, markdown_html
from xaisec.utils.checks import XaisecError

OTHERS = [p for p in PAPERS if p != "adv2"]


def _u(*parts) -> float:
    """A deterministic number in [0, 1) from the parts (a stand-in for a measured rate)."""
    return (zlib.crc32(repr(parts).encode()) % 1000) / 1000


class Crash(RuntimeError):
    pass


class _Fakes:
    """Fake cell functions for every paper; ``crash_on`` makes the first call of matching cells raise."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.crash_on: str | None = None

    def _called(self, name: str) -> None:
        if self.crash_on is not None and self.crash_on in name:
            self.crash_on = None
            raise Crash(f"interrupted in {name}")
        self.calls.append(name)

    def juap(self, cell, setting, data_seed):
        self._called(cell.key)
        rec = {"cell": asdict(cell), "key": cell.key, "norm_value": cell.eps * 0.999,
               "eval": {it: {"n": 4, "fooling_ratio": _u(cell.key), "l1": _u(cell.key, it, 1),
                             "iou": _u(cell.key, it, 2), "iou_threshold": _u(cell.key, it, 3)}
                        for it in cell.evaluate_with}}
        blobs = {"safetensors": cell.key.encode(), "card.json": b"{}"} if cell.kind == "universal" else {}
        return rec, blobs

    def patch(self, model_name, config, seed, n, steps, layer, batch_size, options):
        self._called(f"{model_name}_{config}")
        return {"model": model_name, "config": config, "layer": layer, "steps": steps, **options,
                **patch.CONFIGS[config], "n": n, "success": _u(model_name, config), "patch_mass": _u(config, 1),
                "patch_mass_success": None, "patch_mass_up": 0.1, "patch_mass_clean": 0.05, "area_share": 0.0625,
                "fidelity_off_patch": 0.5, "wall_seconds": 1.0}

    def patch_universal(self, model_name, map_mode, seed, cfg, layer):
        self._called(f"universal_{map_mode}")
        row = {"model": model_name, "config": f"universal-{map_mode}", "layer": layer, "size": 0.25, "ratio": 1.0,
               "map_mode": map_mode, **cfg, "success": _u(map_mode), "patch_mass": 0.2, "patch_mass_success": 0.3,
               "patch_mass_up": 0.2, "patch_mass_clean": 0.1, "area_share": 0.0625, "fidelity_off_patch": 0.4,
               "wall_seconds": 2.0}
        return row, {"safetensors": map_mode.encode(), "card.json": b"{}"}

    def attaxai(self, *, model_name, explainer, attack, start, stop, pairs, seed, queries=None, iterations=None):
        self._called(f"{attack}__{explainer}__{start}")
        n = stop - start
        return {"metrics": {"label_kept": [1.0] * n, "map_mse_ratio": [_u(explainer, attack, i) for i in range(n)],
                            "map_mse": [1e-6] * n, "map_mse_benign": [2e-6] * n, "output_mse": [1e-5] * n,
                            "input_mse": [1e-4] * n, "input_mse_normalized": [2e-3] * n,
                            "seconds_per_image": [3.0] * n}}

    def mga(self, *, target, surrogate, interpreter, seed_attack, start, stop, n, budget, seed, seed_options=None):
        self._called(f"{seed_attack}__{start}")
        k = stop - start
        return {"wall_seconds": 1.0, "metrics": {
            "success": [float(_u(seed_attack, i) > 0.3) for i in range(k)], "transfer_success": [0.0] * k,
            "surrogate_success": [1.0] * k, "queries": [float(10 + i) for i in range(k)], "iou": [0.5] * k,
            "linf": [0.03] * k, "noise_rate": [0.1] * k}}

    def robust(self, kind, model_name, seed, n_all, **p):
        self._called(f"{model_name}_{kind}_{p.get('eps', p.get('attack', ''))}")
        v = _u(kind, model_name, p.get("eps"), p.get("attack"))
        return {"clean": {"accuracy": v}, "pgd": {"accuracy": v}, "tau": {"tau": v},
                "attack": {"success": v, "l1": 0.1}, "aid": {"adv2_l1_aid_rts": v, "adv2_l1_normal_rts": 0.1,
                                                             "pgd_l1_normal_rts": 0.2, "benign_l1_aid_vs_normal": 0.0}
                }[kind]

    def defenses(self, part, seed, folder, uses, upstream=None, **a):
        self._called(f"{part}_{a}")
        out = Path(folder.path)
        if part == "calibration":
            thr = {k: 1.0 + _u(k) for k in [*defenses.ALL_SQUEEZERS, "joint"]}
            return {"thresholds": thr, "n_calibration": 8, "fpr": 0.05}, {"detector.json": b'{"fake": 1}'}
        if part == "fs":
            assert (out / "squeeze_detector.json").exists() and len(a["thresholds"]) == 8  # stage 1 came first
            assert set(uses) == {"n_cal", "n_eval", "steps_scale", "adaptive_sets", "batch"}
            return {"interpreter": a["interp"], "attack": a["attack"], "adaptive": a["adaptive_set"], "n": 4,
                    "n_success": 3, "success": 0.75, "iou": _u(a["interp"], a["attack"]), "l1": 0.2,
                    "detection": {"joint": _u(a["interp"], a["adaptive_set"])}}, {"safetensors": b"adv"}
        if part == "clean_accuracy":
            return {"n": 8, "accuracy": {s: _u(s) for s in ("none", *defenses.TRANSFORMS)}}
        if part == "ms_oblivious":
            return {"n": 8, "success": {s: _u(s, 1) for s in ("none", *defenses.TRANSFORMS)}, "iou": 0.3}
        if part == "ms_bpda":
            return {"transform": a["spec"], "n": 8, "success": _u(a["spec"], 2), "iou": 0.3}
        if part == "ens_attack_set":
            return {"target": a["target"], "n": 8, "success": 1.0, "iou": 0.2}, {"safetensors": b"adv"}
        if part == "ens_maps":
            assert (out / "cells" / f"ens__adv2__{a['target']}.safetensors").exists()
            return {"target": a["target"]}, {"safetensors": b"maps"}
        if part == "ens_detector":
            assert (out / "cells" / f"ens__maps__{a['target']}.safetensors").exists()
            rep = {"interpreters": list(a["names"]), "variant": a["variant"], "n_train": 10, "n_test": 6,
                   "test": {"accuracy": _u(a["names"], a["variant"]), "auc": 0.9, "tpr_at_fpr": 0.5},
                   "test_cnn_head": {"accuracy": 0.7}}
            blobs = ({"detector.json": b"{}", "detector.safetensors": b"w"}
                     if (tuple(a["names"]), a["variant"]) == (("grad", "cam"), "maps") else {})
            return rep, blobs
        if part == "ens_adaptive":
            assert (out / "ensemble_detector_cam" / "detector.safetensors").exists()  # published after stage 3
            return {"n": 4, "success": 0.5, "iou": {"grad": 0.3, "cam": 0.4}, "threshold": 0.5,
                    "tpr_before": 0.9, "tpr_after": _u(a["with_detector"]), "with_detector_term": a["with_detector"]}
        raise AssertionError(part)

    def adv2(self, cell, data="cifar10"):
        self._called(cell.key)
        mean = {"success": _u(cell.key), "confidence": 0.9, "l1": 0.1, "iou": _u(cell.key, 1), "noise_rate": 0.2,
                "seconds_per_image": 0.5}
        return {"config": {"cell": asdict(cell), "data": data}, "n": cell.n, "mean": mean}


@pytest.fixture
def fakes(monkeypatch):
    f = _Fakes()
    monkeypatch.setattr(juap, "compute_cell", f.juap)
    monkeypatch.setattr(patch, "compute_cell", f.patch)
    monkeypatch.setattr(patch, "compute_universal_cell", f.patch_universal)
    monkeypatch.setattr(attaxai, "compute_cell", f.attaxai)
    monkeypatch.setattr(mga, "compute_cell", f.mga)
    monkeypatch.setattr(robust_training, "compute_cell", f.robust)
    monkeypatch.setattr(defenses, "compute_cell", f.defenses)
    monkeypatch.setattr(defenses, "_prepare", lambda *a: None)
    monkeypatch.setattr(grid, "compute_cell", f.adv2)
    return f


@pytest.fixture
def spy(monkeypatch):
    """Every call of engine.run_tasks: (number of tasks, backend, workers)."""
    calls: list[tuple[int, str, int]] = []
    real = engine.run_tasks

    def run_tasks(tasks, out, **kw):
        tasks = list(tasks)
        calls.append((len(tasks), kw.get("backend", "local"), kw.get("workers", 1)))
        return real(tasks, out, **kw)

    monkeypatch.setattr(engine, "run_tasks", run_tasks)
    return calls


def _records(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((folder / "cells").glob("*.json"))}


def _tables(folder: Path) -> dict:
    return json.loads((folder / "tables.json").read_text())


@pytest.mark.parametrize("name", OTHERS)
def test_every_paper_runs_on_the_engine_with_the_same_records_for_1_and_2_workers(name, tmp_path, fakes, spy):
    run_paper(name, tmp_path / "one", quick=True, progress=False)
    assert spy and all(b == "local" and w == 1 for _, b, w in spy)  # the paper's cells went through run_tasks
    ran = list(fakes.calls)
    assert ran and sum(n for n, _, _ in spy) >= len(ran)
    run_paper(name, tmp_path / "two", quick=True, progress=False, workers=2)
    assert spy[-1][2] == 2
    one, two = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert one == two and len(one) >= len(ran)
    assert _tables(tmp_path / "one") == _tables(tmp_path / "two")
    assert (tmp_path / "one" / "tables.md").read_text().strip()
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())["cells"]
    assert {f"{k}.json" for k in manifest} <= set(one)
    fakes.calls.clear()
    run_paper(name, tmp_path / "one", quick=True, progress=False)  # resumed: every record is there
    assert fakes.calls == []


@pytest.mark.parametrize("name", OTHERS)
def test_an_interrupted_grid_resumes_to_the_tables_of_an_uninterrupted_one(name, tmp_path, fakes):
    run_paper(name, tmp_path / "whole", quick=True, progress=False)
    keys = list(fakes.calls)
    fakes.calls.clear()
    fakes.crash_on = keys[len(keys) // 2]  # a cell in the middle of the grid dies on its first call
    with pytest.raises(Crash):
        run_paper(name, tmp_path / "cut", quick=True, progress=False)
    assert not (tmp_path / "cut" / "tables.json").exists()
    done = len(fakes.calls)
    assert 0 < len(_records(tmp_path / "cut")) < len(_records(tmp_path / "whole"))
    run_paper(name, tmp_path / "cut", quick=True, progress=False)
    assert len(fakes.calls) == len(keys)  # the second run ran only the missing cells
    assert done < len(keys)
    assert _tables(tmp_path / "cut") == _tables(tmp_path / "whole")
    assert _records(tmp_path / "cut") == _records(tmp_path / "whole")


def test_defense_stages_run_in_order_and_a_changed_setting_reruns_its_cells_and_their_readers(
        tmp_path, fakes, spy, monkeypatch):
    t = run_paper("defenses", tmp_path, quick=True, progress=False)
    quick = defenses.settings(True)
    n_fs = len(quick["fs_interpreters"]) * (2 + len(quick["adaptive_sets"]))
    assert [n for n, _, _ in spy] == [1 + 2 + len(quick["bpda"]) + 1, n_fs + 1, 10, 2]  # the four stages
    assert (tmp_path / "squeeze_detector.json").read_bytes() == b'{"fake": 1}'
    assert len(t["feature_squeezing"]) == n_fs and len(t["ensemble_detector"]) == 10
    assert len(t["ensemble_attack"]) == 2 and "engine" not in t["feature_squeezing"][0]

    def parts_rerun_with(**changed) -> list[str]:
        monkeypatch.setattr(defenses, "settings", lambda q: {**quick, **changed})
        fakes.calls.clear()
        run_paper("defenses", tmp_path, quick=True, progress=False)
        return [c.split("_{")[0] for c in fakes.calls]

    # the detectors' epochs: the 10 detectors, and the ensemble attack that faces one of them
    assert sorted(set(parts := parts_rerun_with(epochs=3))) == ["ens_adaptive", "ens_detector"] and len(parts) == 12
    # the ensemble's attack set: its maps, the detectors trained on them and the attack, nothing else
    parts = parts_rerun_with(epochs=3, n_ens=48)
    assert sorted(set(parts)) == ["ens_adaptive", "ens_attack_set", "ens_detector", "ens_maps"] and len(parts) == 14


def test_a_moved_results_folder_keeps_its_settings():
    a = engine.Task("k", "m:f", (("folder", ResultsFolder("/a")),))
    b = engine.Task("k", "m:f", (("folder", ResultsFolder("/elsewhere/b")),))
    assert engine.settings_hash(a) == engine.settings_hash(b)
    assert settings_of({"engine": {"settings": "abc"}}) == "abc" and settings_of({}) is None


def test_all_papers_write_one_folder_with_an_index(tmp_path, fakes, spy, monkeypatch):
    monkeypatch.setattr("xaisec.experiments.reproduce.transferability", lambda *a, **k: {})
    tables = run_papers("all", tmp_path, quick=True, progress=False, backend="local", workers=1)
    assert list(tables) == list(PAPERS)
    index = (tmp_path / "index.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', index) and "<script" not in index.lower()  # self-contained
    for name in PAPERS:
        folder = tmp_path / name
        assert (folder / "tables.md").exists() and (folder / "tables.json").exists()
        assert f'id="{name}"' in index and f'href="{name}/tables.md"' in index
        cells = sorted((folder / "cells").glob("*.json"))
        some = next(p for p in cells if not p.name.endswith((".card.json", ".detector.json")))
        assert f'href="{name}/cells/{some.name}"' in index
        assert list((folder / "plots").glob("*.png")), f"{name} has no plots"
    assert index.count("<table>") > 10 and "data:image/png;base64," in index
    # adv2 got the quick selection: the ResNet-20, 3 interpreters x 4 attacks on the pgd framework, 8 images
    adv2 = _records(tmp_path / "adv2")
    assert len(adv2) == 12 and {r["config"]["cell"]["n"] for r in adv2.values()} == {8}
    assert {r["config"]["cell"]["framework"] for r in adv2.values()} == {"pgd"}


def test_adv2_alone_writes_into_the_folder_itself(tmp_path, fakes, monkeypatch):
    monkeypatch.setattr("xaisec.experiments.reproduce.transferability", lambda *a, **k: {})
    assert paper_folder(tmp_path, "adv2", ["adv2"]) == tmp_path
    assert paper_folder(tmp_path, "adv2", ["adv2", "mga"]) == tmp_path / "adv2"
    run_papers("adv2", tmp_path, quick=True, progress=False, adv2_options={"interpreters": ("cam",), "n": 3})
    assert (tmp_path / "results.md").exists() and (tmp_path / "tables.md").exists()
    assert len(list((tmp_path / "cells").glob("*.json"))) == 4
    assert 'href="tables.md"' in (tmp_path / "index.html").read_text()


def test_the_cli_passes_backend_and_address_to_every_paper(tmp_path, monkeypatch):
    from xaisec.cli.main import main

    seen = {}

    def fake_run_papers(names, out, **kw):
        seen.update(names=names, out=out, **kw)
        for n in names:
            folder = paper_folder(out, n, names)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "tables.md").write_text(f"# {n}\n")

    monkeypatch.setattr("xaisec.experiments.papers.run_papers", fake_run_papers)
    assert main(["-q", "bench", "reproduce", "--paper", "juap,mga", "--quick", "--backend", "ray", "--address",
                 "auto", "--workers", "2", "--out", str(tmp_path)]) == 0
    assert seen["names"] == ["juap", "mga"] and seen["backend"] == "ray" and seen["address"] == "auto"
    assert seen["workers"] == 2 and seen["quick"] is True and "interpreters" not in seen["adv2_options"]
    monkeypatch.setattr("xaisec.experiments.engine.default_workers", lambda: 3)
    assert main(["-q", "bench", "reproduce", "--paper", "mga", "--quick", "--out", str(tmp_path)]) == 0
    assert seen["workers"] == 3 and seen["backend"] == "local"  # no --workers: one cell per core on either backend
    with pytest.raises(XaisecError, match="unknown paper nope"):
        paper_names("juap,nope")


def test_markdown_tables_become_html():
    md = "# Title `x < 1`\n\nCommand: `xaisec bench`\n\n| a | b |\n|---|---|\n| 1.5 | **x** |\n\n- item\n"
    out = markdown_html(md)
    assert "<h3>Title <code>x &lt; 1</code></h3>" in out and "<p>Command: <code>xaisec bench</code></p>" in out
    assert "<table>" in out and "<th>a</th>" in out and "<td class=num>1.5</td>" in out and "<b>x</b>" in out
    assert "---" not in out and "<li>item</li>" in out


def test_index_of_an_empty_folder(tmp_path):
    assert "No paper has finished tables here yet" in build_index(tmp_path).read_text()


@pytest.mark.slow
def test_a_real_cell_gives_the_same_numbers_on_ray_as_locally(tmp_path):  # pragma: no cover - data and Ray
    from tests.conftest import shared_or_skip

    shared_or_skip("data", "cifar10-jpeg.tar")
    ray = pytest.importorskip("ray", reason="the ray backend needs Ray (pip install ray)")
    opts = {"quick": True, "progress": False, "models": ["cifar10_resnet20"], "configs": ["plain"], "universal": ()}
    local = run_paper("patch", tmp_path / "local", **opts)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_paper("patch", tmp_path / "ray", backend="ray", **opts)
    finally:
        ray.shutdown()
    drop = ("wall_seconds", "seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in local["rows"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in on_ray["rows"]]
