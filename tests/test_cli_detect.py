"""``xaisec detect`` and ``xaisec attack --defense``."""

from __future__ import annotations

import argparse
import json

import pytest

from tests.test_cli import run_cli
from xaisec.cli.detect_cmd import defended_models
from xaisec.models import shipped_weights
from xaisec.utils.checks import XaisecError

needs_weights = pytest.mark.skipif(shipped_weights("cifar10_resnet20") is None, reason="no shipped ResNet-20 weights")


def test_defended_models(tiny_model) -> None:
    attacked, defended = defended_models(tiny_model, argparse.Namespace(defense=None, adaptive=False))
    assert attacked is tiny_model and defended is None
    attacked, defended = defended_models(tiny_model, argparse.Namespace(defense="median:2", adaptive=False))
    assert attacked is tiny_model and defended.transform.spec == "median:2" and not defended.transform.bpda
    attacked, defended = defended_models(tiny_model, argparse.Namespace(defense="bits:4", adaptive=True))
    assert attacked is defended and defended.transform.bpda
    with pytest.raises(XaisecError, match="--defense"):
        defended_models(tiny_model, argparse.Namespace(defense=None, adaptive=True))


def test_detect_bad_arguments(tmp_path, capsys) -> None:
    from xaisec.cli.main import main

    assert main(["detect", "--detector", "squeeze", "--interpreters", "grad,nope", "--out", str(tmp_path)]) == 2
    assert "unknown interpreter" in capsys.readouterr().err
    assert main(["detect", "--detector", "ensemble", "--attack", "adv9", "--out", str(tmp_path)]) == 2
    assert "unknown attack" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["detect", "--detector", "magic", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err


def test_attack_has_the_defense_flags() -> None:
    from xaisec.cli.main import build_parser

    args = build_parser().parse_args(["attack", "--defense", "median:2", "--adaptive", "--out", "x"])
    assert args.defense == "median:2" and args.adaptive


@pytest.mark.slow
@needs_weights
def test_detect_squeeze_writes_results_and_report(tmp_path) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "det"
    res = run_cli("-q", "detect", "--detector", "squeeze", "--squeezers", "median:2,bits:5", "--attack", "pgd",
                  "--interpreters", "gradcam", "--train", "40", "--eval", "4", "--steps-scale", "0.02",
                  "--out", str(out))
    if res.returncode != 0 and "shared data" in res.stderr:
        pytest.skip("CIFAR-10 test images not available")
    assert res.returncode == 0, res.stderr
    rec = json.loads((out / "results.json").read_text())
    assert set(rec["thresholds"]) == {"median:2", "bits:5", "joint"} and rec["n_calibration"] == 40
    assert (out / "detector.json").exists() and "<img" in (out / "report.html").read_text()
