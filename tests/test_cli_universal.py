"""`xaisec universal`: train, write the three files, apply to a model (transfer), bad input."""

from __future__ import annotations

import json

import torch

from xaisec.cli.main import main

BASE = ["universal", "--model", "cifar10_resnet20", "--train-data", "samples:cifar10", "--n-train", "20",
        "--n-test", "8", "--steps", "2", "--ngf", "4", "--batch-size", "10", "--threads", "1"]


def test_train_then_apply(tmp_path, capsys) -> None:
    out = tmp_path / "juap"
    assert main([*BASE, "--method", "juap", "--interpreter", "cam", "--eps", "10/255", "--out", str(out)]) == 0
    for name in ("perturbation.safetensors", "perturbation.json", "results.json", "report.html"):
        assert (out / name).is_file()
    rec = json.loads((out / "results.json").read_text())
    assert rec["mode"] == "train" and rec["n_test"] == 8 and len(rec["per_image"]) == 8
    assert rec["linf"] <= 10 / 255 and 0 <= rec["mean"]["fooling_ratio"] <= 1
    html = (out / "report.html").read_text()
    assert "data:image/png" in html  # the training curves and histograms
    assert html.count("<img") > 8
    applied = tmp_path / "applied"
    assert main([*BASE, "--apply", str(out / "perturbation.safetensors"), "--model", "cifar10_vgg11_bn",
                 "--interpreter", "gradcam", "--out", str(applied)]) == 0
    rec2 = json.loads((applied / "results.json").read_text())
    assert rec2["mode"] == "apply" and rec2["model"] == "cifar10_vgg11_bn"
    assert "fooling ratio" in capsys.readouterr().out


def test_bad_input(tmp_path, capsys) -> None:
    from xaisec.universal.result import UniversalPerturbation

    wrong = UniversalPerturbation(torch.zeros(1, 28, 28), "uap").save(tmp_path / "p.safetensors")
    assert main([*BASE, "--apply", str(wrong), "--out", str(tmp_path / "o")]) == 2
    assert "another image size or channel count" in capsys.readouterr().err
    (tmp_path / "c.safetensors").write_bytes(b"\x00" * 20)
    assert main([*BASE, "--apply", str(tmp_path / "c.safetensors"), "--out", str(tmp_path / "o")]) == 2
    assert "not a readable perturbation file" in capsys.readouterr().err
    assert main([*BASE, "--eps", "0", "--out", str(tmp_path / "o")]) == 2
    assert "budget must be > 0" in capsys.readouterr().err
    assert main([*BASE, "--interpreter", "mask", "--out", str(tmp_path / "o")]) == 2
    assert "no differentiable mode" in capsys.readouterr().err
