"""Boopathy et al.'s top-k interpretation attack (xaisec.attacks.interp_attack) and its Kendall tau."""

import math

import pytest
import torch
from scipy import stats

from xaisec.attacks.interp_attack import topk_interpretation_attack
from xaisec.interpreters import get
from xaisec.utils.checks import XaisecError


def test_attack_lowers_the_topk_mass_within_budget_keeping_the_prediction(tiny_model, tiny_batch):
    x, _ = tiny_batch
    y = tiny_model(x).argmax(1)  # attack images classified as y
    g = get("cam", tiny_model)
    eps = 8 / 255
    res = topk_interpretation_attack(tiny_model, g, x, y, eps=eps, steps=10, k=8, seed=0)
    assert res.maps_benign.shape == (6, 16, 16)  # the tiny net's CAM layer keeps the input resolution
    assert float((res.x_adv - x).abs().max()) <= eps + 1e-6
    assert (res.mass_adv <= res.mass_benign + 1e-6).all()
    assert res.found.any() and (res.mass_adv[res.found] < res.mass_benign[res.found]).all()
    with torch.no_grad():
        assert torch.equal(tiny_model(res.x_adv).argmax(1)[res.found], y[res.found])
    assert torch.isnan(res.tau[~res.found]).all()
    # Kendall tau (xaisec.metrics) agrees with scipy on the benign / attacked maps
    for i in res.found.nonzero().flatten().tolist():
        a, b = res.maps_benign[i].flatten().double().numpy(), res.maps_adv[i].flatten().double().numpy()
        assert res.tau[i].item() == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-5)
        assert res.tau[i] < 1


def test_kendall_tau_matches_scipy_on_random_maps():
    from xaisec.metrics import kendall_tau

    g = torch.Generator().manual_seed(0)
    a = torch.rand(5, 8, 8, generator=g)
    b = a + 0.7 * torch.rand(5, 8, 8, generator=g)
    tau = kendall_tau(a, b)
    for i in range(5):
        assert tau[i].item() == pytest.approx(stats.kendalltau(a[i].flatten(), b[i].flatten()).statistic, abs=1e-6)


def test_zero_budget_and_seeding(tiny_model, tiny_batch):
    x, y = tiny_batch
    g = get("cam", tiny_model)
    res = topk_interpretation_attack(tiny_model, g, x, y, eps=0.0)
    assert torch.equal(res.x_adv, x) and torch.allclose(res.tau, torch.ones(6))
    r1 = topk_interpretation_attack(tiny_model, g, x, y, eps=0.03, steps=3, seed=1)
    r2 = topk_interpretation_attack(tiny_model, g, x, y, eps=0.03, steps=3, seed=1)
    assert torch.equal(r1.x_adv, r2.x_adv)
    assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(r1.tau.tolist(), r2.tau.tolist(),
                                                                          strict=True))


def test_errors(tiny_model, tiny_batch):
    x, y = tiny_batch
    mask = get("mask", tiny_model)  # MASK optimises its own mask: no differentiable mode
    with pytest.raises(XaisecError, match="differentiable"):
        topk_interpretation_attack(tiny_model, mask, x, y)
    with pytest.raises(XaisecError, match="steps"):
        topk_interpretation_attack(tiny_model, get("cam", tiny_model), x, y, steps=-1)
