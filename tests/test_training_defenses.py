"""Training-time defenses through the one trainer (xaisec.training.defenses + trainer hook + CLI)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import xaisec.training.trainer as trainer_mod
from xaisec.cli.main import main
from xaisec.interpreters import get
from xaisec.training import TrainConfig, train
from xaisec.training.defenses import DEFENSES, build_defense, parse_fraction
from xaisec.utils.checks import XaisecError


@pytest.fixture
def toy_npz(tmp_path):
    """A learnable 2-class 28x28 set (PneumoniaMNIST layout): class 1 has a bright square."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 2, n)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        x[y == 1, 8:20, 8:20] += 150
        return x, y.reshape(-1, 1)

    tr, te = make(32), make(8)
    p = tmp_path / "toy_pneumoniamnist.npz"
    np.savez(p, train_images=tr[0], train_labels=tr[1], test_images=te[0], test_labels=te[1])
    return p


def _cfg(data, out, **kw):
    return TrainConfig(model="pneumonia_cnn", data=str(data), out=str(out), epochs=kw.pop("epochs", 2), batch_size=32,
                       lr=kw.pop("lr", 0.01), crop_pad=2, amp=False, init_weights="shipped", **kw)


def _at():
    return build_defense("adversarial", eps=8 / 255, alpha=4 / 255, steps=(1, 2))


def test_card_records_the_defense_and_its_settings(toy_npz, tmp_path):
    res = train(_cfg(toy_npz, tmp_path / "at", name="pneumonia_cnn_at"), progress=False, batch_loss=_at())
    assert res.weights.name == "pneumonia_cnn_at.safetensors"
    card = json.loads(res.card.read_text())
    assert card["model"] == "pneumonia_cnn_at" and card["architecture"] == "pneumonia_cnn"
    assert card["defense"]["name"] == "adversarial"
    assert card["defense"]["settings"]["steps"] == [1, 2]
    assert card["defense"]["settings"]["eps"] == pytest.approx(8 / 255)
    assert card["initialised_from"].endswith("pneumonia_cnn.safetensors")  # fine-tuned from the shipped weights
    assert card["config"]["defense"]["name"] == "adversarial"

    ir = build_defense("interpretation-robust", interpreter=lambda m: get("cam", m), interpreter_name="cam",
                       gamma=0.05, steps=1)
    res2 = train(_cfg(toy_npz, tmp_path / "ir", epochs=1), progress=False, batch_loss=ir)
    card2 = json.loads(res2.card.read_text())
    assert card2["defense"]["settings"]["gamma"] == 0.05 and card2["defense"]["settings"]["interpreter"] == "cam"


def test_resume_continues_where_it_stopped(toy_npz, tmp_path, monkeypatch):
    full = train(_cfg(toy_npz, tmp_path / "full"), progress=False, batch_loss=_at())
    real_write = trainer_mod.atomic_write_bytes
    calls = {"n": 0}

    def write_then_die(path, data):
        real_write(path, data)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "atomic_write_bytes", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(toy_npz, tmp_path / "resumed"), progress=False, batch_loss=_at())
    monkeypatch.setattr(trainer_mod, "atomic_write_bytes", real_write)
    ck = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 1
    resumed = train(_cfg(toy_npz, tmp_path / "resumed"), progress=False, batch_loss=_at())
    a, b = load_file(str(full.weights)), load_file(str(resumed.weights))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(full.card.read_text())["history"] == json.loads(resumed.card.read_text())["history"]
    with pytest.raises(XaisecError, match="different settings"):  # another defense setting: no silent resume
        train(_cfg(toy_npz, tmp_path / "resumed"), progress=False,
              batch_loss=build_defense("adversarial", steps=(1, 3)))


def test_errors(toy_npz, tmp_path):
    with pytest.raises(XaisecError, match="unknown defense"):
        build_defense("distillation")
    with pytest.raises(XaisecError, match="gamma"):
        build_defense("interpretation-robust", interpreter=lambda m: get("cam", m), gamma=-1)
    with pytest.raises(XaisecError, match="bad option"):
        build_defense("adversarial", gamma=0.1)
    with pytest.raises(XaisecError, match="no shipped weights"):  # fine-tuning requested, nothing to start from
        train(TrainConfig(model="cifar10_resnet56", init_weights="shipped", out=str(tmp_path / "x")), progress=False,
              batch_loss=_at())
    assert set(DEFENSES) == {"adversarial", "interpretation-robust"}
    assert parse_fraction("8/255") == pytest.approx(8 / 255) and parse_fraction("0.5") == 0.5
    with pytest.raises(XaisecError, match="fraction"):
        parse_fraction("eight")


def test_cli(toy_npz, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["-q", "train", "--model", "pneumonia_cnn", "--data", str(toy_npz), "--epochs", "1", "--batch-size",
                 "32", "--lr", "0.01", "--no-amp", "--out", str(out), "--defense", "adversarial", "--steps", "1,2",
                 "--eps", "4/255"])
    assert code == 0
    card = json.loads((out / "pneumonia_cnn_at.json").read_text())
    settings = card["defense"]["settings"]
    assert settings["eps"] == pytest.approx(4 / 255) and settings["steps"] == [1, 2]
    assert main(["-q", "train", "--model", "pneumonia_cnn", "--data", str(toy_npz), "--out", str(tmp_path / "bad"),
                 "--defense", "nonsense"]) != 0
    assert "unknown defense" in capsys.readouterr().err
