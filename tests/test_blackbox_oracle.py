"""The query oracle: batched answers, per-image accounting, budget refusal, no gradient leak, bad input."""

from __future__ import annotations

import pytest
import torch

from xaisec.blackbox import BudgetExceeded, Oracle, abs_sum_maps
from xaisec.interpreters import get as get_interpreter
from xaisec.utils.checks import XaisecError


def test_answers_a_batch_and_counts_each_image(tiny_model, tiny_batch):
    x, _ = tiny_batch
    oracle = Oracle(tiny_model, "grad", budget=100)
    probs, maps = oracle(x, index=torch.tensor([0, 0, 1, 1, 1, 2]))
    assert probs.shape == (6, 5) and maps.shape == (6, 16, 16)
    assert torch.allclose(probs.sum(1), torch.ones(6), atol=1e-5)
    assert torch.allclose(maps.flatten(1).sum(1), torch.ones(6), atol=1e-5) and (maps >= 0).all()
    assert oracle.queries == 6 and oracle.remaining == 94
    assert oracle.per_image.tolist() == [2, 3, 1]
    oracle(x[:2], index=torch.tensor([0, 1]), setup=True)
    assert oracle.queries == 6 and oracle.setup_queries == 2 and oracle.per_image_setup.tolist() == [1, 1]


def test_maps_follow_the_abs_sum_convention(tiny_model, tiny_batch):
    x, _ = tiny_batch
    interp = get_interpreter("grad_x_input", tiny_model)
    t = tiny_model(x).argmax(1)
    _, maps = Oracle(tiny_model, interp)(x, t)
    assert torch.allclose(maps, abs_sum_maps(interp.attributions(x, t)), atol=1e-6)
    logits, _ = Oracle(tiny_model, interp, output="logits")(x, t)
    assert torch.allclose(logits, tiny_model(x), atol=1e-5)


def test_answers_do_not_depend_on_chunking(tiny_model, tiny_batch):
    x, _ = tiny_batch
    p1, m1 = Oracle(tiny_model, "deeplift", chunk_size=2)(x)
    p2, m2 = Oracle(tiny_model, "deeplift", chunk_size=100)(x)
    assert torch.allclose(p1, p2, atol=1e-6) and torch.allclose(m1, m2, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("name", ["grad", "guided_backprop", "lrp", "deeplift"])
def test_answers_under_no_grad(tiny_model, tiny_batch, name):
    x, _ = tiny_batch
    oracle = Oracle(tiny_model, name)
    expected = oracle(x)[1]
    with torch.no_grad():
        maps = oracle(x)[1]
    assert torch.allclose(maps, expected, atol=1e-7)


def test_refuses_past_budget(tiny_model, tiny_batch):
    x, _ = tiny_batch
    oracle = Oracle(tiny_model, "grad", budget=8)
    oracle(x)
    with pytest.raises(BudgetExceeded, match="budget"):
        oracle(x)
    assert oracle.queries == 6  # the refused batch is not charged
    oracle(x[:2])
    assert oracle.remaining == 0


def test_leaks_no_gradient(tiny_model, tiny_batch):
    x, _ = tiny_batch
    xr = x.clone().requires_grad_(True)
    probs, maps = Oracle(tiny_model, "grad")(xr)
    assert not probs.requires_grad and not maps.requires_grad
    assert probs.grad_fn is None and maps.grad_fn is None
    assert xr.grad is None and all(p.grad is None for p in tiny_model.parameters())


def test_bad_input(tiny_model, tiny_batch):
    x, _ = tiny_batch
    oracle = Oracle(tiny_model, "grad")
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(XaisecError, match="NaN"):
        oracle(bad)
    with pytest.raises(XaisecError, match=r"\[0, 1\]"):
        oracle(x + 2)
    assert oracle.queries == 0
    with pytest.raises(XaisecError, match="cannot run"):
        Oracle(tiny_model, "gradcam")  # no per-channel attributions for the abs-sum map
    with pytest.raises(XaisecError, match="cannot run"):
        Oracle(tiny_model, object())
    with pytest.raises(XaisecError, match="budget"):
        Oracle(tiny_model, "grad", budget=0)
    with pytest.raises(XaisecError, match="maps=False"):
        Oracle(tiny_model, None)(x)
    probs, maps = Oracle(tiny_model, None)(x, maps=False)
    assert maps is None and probs.shape == (6, 5)
