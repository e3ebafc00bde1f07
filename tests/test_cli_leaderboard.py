"""``xaisec leaderboard``: build from a results folder, bad input, --add on a user's model and image folder."""

import json
import logging

import numpy as np
import pytest
from PIL import Image

from tests.conftest import synthetic_shapes
from tests.test_experiments_leaderboard import cell_record, write_cells
from tests.test_models_loading import FACTORY
from xaisec.cli.main import main
from xaisec.models.loading import save_model_folder

COLOURS = ["red", "green", "blue", "yellow", "cyan"]


@pytest.fixture
def grid(tmp_path):
    g = tmp_path / "grid"
    write_cells(g, [cell_record("m1", i, iou=v) for i, v in (("grad", 0.5), ("cam", 0.8), ("gradcam", 0.7))]
                + [cell_record("m2", i, iou=v) for i, v in (("grad", 0.2), ("cam", 0.3), ("gradcam", 0.4))])
    return g


def test_build_from_results_writes_json_and_html(grid, tmp_path, capsys):
    out = tmp_path / "lb"
    assert main(["-q", "leaderboard", "--from", str(grid), "--out", str(out), "--no-accuracy"]) == 0
    printed = capsys.readouterr().out
    assert "m2" in printed and "leaderboard.html" in printed
    board = json.loads((out / "leaderboard.json").read_text())
    assert [e["name"] for e in board["entries"]] == ["m2", "m1"]
    assert board["entries"][0]["made"]["command"].startswith("xaisec leaderboard --from")
    page = (out / "leaderboard.html").read_text()
    assert "<table" in page and "<script>" in page and "src=" not in page
    (out / "leaderboard.html").unlink()
    assert main(["-q", "leaderboard", "--out", str(out)]) == 0  # re-render from leaderboard.json
    assert (out / "leaderboard.html").exists()


def test_bad_input(grid, tmp_path, capsys, caplog):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["-q", "leaderboard", "--from", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no usable" in capsys.readouterr().err
    (grid / "cells" / "torn__grad__adv2__pgd.json").write_text('{"config": {')
    with caplog.at_level(logging.WARNING):
        assert main(["-q", "leaderboard", "--from", str(grid), "--out", str(tmp_path / "o"), "--no-accuracy"]) == 0
    assert "torn__grad__adv2__pgd.json" in caplog.text
    assert main(["-q", "leaderboard", "--from", str(grid), "--out", str(tmp_path / "o"),
                 "--interpreters", "grad,bogus"]) == 2
    assert "unknown interpreter bogus" in capsys.readouterr().err
    assert main(["-q", "leaderboard", "--add", "--out", str(tmp_path / "o")]) == 2
    assert "--add needs --model" in capsys.readouterr().err
    assert main(["-q", "leaderboard", "--add", "--model", "no_such_model", "--out", str(tmp_path / "o")]) == 2
    assert "no_such_model" in capsys.readouterr().err
    assert main(["-q", "leaderboard", "--out", str(tmp_path / "none")]) == 2
    assert "no leaderboard.json" in capsys.readouterr().err


@pytest.fixture
def own(tmp_path, trained_tiny):
    """The trained TinyNet as a model folder with a card, and 30 synthetic images as <colour>/<image>.png."""
    folder = tmp_path / "tiny_dir"
    folder.mkdir()
    (folder / "net.py").write_text(FACTORY)
    save_model_folder(trained_tiny, folder, factory="net.py:make")
    data = tmp_path / "shapes"
    x, y = synthetic_shapes(30, seed=2)
    arr = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for c in COLOURS:
        (data / c).mkdir(parents=True)
    for i, (a, label) in enumerate(zip(arr, y.tolist(), strict=True)):
        Image.fromarray(a).save(data / COLOURS[label] / f"{i:03d}.png")
    return folder, data


def test_add_own_model_records_how_it_was_made(grid, own, tmp_path, capsys):
    folder, data = own
    out = tmp_path / "lb"
    assert main(["-q", "leaderboard", "--from", str(grid), "--out", str(out), "--no-accuracy"]) == 0
    args = ["-q", "leaderboard", "--add", "--model", str(folder), "--data", str(data), "--name", "tiny",
            "--interpreters", "grad,cam", "--n", "2", "--n-clean", "20", "--n-robust", "4", "--steps-scale", "0.02",
            "--out", str(out), "--threads", "1"]
    assert main(args) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert {e["name"] for e in board["entries"]} == {"m1", "m2", "tiny"}
    e = next(e for e in board["entries"] if e["name"] == "tiny")
    assert e["clean_accuracy"] is not None and e["robust_accuracy"] is not None and e["clean_n"] == 20
    assert set(e["interpreters"]) == {"grad", "cam"} and e["made"]["n_images"]["adv2"] == {"grad": 2, "cam": 2}
    assert "--add" in e["made"]["command"] and "--n 2" in e["made"]["command"] and e["made"]["date"]
    assert json.loads((out / "entries" / "tiny.json").read_text())["name"] == "tiny"
    assert "tiny" in (out / "leaderboard.html").read_text()
    capsys.readouterr()
    assert main(args[:-2]) == 0  # again: same numbers (the cells are reused from OUT/cells)
    again = next(x for x in json.loads((out / "leaderboard.json").read_text())["entries"] if x["name"] == "tiny")
    assert again["interpreters"] == e["interpreters"] and again["robust_accuracy"] == e["robust_accuracy"]
