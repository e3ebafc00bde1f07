"""MGA transfer attack: stops at the first success, counts queries per image, deterministic, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import TinyNet
from xaisec.attacks import get as get_attack
from xaisec.blackbox.mga import margin_fitness
from xaisec.models import wrap
from xaisec.utils.checks import XaisecError


def _surrogate(seed: int = 5, num_classes: int = 5, size: int = 16):
    torch.manual_seed(seed)
    return wrap(TinyNet(num_classes), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cam_layer="features",
                fc_layer="fc", classes=[f"c{i}" for i in range(num_classes)], input_size=(3, size, size)).eval()


def _linear_pair(noise: float = 0.7):
    """A linear target and a correlated linear surrogate on 3x16x16 (random conv nets are nearly constant in x,
    so nothing would transfer): the surrogate's weights are the target's plus noise."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 768, generator=g) * 0.05

    def make(weight: torch.Tensor):
        lin = nn.Linear(768, 5)
        with torch.no_grad():
            lin.weight.copy_(weight)
            lin.bias.zero_()
        return wrap(nn.Sequential(nn.Flatten(), lin), mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0),
                    classes=[f"c{i}" for i in range(5)], input_size=(3, 16, 16)).eval()

    return make(w), make(w + noise * torch.randn(5, 768, generator=g) * 0.05)


def _run(x, seed=0, **kw):
    target, surrogate = _linear_pair()
    opts = {"surrogate": surrogate, "seed_attack": "mifgsm", "budget": 300, "eps": 2 / 255}
    opts.update(kw)
    atk = get_attack("mga", target, "grad", seed=seed, **opts)
    return atk(x, target(x).argmax(1)), target


def test_margin_fitness_sign():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]])
    f = margin_fitness(p, torch.tensor([0, 0]))
    assert f[0] < 0 < f[1]


def test_stops_at_first_success():
    x = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    res, target = _run(x)
    q, transfer = res.queries, res.metrics["transfer_success"].bool()
    assert transfer.any()
    assert (q[transfer] == 1).all()  # fooled by the transfer: no further query
    searched = res.success & ~transfer
    assert searched.any() and (q[searched] < 300).all() and (q[searched] > 1).all()
    assert (q[~res.success] > 300 - 3).all()  # failures spent their budget
    assert res.queries_total == int(q.sum())
    # every success really fools the target, within eps
    assert (target(res.x_adv).argmax(1)[res.success] != res.y[res.success]).all()
    assert float((res.x_adv - res.x).abs().max()) <= 2 / 255 + 1e-6
    assert "iou" in res.metrics and res.metrics["iou"].shape == (12,)


def test_same_seed_same_result():
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    (a, _), (b, _) = _run(x, seed=1), _run(x, seed=1)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)


def test_bad_input(tiny_model):
    with pytest.raises(XaisecError, match="inputs"):
        get_attack("mga", tiny_model, "gradcam", surrogate=_surrogate(size=32))
    with pytest.raises(XaisecError, match="classes"):
        get_attack("mga", tiny_model, "gradcam", surrogate=_surrogate(num_classes=7))
    with pytest.raises(XaisecError, match="budget"):
        get_attack("mga", tiny_model, "gradcam", surrogate=_surrogate(), budget=2)
    with pytest.raises(XaisecError, match="population"):
        get_attack("mga", tiny_model, "gradcam", surrogate=_surrogate(), population=1)
    with pytest.raises(XaisecError, match="seed attack"):
        get_attack("mga", tiny_model, "gradcam", surrogate=_surrogate(), seed_attack="fgsm")
    with pytest.raises(XaisecError, match="surrogate="):
        get_attack("mga", tiny_model, "gradcam")


def test_cli_flags_map_to_options():
    import argparse

    from xaisec.cli.attack_cmd import add_parser, blackbox_options

    p = argparse.ArgumentParser()
    add_parser(p)
    args = p.parse_args(["--attack", "mga", "--surrogate", "cifar10_vgg11_bn", "--queries", "500",
                         "--seed-attack", "pgd", "--out", "o"])
    assert blackbox_options(args) == {"surrogate": "cifar10_vgg11_bn", "budget": 500, "seed_attack": "pgd"}
    args = p.parse_args(["--attack", "attaxai", "--interpreter", "grad", "--queries", "50000", "--out", "o"])
    assert blackbox_options(args) == {"queries": 50000}
    with pytest.raises(XaisecError, match="--surrogate"):
        blackbox_options(p.parse_args(["--attack", "mga", "--out", "o"]))
