import math

import pytest

from xaisec.attacks import get
from xaisec.attacks.mask_bilevel import MaskBilevelAttack
from xaisec.utils.checks import XaisecError

MASK = {"interpreter_options": {"iterations": 30}}


@pytest.fixture
def batch(correct_batch):
    x, y = correct_batch
    return x[:6], y[:6]


def test_bilevel_attack_pulls_the_mask_map_toward_the_benign_one(trained_tiny, batch):
    x, y = batch
    plain = get("pgd", trained_tiny, "mask", warm_steps=30, stages=[], alpha=2 / 255, **MASK)(x, y)
    atk = get("adv2", trained_tiny, "mask", warm_steps=30, stages=[(40, 1.0, 1.0)], alpha=2 / 255, reset_every=20,
              reset_iterations=30, **MASK)
    assert isinstance(atk, MaskBilevelAttack)
    res = atk(x, y)
    losses = [v for v in res.history["map_loss"] if not math.isnan(v)]
    assert losses[-1] < losses[0]
    assert res.metrics["l1"].mean() < plain.metrics["l1"].mean()
    assert res.success.float().mean() >= plain.success.float().mean() - 1e-6  # moves keep inputs adversarial
    assert float((res.x_adv - res.x).abs().max()) <= 8 / 255 + 1e-6


def test_bilevel_options_are_checked(trained_tiny):
    with pytest.raises(XaisecError, match="pgd framework"):
        get("adv2", trained_tiny, "mask", framework="cw", **MASK)
    with pytest.raises(XaisecError, match="inner_unrolled"):
        get("adv2", trained_tiny, "mask", inner_unrolled=0, **MASK)
    with pytest.raises(XaisecError, match="functional API"):
        MaskBilevelAttack(trained_tiny, get.__globals__["get_interpreter"]("gradcam", trained_tiny))


def test_prediction_step_raises_the_target_confidence(trained_tiny, batch):
    x, y = batch
    common = dict(warm_steps=10, stages=[(10, 1.0, 1.0)], reset_every=5, reset_iterations=10, seed=1, **MASK)
    without = get("adv2", trained_tiny, "mask", **common)(x, y)
    with_step = get("adv2", trained_tiny, "mask", prediction_step=True, **common)(x, y)
    assert with_step.config["prediction_step"] and with_step.config["straight_through"]
    assert with_step.metrics["confidence"].mean() > without.metrics["confidence"].mean()
    assert len(with_step.history["fresh_map_loss"]) == 2  # one fresh map per reset
