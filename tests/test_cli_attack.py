"""End-to-end tests of ``xaisec attack``, ``xaisec demo`` and ``xaisec bench reproduce``."""

import json

import pytest

from tests.conftest import shared_or_skip
from tests.test_cli import run_cli
from xaisec.models import shipped_weights

pytestmark = pytest.mark.skipif(shipped_weights("cifar10_resnet20") is None,
                                reason="the default model's weights are not shipped yet")


def test_attack_writes_results_and_report(tmp_path):
    out = tmp_path / "atk"
    res = run_cli("-q", "attack", "--interpreter", "gradcam", "--attack", "adv2", "--samples", "cifar10", "--n", "4",
                  "--steps-scale", "0.02", "--seed", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    record = json.loads((out / "results.json").read_text())
    assert set(record["mean"]) >= {"success", "confidence", "l1", "l2", "iou", "noise_rate", "seconds_per_image"}
    assert record["seed"] == 1 and record["n"] == 4 and len(record["images"]) == 4
    assert record["config"]["interpreter"] == "gradcam" and record["versions"]["torch"]
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 4 * 5 and "IoU" in html
    assert "| success |" in res.stdout


def test_attack_bad_arguments(tmp_path):
    res = run_cli("attack", "--attack", "adv3", "--out", str(tmp_path))
    assert res.returncode == 2 and "invalid choice" in res.stderr
    res = run_cli("attack", "--eps", "abc", "--out", str(tmp_path))
    assert res.returncode == 2 and "budget" in res.stderr
    res = run_cli("attack", "--target-class", "cat", "--samples", "cifar10", "--out", str(tmp_path))
    assert res.returncode == 2 and "--target-class" in res.stderr and "Traceback" not in res.stderr


def test_demo_shows_pgd_and_adv2_side_by_side(tmp_path):
    res = run_cli("-q", "demo", "--steps-scale", "0.02", "--out", str(tmp_path / "demo"))
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "demo" / "report.html").read_text()
    assert "pgd (pgd framework)" in html and "adv2 (pgd framework)" in html
    assert str((tmp_path / "demo" / "report.html").resolve()) in res.stdout
    assert (tmp_path / "demo" / "adv2.json").exists() and (tmp_path / "demo" / "pgd.json").exists()


def test_bench_reproduce_resumes(tmp_path):
    shared_or_skip("data", "cifar10-jpeg.tar")  # the grid draws its images from the CIFAR-10 test split
    args = ("-q", "bench", "reproduce", "--models", "cifar10_resnet20", "--interpreters", "cam", "--n", "3",
            "--n-small", "3", "--steps-scale", "0.01", "--out", str(tmp_path / "rep"))
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    cells = sorted((tmp_path / "rep" / "cells").glob("*.json"))
    assert len(cells) == 4 * 3  # 4 attacks x (pgd, cw, stadv)
    stamps = [c.stat().st_mtime_ns for c in cells]
    transfer = sorted((tmp_path / "rep" / "transfer").glob("*.json"))
    assert [t.name for t in transfer] == ["cifar10_resnet20__cam__adv2__pgd__cam.json"]
    transfer_stamp = transfer[0].stat().st_mtime_ns
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert [c.stat().st_mtime_ns for c in cells] == stamps  # nothing re-run
    assert transfer[0].stat().st_mtime_ns == transfer_stamp  # the transferability entry came from its cache
    md = (tmp_path / "rep" / "results.md").read_text()
    assert "| cifar10_resnet20 | cam | adv2 | pgd | 3 |" in md and "transferability" in md
    # a cell record without its adversarial inputs (e.g. copied from committed results) loses only its row
    (tmp_path / "rep" / "cells" / "cifar10_resnet20__cam__adv2__pgd.safetensors").unlink()
    third = run_cli(*args)
    assert third.returncode == 0, third.stderr
    md = (tmp_path / "rep" / "results.md").read_text()
    assert "| cifar10_resnet20 | cam | adv2 | pgd | 3 |" in md and "no ADV^2 cells" in md
