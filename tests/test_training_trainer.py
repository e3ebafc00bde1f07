import json

import numpy as np
import pytest
import torch

import xaisec.training.trainer as trainer_mod
from xaisec.models import load
from xaisec.training import TrainConfig, train
from xaisec.utils.checks import XaisecError


@pytest.fixture
def toy_npz(tmp_path):
    """A learnable 2-class 28x28 set: class 1 has a bright square."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 2, n)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        x[y == 1, 8:20, 8:20] += 150
        return x, y.reshape(-1, 1)

    tr, te = make(160), make(40)
    p = tmp_path / "toy_pneumoniamnist.npz"
    np.savez(p, train_images=tr[0], train_labels=tr[1], test_images=te[0], test_labels=te[1])
    return p


def _cfg(data, out, **kw):
    return TrainConfig(model="pneumonia_cnn", data=str(data), out=str(out), epochs=kw.pop("epochs", 2),
                       batch_size=32, lr=kw.pop("lr", 0.05), crop_pad=2, **kw)


def test_training_learns_and_writes_weights_and_card(toy_npz, tmp_path):
    res = train(_cfg(toy_npz, tmp_path / "a", epochs=8), progress=False)
    assert res.accuracy > 0.8
    card = json.loads(res.card.read_text())
    assert card["test_accuracy"] == pytest.approx(res.accuracy)
    assert card["epochs"] == 8 and card["augmentations"] and card["wall_time_seconds"] >= 0
    assert card["versions"]["torch"] == torch.__version__ and card["data"]["train_images"] == 160
    model = load("pneumonia_cnn", weights=res.weights, device="cpu")
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 2)


def test_resume_after_interruption_matches_uninterrupted_run(toy_npz, tmp_path, monkeypatch):
    full = train(_cfg(toy_npz, tmp_path / "full"), progress=False)
    real_write = trainer_mod.atomic_write_bytes
    calls = {"n": 0}

    def write_then_die(path, data):
        real_write(path, data)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "atomic_write_bytes", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(toy_npz, tmp_path / "resumed"), progress=False)
    monkeypatch.setattr(trainer_mod, "atomic_write_bytes", real_write)
    resumed = train(_cfg(toy_npz, tmp_path / "resumed"), progress=False)
    a = load("pneumonia_cnn", weights=full.weights, device="cpu").state_dict()
    b = load("pneumonia_cnn", weights=resumed.weights, device="cpu").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_changed_settings_refuse_to_resume(toy_npz, tmp_path):
    train(_cfg(toy_npz, tmp_path / "x"), progress=False)
    with pytest.raises(XaisecError, match="different settings"):
        train(_cfg(toy_npz, tmp_path / "x", seed=5), progress=False)


def test_bad_configs(toy_npz, tmp_path):
    with pytest.raises(XaisecError, match="ImageNet"):
        train(TrainConfig(model="imagenet_resnet50", out=str(tmp_path)), progress=False)
    with pytest.raises(XaisecError, match="epochs"):
        train(_cfg(toy_npz, tmp_path / "y", epochs=0), progress=False)
    with pytest.raises(XaisecError, match="takes"):
        train(TrainConfig(model="cifar10_resnet20", data=str(toy_npz), out=str(tmp_path / "z")), progress=False)


def test_fine_tuning_starts_from_given_weights(toy_npz, tmp_path):
    first = train(_cfg(toy_npz, tmp_path / "a", epochs=8), progress=False)
    tuned = train(_cfg(toy_npz, tmp_path / "b", epochs=1, lr=0.005, init_weights=str(first.weights)),
                  progress=False)
    fresh = train(_cfg(toy_npz, tmp_path / "c", epochs=1, lr=0.005), progress=False)
    assert tuned.accuracy > fresh.accuracy + 0.2  # it kept what the first run learnt
    card = json.loads(tuned.card.read_text())
    assert card["initialised_from"] == str(first.weights)
