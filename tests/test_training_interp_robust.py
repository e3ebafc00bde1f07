"""Interpretation-robust training (xaisec.training.interp_robust): the discrepancy, its worst case, one step."""

import pytest
import torch

from xaisec.interpreters import get
from xaisec.training.defenses import BatchContext
from xaisec.training.interp_robust import InterpretationRobustTraining
from xaisec.utils.checks import XaisecError


def _defense(**kw):
    return InterpretationRobustTraining(interpreter=lambda m: get("cam", m), **kw)


def test_one_step_lowers_the_discrepancy_on_its_batch(tiny_model, tiny_batch):
    x, y = tiny_batch
    d = _defense(gamma=1.0, eps=8 / 255, steps=3, ramp=0.0)
    d.setup(tiny_model, total_steps=1)
    g = torch.Generator().manual_seed(0)
    yt = torch.tensor([1, 2, 3, 4, 0, 1]) % 5
    yt = torch.where(yt == y, (y + 1) % 5, yt)
    x_hat, _ = d.worst_case(tiny_model, x, y, yt, 8 / 255, g)
    assert float((x_hat - x).abs().max()) <= 8 / 255 + 1e-6

    def measured() -> float:
        with torch.no_grad():
            t2 = torch.cat([y, yt])
            return float(d.discrepancy(d.maps(torch.cat([x, x]), t2, create_graph=False),
                                       d.maps(torch.cat([x_hat, x_hat]), t2, create_graph=False)).mean())

    before = measured()
    assert before > 0
    opt = torch.optim.SGD(tiny_model.parameters(), lr=0.05)
    t4 = torch.cat([y, yt, y, yt])
    maps = d.maps(torch.cat([x, x, x_hat, x_hat]), t4, create_graph=True)
    loss = d.discrepancy(maps[:12], maps[12:]).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert measured() < before


def test_worst_case_raises_the_discrepancy_over_a_random_point(tiny_model, tiny_batch):
    x, y = tiny_batch
    d = _defense(steps=5)
    d.bind(tiny_model)
    yt = (y + 1) % 5
    x_hat, benign = d.worst_case(tiny_model, x, y, yt, 8 / 255, torch.Generator().manual_seed(0))
    t2 = torch.cat([y, yt])
    noise = (x + (torch.rand(x.shape, generator=torch.Generator().manual_seed(5)) * 2 - 1) * 8 / 255).clamp(0, 1)
    with torch.no_grad():
        worst = d.discrepancy(benign, d.maps(torch.cat([x_hat, x_hat]), t2, create_graph=False)).mean()
        rand = d.discrepancy(benign, d.maps(torch.cat([noise, noise]), t2, create_graph=False)).mean()
    assert worst > rand


def test_batch_loss_is_ce_plus_gamma_times_discrepancy(tiny_model, tiny_batch):
    x, y = tiny_batch
    d = _defense(gamma=0.0)
    d.setup(tiny_model, total_steps=10)
    loss0, logits = d(tiny_model.train(), x, y, BatchContext(0, 9, 9, torch.Generator().manual_seed(0)))
    assert logits.shape == (6, 5)
    ce = torch.nn.functional.cross_entropy(logits.detach(), y)
    assert float(loss0.detach()) == pytest.approx(float(ce), rel=1e-5)
    d2 = _defense(gamma=0.5)
    d2.setup(tiny_model, total_steps=10)
    loss, _ = d2(tiny_model, x, y, BatchContext(0, 9, 9, torch.Generator().manual_seed(0)))
    assert float(loss.detach()) > float(loss0.detach()) and d2.last_discrepancy > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_model.parameters())


def test_eps_ramp_and_settings():
    d = _defense(eps=0.04, ramp=0.5)
    d.total_steps = 10
    assert d.eps_at(0) == pytest.approx(0.008) and d.eps_at(4) == pytest.approx(0.04) and d.eps_at(9) == 0.04
    assert d.settings()["gamma"] == 0.01 and "discrepancy" in d.settings()


class _NotDifferentiable:
    name = "nodiff"
    differentiable = False


def test_errors(tiny_model):
    with pytest.raises(XaisecError, match="gamma"):
        _defense(gamma=-0.1)
    with pytest.raises(XaisecError, match="steps"):
        _defense(steps=0)
    with pytest.raises(XaisecError, match="factory"):
        InterpretationRobustTraining(interpreter="cam")
    d = InterpretationRobustTraining(interpreter=lambda m: _NotDifferentiable())
    with pytest.raises(XaisecError, match="differentiable"):
        d.setup(tiny_model, total_steps=1)
