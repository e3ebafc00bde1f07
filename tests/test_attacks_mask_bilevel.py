import logging
import math

import pytest
import torch

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


def test_refinement_only_lowers_the_fresh_map_loss_and_keeps_inputs_adversarial(trained_tiny, batch):
    from xaisec.attacks.objectives import map_loss

    x, y = batch
    common = dict(warm_steps=10, stages=[(10, 1.0, 1.0)], reset_every=5, reset_iterations=30, seed=2,
                  polish_rounds=0, **MASK)
    plain = get("adv2", trained_tiny, "mask", refine_rounds=0, **common)(x, y)
    refined = get("adv2", trained_tiny, "mask", refine_rounds=3, refine_batch=4, **common)(x, y)
    g = get("adv2", trained_tiny, "mask", **common).interpreter
    target = refined.target
    before = map_loss(g(plain.x_adv, target), plain.maps_target)
    after = map_loss(g(refined.x_adv, target), refined.maps_target)
    assert torch.equal(plain.maps_target, refined.maps_target)
    assert (after <= before + 1e-6).all() and after.mean() < before.mean()  # it found improvements
    assert bool(refined.success[plain.success].all())  # accepted moves stay adversarial
    assert float((refined.x_adv - refined.x).abs().max()) <= 8 / 255 + 1e-6
    assert refined.config["refine_rounds"] == 3 and "refined_map_loss" in refined.history


def test_refinement_options_are_checked(trained_tiny):
    for bad in ({"refine_rounds": -1}, {"refine_batch": 0}, {"refine_scales": ()}, {"refine_scales": (0.1, -1.0)}):
        with pytest.raises(XaisecError, match="refine"):
            get("adv2", trained_tiny, "mask", **bad, **MASK)


@pytest.mark.parametrize("name", ["adv2", "advedge+"])
def test_polish_only_lowers_the_fresh_map_loss_and_keeps_inputs_adversarial(trained_tiny, batch, name):
    from xaisec.attacks.edges import edge_weights
    from xaisec.attacks.objectives import map_loss

    x, y = batch
    common = dict(warm_steps=10, stages=[(10, 1.0, 1.0)], reset_every=5, reset_iterations=30, seed=3,
                  refine_rounds=0, **MASK)
    plain = get(name, trained_tiny, "mask", polish_rounds=0, **common)(x, y)
    atk = get(name, trained_tiny, "mask", polish_rounds=4, polish_candidates=4, **common)
    polished = atk(x, y)
    before = map_loss(atk.interpreter(plain.x_adv, plain.target), plain.maps_target)
    after = map_loss(atk.interpreter(polished.x_adv, polished.target), polished.maps_target)
    assert (after <= before + 1e-6).all() and after.mean() < before.mean()
    assert sum(polished.history["polished_accepted"]) > 0
    assert bool(polished.success[plain.success].all())
    assert float((polished.x_adv - polished.x).abs().max()) <= 8 / 255 + 1e-6
    if name == "advedge+":  # random moves are masked by the edge map too
        off_edges = edge_weights(x, "binary", 0.1).expand_as(x) == 0
        assert float((polished.x_adv - polished.x).abs()[off_edges].max()) == 0.0
    again = atk(x, y)  # same seed, same random moves
    assert torch.equal(again.x_adv, polished.x_adv)


def test_polish_options_are_checked(trained_tiny):
    for bad in ({"polish_rounds": -1}, {"polish_candidates": 0}, {"polish_sizes": ()}, {"polish_sizes": (0.0,)}):
        with pytest.raises(XaisecError, match="polish"):
            get("adv2", trained_tiny, "mask", **bad, **MASK)


def test_restarts_keep_each_images_closest_real_map(trained_tiny, batch, caplog):
    from xaisec.attacks.objectives import map_loss

    x, y = batch
    common = dict(warm_steps=10, stages=[(10, 1.0, 1.0)], reset_every=5, reset_iterations=30, seed=4,
                  refine_rounds=0, polish_rounds=0, **MASK)
    one = get("adv2", trained_tiny, "mask", **common)(x, y)
    atk = get("adv2", trained_tiny, "mask", restarts=3, **common)
    with caplog.at_level(logging.INFO, logger="xaisec.attacks.mask_bilevel"):
        best = atk(x, y)
    assert [m for m in caplog.messages if "restart" in m][-1].startswith("adv2 (mask) restart 3/3")
    before = map_loss(atk.interpreter(one.x_adv, one.target), one.maps_target)
    after = map_loss(atk.interpreter(best.x_adv, best.target), best.maps_target)
    assert torch.equal(one.target, best.target)  # the restarts share the target class and map
    assert (after <= before + 1e-6).all()  # restart 0 is the single run; a later one only replaces it if closer
    assert len(best.history["restart_map_loss"]) == 3 and best.config["restarts"] == 3
    assert bool(best.success[one.success].all())
    assert float((best.x_adv - best.x).abs().max()) <= 8 / 255 + 1e-6
    assert torch.equal(atk(x, y).x_adv, best.x_adv)  # same seed, same random starts
    with pytest.raises(XaisecError, match="restarts"):
        get("adv2", trained_tiny, "mask", restarts=0, **MASK)
