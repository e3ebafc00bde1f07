"""AttaXAI: LHS, NES on a toy problem, query accounting, determinism, batched fitness, bad input."""

from __future__ import annotations

import pytest
import torch

from xaisec.attacks import get as get_attack
from xaisec.blackbox import Oracle
from xaisec.blackbox.attaxai import fitness, lhs_normal, nes_gradients, sample_noise
from xaisec.utils.checks import XaisecError


def test_lhs_is_stratified_per_coordinate():
    n = 17
    e = lhs_normal(3, n, 40, generator=torch.Generator().manual_seed(0))
    strata = (torch.special.ndtr(e) * n).floor().long()  # which of the n equal-probability strata
    expected = torch.arange(n).view(1, n, 1).expand(3, n, 40)
    assert torch.equal(strata.sort(1).values, expected)
    e2 = sample_noise(2, 5, 7, "lhs", torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(e2[:, 0], torch.zeros(2, 7))  # member 0 is the mean


def test_nes_lowers_a_toy_quadratic():
    gen = torch.Generator().manual_seed(0)
    centre = torch.linspace(-1, 1, 20).view(1, 20).repeat(2, 1)
    v = torch.zeros(2, 20, requires_grad=True)
    opt = torch.optim.Adam([v], lr=0.05)
    sigma = torch.full((2,), 0.1)
    start = float(((v.detach() - centre) ** 2).sum())
    for _ in range(150):
        e = sample_noise(2, 20, 20, "lhs", gen, torch.device("cpu"))
        z = v.detach().unsqueeze(1) + sigma.view(2, 1, 1) * e
        loss = ((z - centre.unsqueeze(1)) ** 2).sum(2)
        g, _ = nes_gradients(-loss, e, sigma)
        v.grad = -g
        opt.step()
    assert float(((v.detach() - centre) ** 2).sum()) < 0.1 * start


def _attack(model, **kw):
    opts = {"population": 6, "queries": 18, "seed": 3}
    opts.update(kw)
    return get_attack("attaxai", model, "grad", **opts)


def test_query_count_and_result(tiny_model, tiny_batch):
    x, y = tiny_batch
    res = _attack(tiny_model, target_images=x[2:6])(x[:4], y[:4])
    assert res.queries.tolist() == [18] * 4 and res.queries_total == 72
    assert res.metrics["setup_queries"].tolist() == [2.0] * 4  # x and the target image, reported apart
    assert res.metrics["label_kept"].eq(1).all()
    assert torch.equal(res.pred_adv, res.pred_clean)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert res.history["queries"] == [6.0, 12.0, 18.0] and len(res.history["fitness"]) == 3
    assert res.config["generations"] == 3


def test_same_seed_same_result(tiny_model, tiny_batch):
    x, y = tiny_batch
    a = _attack(tiny_model, seed=1, target_images=x[3:6])(x[:3], y[:3])
    b = _attack(tiny_model, seed=1, target_images=x[3:6])(x[:3], y[:3])
    c = _attack(tiny_model, seed=2, target_images=x[3:6])(x[:3], y[:3])
    assert torch.equal(a.x_adv, b.x_adv)
    assert not torch.equal(a.x_adv, c.x_adv)


def test_lowers_the_map_distance_and_respects_eps(tiny_model, tiny_batch):
    x, y = tiny_batch
    target = torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(0))
    res = _attack(tiny_model, queries=600, population=20, target_map=target, eps=4 / 255)(x[:4], y[:4])
    assert float(res.metrics["map_mse_ratio"].median()) < 1.0
    assert float((res.x_adv - res.x).abs().max()) <= 4 / 255 + 1e-6
    assert res.metrics["setup_queries"].tolist() == [1.0] * 4  # only x: the target maps were given


def test_batched_fitness_equals_one_by_one(tiny_model, tiny_batch):
    x, _ = tiny_batch
    z = (x[:1] + 0.05 * torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    oracle = Oracle(tiny_model, "lrp", budget=None)
    c = torch.zeros(8, dtype=torch.long)
    p0, m0 = oracle(x[:1], c[:1])
    pb, mb = oracle(z, c)
    singles = [oracle(z[i:i + 1], c[i:i + 1]) for i in range(8)]
    ps, ms = torch.cat([s[0] for s in singles]), torch.cat([s[1] for s in singles])
    fb, _, _ = fitness(mb.view(1, 8, 16, 16), pb.view(1, 8, 5), m0, p0, 1e7, 1e6)
    fs, _, _ = fitness(ms.view(1, 8, 16, 16), ps.view(1, 8, 5), m0, p0, 1e7, 1e6)
    assert torch.allclose(fb, fs, rtol=1e-4, atol=1e-6)


def test_bad_input(tiny_model, tiny_batch):
    x, y = tiny_batch
    with pytest.raises(XaisecError, match="smaller than one generation"):
        _attack(tiny_model, queries=5, population=6)
    with pytest.raises(XaisecError, match="population"):
        _attack(tiny_model, population=1)
    with pytest.raises(XaisecError, match="cannot run"):
        get_attack("attaxai", tiny_model, "gradcam", population=6, queries=6)
    bad = x[:2].clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(XaisecError, match="NaN"):
        _attack(tiny_model, target_images=x[2:4])(bad, y[:2])
    with pytest.raises(XaisecError, match="two different labels"):
        _attack(tiny_model)(x[:2], torch.zeros(2, dtype=torch.long))  # 'class' needs two predicted classes
    with pytest.raises(XaisecError, match="target_map"):
        _attack(tiny_model, target_map=torch.rand(3, 8, 8))(x[:2], y[:2])
