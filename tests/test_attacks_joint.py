"""Direction-of-effect tests of the joint attacks on a tiny network (fast versions of the benchmarks)."""

import itertools
import math

import pytest
import torch

from xaisec.attacks import get
from xaisec.utils.checks import XaisecError

FAST = {"warm_steps": 10, "stages": [(40, 5.0, 10.0)], "alpha": 2 / 255}


@pytest.fixture
def tiny_model(trained_tiny):
    return trained_tiny


@pytest.fixture
def batch(correct_batch):
    return correct_batch


def test_pgd_reaches_targets_within_budget(tiny_model, batch):
    x, y = batch
    res = get("pgd", tiny_model, "gradcam", warm_steps=30, stages=[], alpha=2 / 255, eps=8 / 255)(x, y)
    assert res.success.float().mean() >= 0.75
    assert float((res.x_adv - res.x).abs().max()) <= 8 / 255 + 1e-6
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    assert (res.target != res.y).all()
    assert res.maps_adv.shape == (8, 16, 16) and set(res.metrics) >= {"success", "l1", "iou", "noise_rate"}


@pytest.mark.parametrize("interpreter", ["gradcam", "cam", "grad"])
def test_adv2_map_loss_falls_and_keeps_maps_closer_than_pgd(tiny_model, batch, interpreter):
    x, y = batch
    plain = get("pgd", tiny_model, interpreter, warm_steps=50, stages=[], alpha=2 / 255)(x, y)
    joint = get("adv2", tiny_model, interpreter, **FAST)(x, y)
    h = joint.history
    maps = [v for v in h["map_loss"] if not math.isnan(v)]
    assert maps[-1] < maps[0]  # the map loss falls over the joint stage
    assert h["success"][-1] >= h["success"][0]
    assert joint.success.float().mean() >= 0.75
    assert joint.metrics["l1"].mean() < plain.metrics["l1"].mean()


def test_advedge_plus_leaves_non_edge_pixels_untouched(tiny_model, batch):
    from xaisec.attacks.edges import edge_weights

    x, y = batch
    res = get("advedge+", tiny_model, "gradcam", edge_threshold=0.3, **FAST)(x, y)
    mask = edge_weights(x, "binary", 0.3).bool().expand_as(x)
    assert 0 < mask.float().mean() < 1
    assert torch.equal(res.x_adv[~mask], x[~mask])
    assert float((res.x_adv - x)[mask].abs().max()) > 0


def test_advedge_moves_edges_more_and_the_rest_less_than_adv2(tiny_model, batch):
    from xaisec.attacks.edges import edge_weights

    x, y = batch
    w = edge_weights(x, "sobel").expand_as(x)
    strong = w > w.flatten(1).median(1).values.view(-1, 1, 1, 1)

    def edge_share(res):  # share of the perturbation's L1 mass on the stronger half of the edges
        d = (res.x_adv - x).abs()
        return float(((d * strong).flatten(1).sum(1) / d.flatten(1).sum(1).clamp_min(1e-12)).mean())

    a = get("adv2", tiny_model, "gradcam", **FAST)(x, y)
    e = get("advedge", tiny_model, "gradcam", **FAST)(x, y)
    clamped = get("advedge", tiny_model, "gradcam", edge_budget=False, **FAST)(x, y)
    # the budget's larger edge steps saturate at eps sooner, so it concentrates less than the clamped weights
    assert edge_share(a) < edge_share(e) < edge_share(clamped)
    assert clamped.metrics["l2_dist"].mean() < a.metrics["l2_dist"].mean()


def test_advedge_budget_keeps_the_mean_step_of_adv2(tiny_model, batch):
    from xaisec.attacks.edges import edge_weights

    x, y = batch
    x = x * 0.5 + 0.25  # no pixel reaches 0 or 1 in one step
    one_step = {"warm_steps": 1, "stages": [], "alpha": 2 / 255, "keep_best": False}
    budget = get("advedge", tiny_model, "gradcam", **one_step)
    assert budget.config()["edge_budget"] is True  # the pgd default
    step = (budget(x, y).x_adv - x).abs()
    assert torch.allclose(step.mean((1, 2, 3)), torch.full((x.shape[0],), 2 / 255), rtol=1e-3)
    assert torch.allclose(step, 2 / 255 * edge_weights(x, "sobel", budget=True).expand_as(x), atol=1e-6)
    clamped = (get("advedge", tiny_model, "gradcam", edge_budget=False, **one_step)(x, y).x_adv - x).abs()
    assert torch.allclose(clamped, 2 / 255 * edge_weights(x, "sobel").expand_as(x), atol=1e-6)
    assert get("advedge", tiny_model, "gradcam", framework="cw").config()["edge_budget"] is False
    with pytest.raises(XaisecError, match="edge_budget"):
        get("advedge", tiny_model, "gradcam", framework="cw", edge_budget=True)


def test_cw_and_stadv_frameworks(tiny_model, batch):
    x, y = batch
    cw = get("adv2", tiny_model, "gradcam", framework="cw", warm_steps=20, stages=[(30, 5.0, 5.0)],
             cw_lr=0.05)(x, y)
    assert cw.success.float().mean() >= 0.5 and float(cw.x_adv.min()) >= 0 and float(cw.x_adv.max()) <= 1
    loose = get("pgd", tiny_model, "gradcam", framework="stadv", warm_steps=30, stages=[], stadv_lr=0.05,
                stadv_tau=0.0)(x, y)
    tight = get("pgd", tiny_model, "gradcam", framework="stadv", warm_steps=30, stages=[], stadv_lr=0.05,
                stadv_tau=0.5)(x, y)
    assert tight.metrics["l2_dist"].mean() < loose.metrics["l2_dist"].mean()  # smoothness restrains the flow


def test_patch_target_moves_the_map_toward_the_patch(tiny_model, batch):
    x, y = batch
    res = get("adv2", tiny_model, "gradcam", target_map="patch", warm_steps=10, stages=[(60, 10.0, 20.0)],
              alpha=2 / 255)(x, y)
    assert res.metrics["l1_target"].mean() < res.metrics["l1"].mean()


def test_untargeted_and_given_class(tiny_model, batch):
    x, y = batch
    unt = get("adv2", tiny_model, "gradcam", target_class="untargeted", **FAST)(x, y)
    assert unt.target is None and torch.equal(unt.success, unt.pred_adv != unt.y)
    fixed = get("pgd", tiny_model, "gradcam", target_class=2, warm_steps=30, stages=[], alpha=2 / 255)(x, y)
    assert (fixed.target == 2).all()


def test_same_seed_same_result(tiny_model, batch):
    x, y = batch
    a = get("adv2", tiny_model, "gradcam", seed=5, **FAST)(x, y)
    b = get("adv2", tiny_model, "gradcam", seed=5, **FAST)(x, y)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.target, b.target)


def test_bad_arguments(tiny_model, batch):
    x, y = batch
    with pytest.raises(XaisecError, match="unknown attack"):
        get("adv3", tiny_model, "gradcam")
    with pytest.raises(XaisecError, match="unknown interpreter"):
        get("adv2", tiny_model, "gradcamzz")
    with pytest.raises(XaisecError, match="framework"):
        get("adv2", tiny_model, "gradcam", framework="fgsm")
    with pytest.raises(XaisecError, match="eps"):
        get("adv2", tiny_model, "gradcam", eps=-0.1)
    with pytest.raises(XaisecError, match="target map"):
        get("adv2", tiny_model, "gradcam", target_map="spiral")
    atk = get("adv2", tiny_model, "gradcam", **FAST)
    with pytest.raises(XaisecError, match="NaN"):
        atk(torch.full_like(x, float("nan")), y)
    with pytest.raises(XaisecError, match="shape"):
        atk(x, y[:3])
    with pytest.raises(XaisecError, match="target_map must have shape"):
        get("adv2", tiny_model, "gradcam", target_map=torch.zeros(2, 16, 16), **FAST)(x, y)


def test_step_size_decays_over_the_joint_stages(tiny_model, batch, monkeypatch):
    from xaisec.attacks.frameworks.pgd import PGD

    scales = []
    original = PGD.update

    def recording_update(self, grad):
        scales.append(self.step_scale)
        original(self, grad)

    monkeypatch.setattr(PGD, "update", recording_update)
    x, y = batch
    atk = get("adv2", tiny_model, "gradcam", warm_steps=5, stages=[(6, 5.0, 5.0), (5, 10.0, 10.0)], final_step=0.2)
    atk(x, y)
    assert atk.config()["final_step"] == 0.2
    assert scales[:5] == [1.0] * 5  # the warm start keeps the full step
    joint = scales[5:]
    assert joint[0] == pytest.approx(1.0) and joint[-1] == pytest.approx(0.2)
    assert all(a > b for a, b in itertools.pairwise(joint))  # decays across both stages


def test_far_target_maps_get_a_larger_map_weight(tiny_model):
    benign = get("adv2", tiny_model, "gradcam", stages=[(10, 5.0, 10.0)])
    patch = get("adv2", tiny_model, "gradcam", stages=[(10, 5.0, 10.0)], target_map="patch")
    own = get("adv2", tiny_model, "gradcam", stages=[(10, 5.0, 10.0)], target_map="patch", lam_scale=2.0)
    assert benign.profile.stages == ((10, 5.0, 10.0),)
    assert patch.profile.stages == ((10, 50.0, 100.0),)
    assert own.profile.stages == ((10, 10.0, 20.0),)
    with pytest.raises(XaisecError, match="lam_scale"):
        get("adv2", tiny_model, "gradcam", lam_scale=0)
    with pytest.raises(XaisecError, match="final_step"):
        get("adv2", tiny_model, "gradcam", final_step=1.5)
