"""MultiInterpreter: several interpreters as one, and ADV^2 against all of them at once."""

from __future__ import annotations

import pytest
import torch

import xaisec.attacks as attacks
from xaisec.attacks.objectives import map_loss
from xaisec.interpreters import get
from xaisec.interpreters.ensemble import MultiInterpreter
from xaisec.models import Classifier
from xaisec.utils.checks import XaisecError


def test_joined_maps_are_the_members_side_by_side(tiny_model: Classifier, tiny_batch) -> None:
    x, _ = tiny_batch
    mi = MultiInterpreter(tiny_model, ["grad", "cam"])
    maps = mi(x)
    assert mi.name == "grad+cam" and mi.differentiable
    assert maps.shape == (x.shape[0], 16, 32)
    grad, cam = mi.split(maps)
    assert torch.allclose(grad, get("grad", tiny_model)(x), atol=1e-6)
    assert torch.allclose(cam, get("cam", tiny_model)(x), atol=1e-6)


def test_weighted_map_loss_is_the_weighted_sum(tiny_model: Classifier, tiny_batch) -> None:
    x, _ = tiny_batch
    mi = MultiInterpreter(tiny_model, ["grad", "cam"], weights=[3.0, 1.0])
    a = mi(x)
    b = mi(x.flip(-1))
    ga, ca = mi.split(a)
    gb, cb = mi.split(b)
    want = (3 * map_loss(ga, gb) + map_loss(ca, cb)) / 4
    assert torch.allclose(map_loss(a, b), want, atol=1e-6)


def test_adv2_against_two_interpreters(tiny_model: Classifier, tiny_batch) -> None:
    x, _ = tiny_batch
    atk = attacks.get("adv2", tiny_model, ["grad", "cam"], steps_scale=0.01, seed=0)
    assert atk.interpreter.name == "grad+cam"
    assert atk.profile.label_confidence < 1  # the gradient member's schedule
    res = atk(x)
    assert res.maps_adv.shape == (x.shape[0], 16, 32)
    assert (res.x_adv - x).abs().max() <= 8 / 255 + 1e-6


def test_ensemble_errors(tiny_model: Classifier) -> None:
    with pytest.raises(XaisecError, match="at least 2"):
        MultiInterpreter(tiny_model, ["grad"])
    with pytest.raises(XaisecError, match="repeat"):
        MultiInterpreter(tiny_model, ["grad", "grad"])
    with pytest.raises(XaisecError, match="positive"):
        MultiInterpreter(tiny_model, ["grad", "cam"], weights=[1, 0])
    with pytest.raises(XaisecError, match="unknown interpreter"):
        MultiInterpreter(tiny_model, ["grad", "nope"])
