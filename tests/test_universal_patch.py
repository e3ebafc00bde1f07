"""The universal Grad-CAM patch: training, random positions, evaluation, save / load."""

from __future__ import annotations

import pytest
import torch

from xaisec.universal.patch import UniversalPatch, evaluate_universal_patch, load_patch, train_universal_patch
from xaisec.utils.checks import XaisecError


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(24, 3, 16, 16, generator=g), torch.randint(0, 5, (24,), generator=g)


def _train(model, data, **kw):
    x, y = data
    opts = {"target_class": 2, "size": 0.25, "map_mode": "hide", "epochs": 3, "batch_size": 8, "step_size": 0.05}
    opts.update(kw)
    return train_universal_patch(model, x, y, **opts)


def test_train_is_seeded_and_in_range(tiny_model, data) -> None:
    a, b = _train(tiny_model, data), _train(tiny_model, data)
    c = _train(tiny_model, data, seed=1)
    assert a.content.shape == (3, 4, 4)
    assert a.content.min() >= 0 and a.content.max() <= 1
    assert torch.equal(a.content, b.content) and not torch.equal(a.content, c.content)
    assert len(a.history["epoch"]) == 3 and a.config["steps"] == 9


def test_apply_outside_bit_exact_and_random_positions(tiny_model, data) -> None:
    x, _ = data
    p = _train(tiny_model, data, position="random", ratio=0.5)
    x_adv, mask = p.apply(x, generator=torch.Generator().manual_seed(0))
    outside = (mask == 0).unsqueeze(1).expand_as(x)
    assert torch.equal(x_adv[outside], x[outside])
    assert float((x_adv - x).abs().max()) <= 0.5 + 1e-6
    assert (mask.flatten(1).sum(1) == 16).all()
    assert len({tuple(m.nonzero()[0].tolist()) for m in mask}) > 1  # positions differ between images
    _, fixed = p.apply(x, position="top-left")
    assert bool(fixed[:, :4, :4].all())


def test_hide_keeps_less_mass_on_the_patch_than_attract(tiny_model, data) -> None:
    x, y = data
    mass = {}
    for mode in ("hide", "attract"):
        p = _train(tiny_model, data, map_mode=mode, epochs=4)
        res = evaluate_universal_patch(tiny_model, p, x, y)
        mass[mode] = float(res.metrics["patch_mass"].mean())
    assert mass["hide"] < mass["attract"]


def test_evaluate_drops_target_class_images(tiny_model, data) -> None:
    x, y = data
    p = _train(tiny_model, data, map_mode="none", epochs=2)
    res = evaluate_universal_patch(tiny_model, p, x, y, batch_size=7)
    assert len(res) == int((y != 2).sum())
    assert (res.target == 2).all() and torch.equal(res.success, res.pred_adv == 2)
    for k in ("patch_mass", "patch_mass_up", "area_share", "fidelity_off_patch", "success"):
        assert res.metrics[k].shape == (len(res),)
    assert res.config["patch_box"] == [0, 12, 4, 4]
    assert len(evaluate_universal_patch(tiny_model, p, x, y, keep_target_class=True)) == 24


def test_save_load_roundtrip(tiny_model, data, tmp_path) -> None:
    p = _train(tiny_model, data, epochs=1, position=(2, 3))
    path = p.save(tmp_path / "patch.safetensors")
    assert (tmp_path / "patch.json").exists()
    q = load_patch(path)
    assert torch.equal(q.content, p.content)
    assert (q.size, q.ratio, q.position, q.target_class, q.map_mode) == (0.25, 1.0, (2, 3), 2, "hide")
    assert q.config["epochs"] == 1
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(XaisecError, match="not a safetensors patch"):
        UniversalPatch.load(tmp_path / "bad.safetensors")


def test_errors(tiny_model, data) -> None:
    with pytest.raises(XaisecError, match="map_mode"):
        _train(tiny_model, data, map_mode="steer")
    with pytest.raises(XaisecError, match="outside"):
        _train(tiny_model, data, position=(0, 14))
    with pytest.raises(XaisecError, match="cam, gradcam"):
        _train(tiny_model, data, interpreter="grad")
    with pytest.raises(XaisecError, match="target_class"):
        _train(tiny_model, data, target_class=9)
    p = _train(tiny_model, data, epochs=1)
    with pytest.raises(XaisecError, match="another image size"):
        p.apply(torch.rand(2, 3, 32, 32))
