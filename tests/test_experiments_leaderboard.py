"""The explanation-robustness leaderboard: building from cell records, bad files, merging, evaluating a model."""

import json
import logging
import math

import pytest
import torch

from tests.conftest import synthetic_shapes
from xaisec.data.dataset import ImageDataset
from xaisec.experiments import leaderboard as lb
from xaisec.utils.checks import XaisecError


def cell_record(model: str, interp: str, *, iou: float, l1: float = 0.05, success: float = 1.0, n: int = 8,
                attack: str = "adv2", framework: str = "pgd", steps_scale: float = 0.25, eps: float = 8 / 255,
                images: list | None = None) -> dict:
    """A minimal cell record in the format of the adv2 reproduction grid."""
    return {
        "config": {"attack": attack, "framework": framework, "eps": eps, "target_class": "random",
                   "target_map": "benign", "data": "cifar10-jpeg.tar:test",
                   "cell": {"model": model, "interpreter": interp, "attack": attack, "framework": framework, "n": n,
                            "steps_scale": steps_scale, "seed": 0, "options": []}},
        "versions": {"xaisec": "0.0.test", "torch": torch.__version__},
        "seed": 0, "n": n, "iterations": 400,
        "mean": {"success": success, "iou": iou, "l1": l1, "seconds_per_image": 1.5},
        **({"images": images} if images is not None else {}),
    }


def write_cells(folder, records) -> None:
    (folder / "cells").mkdir(parents=True, exist_ok=True)
    for r in records:
        c = r["config"]["cell"]
        name = f"{c['model']}__{c['interpreter']}__{c['attack']}__{c['framework']}".replace("+", "plus")
        (folder / "cells" / f"{name}.json").write_text(json.dumps(r))


@pytest.fixture
def grid(tmp_path):
    """Two models' cells (plus a pgd baseline cell, an off-threat-model cell and a grid summary)."""
    g = tmp_path / "grid"
    write_cells(g, [
        cell_record("model_a", "grad", iou=0.6, l1=0.04), cell_record("model_a", "cam", iou=0.9, l1=0.02),
        cell_record("model_a", "gradcam", iou=0.9, l1=0.02), cell_record("model_a", "rts", iou=0.1, l1=0.3),
        cell_record("model_b", "grad", iou=0.3, l1=0.08, success=0.5, n=2,
                    images=[{"success": 1.0, "iou": 0.1}, {"success": 0.0, "iou": 0.5}]),
        cell_record("model_b", "cam", iou=0.5),
        cell_record("model_b", "gradcam", iou=0.4),
        cell_record("model_b", "cam", iou=0.99, attack="pgd"),
        cell_record("model_c", "cam", iou=0.99, steps_scale=1.0), cell_record("model_c", "grad", iou=0.9, eps="8/255"),
    ])
    (g / "results.json").write_text(json.dumps({"cells": [], "transferability": {}}))
    return g


def test_build_from_cells_one_entry_per_model_ranked_by_mean_iou(grid, tmp_path):
    board = lb.build([grid], tmp_path / "lb", accuracy=False)
    names = [e["name"] for e in board["entries"]]
    assert names == ["model_b", "model_a"]  # model_c's only cell is off the threat model; pgd cells are not used
    a = next(e for e in board["entries"] if e["name"] == "model_a")
    assert math.isclose(a["mean_iou"], (0.6 + 0.9 + 0.9) / 3)  # the ranking mean leaves rts out
    assert a["mean_over"] == ["grad", "cam", "gradcam"] and set(a["interpreters"]) == {"grad", "cam", "gradcam", "rts"}
    b = board["entries"][0]
    assert b["rank"] == 1 and math.isclose(b["mean_success"], (0.5 + 1 + 1) / 3)
    assert b["interpreters"]["cam"]["iou"] == 0.5  # the adv2 cell, not the pgd one
    assert b["clean_accuracy"] is None and b["xaisec_version"] == "0.0.test"
    assert b["made"]["n_images"]["adv2"] == {"grad": 2, "cam": 8, "gradcam": 8}
    assert b["interpreters"]["grad"]["iou_successful"] == 0.1 and b["interpreters"]["cam"]["iou_successful"] is None
    on_disk = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    assert on_disk["threat_model"]["eps"] == 8 / 255 and on_disk["threat_model"]["accuracy_attack"]["steps"] == 20
    assert [e["name"] for e in on_disk["entries"]] == names
    page = (tmp_path / "lb" / "leaderboard.html").read_text()
    assert page.count("<tr>") >= 3 and 'data-sort' in page and "sortBy" in page and "<svg" in page
    assert 'data-v="0.3"' in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")  # no CDN


def test_bad_files_are_named_and_skipped(grid, tmp_path, caplog):
    (grid / "cells" / "broken__cam__adv2__pgd.json").write_text("{not json")
    bad_rec = cell_record("model_a", "grad", iou=0.5)
    del bad_rec["mean"]["iou"]
    (grid / "cells" / "noiou__grad__adv2__pgd.json").write_text(json.dumps(bad_rec))
    (grid / "cells" / "list.json").write_text("[1, 2]")
    with caplog.at_level(logging.WARNING):
        board = lb.build([grid], tmp_path / "lb", accuracy=False)
    assert len(board["entries"]) == 2
    text = caplog.text
    assert "broken__cam__adv2__pgd.json" in text and "noiou__grad__adv2__pgd.json" in text and "list.json" in text
    assert "mean.iou" in text


def test_nothing_usable_is_an_error_naming_the_bad_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(XaisecError, match="no usable ADV\\^2 cell records"):
        lb.build([empty], tmp_path / "lb", accuracy=False)
    (empty / "x.json").write_text("garbage")
    with pytest.raises(XaisecError, match=r"x\.json"):
        lb.build([empty], tmp_path / "lb", accuracy=False)
    with pytest.raises(XaisecError, match="does not exist"):
        lb.build([tmp_path / "nowhere"], tmp_path / "lb", accuracy=False)
    with pytest.raises(XaisecError, match="unknown interpreter"):
        lb.build([empty], tmp_path / "lb", interpreters=("grad", "nope"), accuracy=False)


def test_entries_are_kept_replaced_and_read_back_from_entry_files(grid, tmp_path):
    out = tmp_path / "lb"
    lb.build([grid], out, accuracy=False)
    extra = json.loads(json.dumps(lb.load(out)["entries"][0]))
    extra.update(name="mine", mean_iou=0.05)
    lb.add(out, extra)
    assert (out / "entries" / "mine.json").exists()
    assert [e["name"] for e in lb.load(out)["entries"]] == ["mine", "model_b", "model_a"]
    extra2 = {**extra, "mean_iou": 0.95}
    board = lb.add(out, extra2)  # same name: replaced, not duplicated
    assert [e["name"] for e in board["entries"]] == ["model_b", "model_a", "mine"]
    assert lb.build([grid], out, accuracy=False)["entries"][-1]["name"] == "mine"  # kept by a rebuild
    assert [e["name"] for e in lb.build([grid], out, accuracy=False, fresh=True)["entries"]] == ["model_b", "model_a"]
    cells, entries, bad = lb.read_results([out / "entries"])
    assert not cells and not bad and [e["name"] for e in entries] == ["mine"]
    fresh = lb.build([out / "entries"], tmp_path / "other", accuracy=False)
    assert [e["name"] for e in fresh["entries"]] == ["mine"]


def test_entries_off_the_threat_model_are_marked(grid, tmp_path):
    out = tmp_path / "lb"
    lb.build([grid], out, accuracy=False)
    e = {**lb.load(out)["entries"][0], "name": "quick"}
    e["settings"] = {**e["settings"], "steps_scale": 0.01}
    assert not lb.is_standard(e) and lb.is_standard(lb.load(out)["entries"][0])
    lb.add(out, e)
    page = (out / "leaderboard.html").read_text()
    assert "†" in page and "other settings" in page


def test_slug_is_file_safe_and_distinct():
    assert lb.slug("cifar10_resnet20") == "cifar10_resnet20"
    a, b = lb.slug("runs/m+median:2"), lb.slug("runs_m_median_2")
    assert "/" not in a and ":" not in a and a != b


@pytest.fixture
def shapes() -> ImageDataset:
    x, y = synthetic_shapes(48, seed=3)
    return ImageDataset((x * 255).round().to(torch.uint8), y, ["red", "green", "blue", "yellow", "cyan"], "shapes")


def test_accuracy_record_clean_and_pgd(trained_tiny, shapes):
    acc = lb.accuracy_record(trained_tiny, shapes, n_clean=40, n_robust=16, seed=0)
    assert acc["clean_n"] == 40 and acc["robust_n"] == 16
    assert 0.3 < acc["clean_accuracy"] <= 1 and acc["robust_accuracy"] < acc["clean_accuracy"]
    assert lb.accuracy_record(trained_tiny, shapes, n_clean=40, n_robust=16, seed=0) == acc


def numbers(e: dict) -> dict:
    """An entry's measured values (not its wall times or provenance)."""
    keys = ("clean_accuracy", "robust_accuracy", "mean_iou", "mean_l1", "mean_success", "clean_n", "robust_n")
    return {**{k: e[k] for k in keys},
            **{i: (v["iou"], v["l1"], v["success"], v["n"], v["iterations"]) for i, v in e["interpreters"].items()}}


def test_evaluate_is_seeded_resumable_and_skips_a_missing_rts(trained_tiny, shapes, tmp_path, caplog):
    kw = {"name": "tiny", "interpreters": ("grad", "cam", "rts"), "n": 2, "n_clean": 20, "n_robust": 4,
          "steps_scale": 0.02, "seed": 1, "command": "test"}
    with caplog.at_level(logging.WARNING):
        e1 = lb.evaluate(trained_tiny, shapes, cache=tmp_path / "c1", **kw)
    assert "rts is skipped" in caplog.text and set(e1["interpreters"]) == {"grad", "cam"}
    e2 = lb.evaluate(trained_tiny, shapes, cache=tmp_path / "c2", **kw)
    assert numbers(e1) == numbers(e2)
    assert e1["made"]["command"] == "test" and e1["made"]["n_images"]["adv2"] == {"grad": 2, "cam": 2}
    assert e1["settings"]["steps_scale"] == 0.02 and e1["defense"] is None
    for v in e1["interpreters"].values():
        assert 0 <= v["iou"] <= 1 and v["l1"] >= 0 and v["n"] == 2
    record = next((tmp_path / "c1").glob("*/adv2__grad.json"))  # the ADV^2 cells' folder (not the accuracy one)
    stamp = record.stat().st_mtime_ns
    lb.evaluate(trained_tiny, shapes, cache=tmp_path / "c1", **kw)  # finished cells are reused, not re-run
    assert record.stat().st_mtime_ns == stamp


def test_evaluate_defended_and_bad_input(trained_tiny, shapes, tmp_path):
    e = lb.evaluate(trained_tiny, shapes, name="tiny+median:2", defense="median:2", interpreters=("cam",), n=2,
                    n_clean=10, n_robust=2, steps_scale=0.02, cache=tmp_path)
    assert e["defense"] == "median:2" and e["bpda"] is False and e["clean_accuracy"] is not None
    with pytest.raises(XaisecError, match="unknown interpreter"):
        lb.evaluate(trained_tiny, shapes, name="t", interpreters=("nope",), cache=tmp_path)
    with pytest.raises(XaisecError, match="n must be"):
        lb.evaluate(trained_tiny, shapes, name="t", n=0, cache=tmp_path)
    with pytest.raises(XaisecError, match="steps_scale"):
        lb.evaluate(trained_tiny, shapes, name="t", steps_scale=float("nan"), cache=tmp_path)
