"""UniversalPerturbation: apply, save/load bit-exact round trip, bad files."""

from __future__ import annotations

import json

import pytest
import torch

import xaisec.universal as U
from xaisec.universal.result import UniversalPerturbation
from xaisec.utils.checks import XaisecError


@pytest.fixture
def uap() -> UniversalPerturbation:
    g = torch.Generator().manual_seed(0)
    state = {"net.0.weight": torch.randn(4, 3, 3, 3, generator=g), "net.1.running": torch.arange(3)}
    return UniversalPerturbation(perturbation=(torch.rand(3, 8, 8, generator=g) - 0.5) * 0.08, method="juap",
                                 config={"eps": 0.04, "norm": "linf", "lam": 0.1, "delta": None},
                                 history={"step": [1, 2], "map_loss": [float("nan"), 0.5]},
                                 generator_state=state, noise=torch.rand(1, 3, 8, 8, generator=g))


def test_apply_adds_and_clamps(uap: UniversalPerturbation) -> None:
    x = torch.rand(4, 3, 8, 8)
    xa = uap.apply(x)
    torch.testing.assert_close(xa, (x + uap.perturbation).clamp(0, 1))
    assert xa.min() >= 0 and xa.max() <= 1


def test_save_load_round_trip_bit_exact(uap: UniversalPerturbation, tmp_path) -> None:
    path = uap.save(tmp_path / "perturbation.safetensors")
    back = U.load(path)
    assert torch.equal(back.perturbation, uap.perturbation) and torch.equal(back.noise, uap.noise)
    assert back.generator_state.keys() == uap.generator_state.keys()
    assert all(torch.equal(back.generator_state[k], v) for k, v in uap.generator_state.items())
    assert back.method == "juap" and back.config == uap.config
    card = json.loads((tmp_path / "perturbation.json").read_text())
    assert card["history"]["map_loss"] == [None, 0.5] and card["shape"] == [3, 8, 8]  # no NaN in JSON
    assert U.load(path, shape=(3, 8, 8)).shape == (3, 8, 8)


def test_other_size_or_channels_is_an_error(uap: UniversalPerturbation, tmp_path) -> None:
    path = uap.save(tmp_path / "p.safetensors")
    with pytest.raises(XaisecError, match="another image size or channel count"):
        U.load(path, shape=(1, 8, 8))
    with pytest.raises(XaisecError, match=r"\(3, 8, 8\).*\(3, 16, 16\)"):
        uap.apply(torch.rand(2, 3, 16, 16))
    with pytest.raises(XaisecError, match=r"channels|\(1, 8, 8\)"):
        uap.apply(torch.rand(2, 1, 8, 8))


def test_corrupt_and_foreign_files(uap: UniversalPerturbation, tmp_path) -> None:
    from safetensors.torch import save_file

    path = uap.save(tmp_path / "p.safetensors")
    data = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(XaisecError, match="not a readable perturbation file"):
        U.load(bad)
    bad.write_bytes(b"garbage")
    with pytest.raises(XaisecError, match="not a readable perturbation file"):
        U.load(bad)
    foreign = tmp_path / "model.safetensors"
    save_file({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(XaisecError, match="not an xaisec universal perturbation"):
        U.load(foreign)
    with pytest.raises(XaisecError, match="no such perturbation file"):
        U.load(tmp_path / "missing.safetensors")


def test_bad_perturbation_tensor() -> None:
    with pytest.raises(XaisecError, match=r"\(C, H, W\)"):
        UniversalPerturbation(perturbation=torch.zeros(1, 3, 8, 8), method="x")
    with pytest.raises(XaisecError, match="NaN"):
        UniversalPerturbation(perturbation=torch.full((3, 2, 2), float("nan")), method="x")
