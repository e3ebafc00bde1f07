"""Dombrowski white-box baseline: softplus swap, beta schedule, lowers the map distance, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xaisec.attacks import get as get_attack
from xaisec.blackbox.dombrowski import beta_schedule, softplus_relu
from xaisec.utils.checks import XaisecError


def test_softplus_swap_and_schedule(tiny_model, tiny_batch):
    x, _ = tiny_batch
    xr = x.clone().requires_grad_(True)
    exact = tiny_model(x)
    with softplus_relu(tiny_model, 10.0):
        soft = tiny_model(xr)
        z = torch.linspace(-1, 1, 5, requires_grad=True)
        assert torch.allclose(F.relu(z), F.softplus(z, beta=10.0))
    assert not torch.allclose(soft, exact)  # softplus changes the forward pass
    assert torch.allclose(tiny_model(xr), exact, atol=1e-6)  # restored
    assert beta_schedule(0, 1500) == 10.0 and abs(beta_schedule(1500, 1500) - 100.0) < 1e-9


def test_lowers_the_map_distance(tiny_model, tiny_batch):
    x, y = tiny_batch
    atk = get_attack("dombrowski", tiny_model, "grad", iterations=60, lr=0.01, eval_every=10,
                     target_images=x[3:6])
    res = atk(x[:3], y[:3])
    assert res.metrics["label_kept"].eq(1).all()
    assert float(res.metrics["map_mse_ratio"].max()) < 1.0
    assert res.queries is None  # white-box: no query accounting
    assert res.history["step"][-1] == 60


def test_bad_input(tiny_model):
    with pytest.raises(XaisecError, match="differentiable"):
        get_attack("dombrowski", tiny_model, "guided_backprop")
    with pytest.raises(XaisecError, match="iterations"):
        get_attack("dombrowski", tiny_model, "grad", iterations=0)
