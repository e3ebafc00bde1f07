"""JAP through xaisec.attacks.get: per-image generators in one batched computation."""

from __future__ import annotations

import pytest
import torch

from tests.test_universal_train import trained_tiny
from xaisec.attacks import AttackResult, get
from xaisec.utils.checks import XaisecError


@pytest.fixture(scope="module")
def tiny():
    return trained_tiny()


def test_jap_fools_within_budget_and_keeps_maps(tiny) -> None:
    model, x, y = tiny
    x, y = x[:12], y[:12]
    plain = get("jap", model, "cam", eps=0.15, steps=25, lr=5e-3, lam=0.0, ngf=4, blocks=1)(x, y)
    joint = get("jap", model, "cam", eps=0.15, steps=25, lr=5e-3, lam=0.3, ngf=4, blocks=1)(x, y)
    assert isinstance(joint, AttackResult) and joint.x_adv.shape == x.shape
    assert (joint.x_adv - joint.x).abs().max() <= 0.15 and (plain.x_adv - plain.x).abs().max() <= 0.15
    assert plain.success.float().mean() >= 0.5  # the generators learn to fool
    assert joint.metrics["l1"].mean() < plain.metrics["l1"].mean()
    assert joint.history["step"] and joint.config["attack"] == "jap"


def test_jap_l2_budget_and_seed(tiny) -> None:
    model, x, y = tiny
    a = get("jap", model, "gradcam", norm="l2", eps=1.0, steps=3, ngf=4, blocks=1, seed=1)(x[:4], y[:4])
    b = get("jap", model, "gradcam", norm="l2", eps=1.0, steps=3, ngf=4, blocks=1, seed=1)(x[:4], y[:4])
    assert ((a.x_adv - a.x).flatten(1).norm(dim=1) <= 1.0).all()
    assert torch.equal(a.x_adv, b.x_adv)


def test_jap_errors(tiny) -> None:
    model, _, _ = tiny
    with pytest.raises(XaisecError, match="no differentiable mode"):
        get("jap", model, "mask")
    with pytest.raises(XaisecError, match="eps"):
        get("jap", model, "cam", eps=0)
    with pytest.raises(XaisecError, match="framework"):
        get("jap", model, "cam", framework="cw")


def test_generic_attack_options_are_mapped(tiny) -> None:
    model, _, _ = tiny
    atk = get("jap", model, "cam", eps=0.1, alpha=1 / 255, steps_scale=0.5, target_map="benign", target_class=3)
    assert atk.steps == 50 and atk.loss == "targeted" and atk.target_class == 3
    with pytest.raises(XaisecError, match="benign map"):
        get("jap", model, "cam", target_map="patch")
