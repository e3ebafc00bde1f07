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


def _spy_track_best(monkeypatch):
    from xaisec.attacks.joint import JointAttack

    calls = []
    original = JointAttack._track_best

    def spy(self, xa, logits, target, y, m_loss, best_x, best_score):
        if m_loss is not None:
            calls.append((xa.detach().clamp(0, 1).clone(), logits.detach().clone(), m_loss.detach().clone()))
        return original(self, xa, logits, target, y, m_loss, best_x, best_score)

    monkeypatch.setattr(JointAttack, "_track_best", spy)
    return calls


def test_surrogate_keep_best_scores_logged_steps_on_the_real_map(tiny_model, batch, monkeypatch):
    from xaisec.attacks.objectives import map_loss
    from xaisec.interpreters import get as get_interpreter

    x, y = batch
    calls = _spy_track_best(monkeypatch)
    interp = get_interpreter("grad", tiny_model)
    res = get("adv2", tiny_model, interp, warm_steps=5, stages=[(23, 5.0, 10.0)], alpha=2 / 255, log_every=4)(x, y)
    # scored: the joint steps 5..27 that are multiples of log_every, and the last iterate
    assert len(calls) == len([s for s in range(5, 28) if s % 4 == 0]) + 1
    target, maps_target = res.target, res.maps_target
    best = torch.full((x.shape[0],), float("inf"))
    chosen = res.x_adv.clone()
    n_ok = torch.zeros(x.shape[0], dtype=torch.long)
    for xa, logits, score in calls:
        real = map_loss(interp(xa, target), maps_target)
        torch.testing.assert_close(score, real)  # judged on the real interpreter's map, not the surrogate's
        probs = tiny_model(xa).softmax(1)
        torch.testing.assert_close(logits.softmax(1), probs, rtol=1e-5, atol=1e-6)  # exact logits
        ok = (probs.argmax(1) == target) & (probs.gather(1, target.view(-1, 1)).squeeze(1) >= 0.8)
        n_ok += ok.long()
        better = ok & (real < best)
        best = torch.where(better, real, best)
        chosen[better] = xa[better]
    assert (n_ok >= 2).any()  # some image had several candidates to choose from
    found = torch.isfinite(best)
    assert found.any()
    assert torch.equal(res.x_adv[found], chosen[found])


def test_surrogate_prediction_gradient_is_the_real_models(tiny_model, batch, monkeypatch):
    """The shared surrogate forward gives the same step as a separate real-model pass for the prediction term."""
    import contextlib

    import xaisec.attacks.joint as joint
    from xaisec.attacks.frameworks import PGD

    x, y = batch
    grads = []
    original = PGD.update
    monkeypatch.setattr(PGD, "update", lambda self, g: (grads.append(g.clone()), original(self, g))[1])
    opts = {"warm_steps": 0, "stages": [(3, 5.0, 5.0)], "keep_best": False}
    get("adv2", tiny_model, "grad", **opts)(x, y)
    shared = grads[:]
    grads.clear()

    def separate(self, xa, cls):  # the previous path: maps from the surrogate, logits from a real forward
        with self._map_context():
            maps, _ = self.interpreter.explain(xa, cls, create_graph=True)
        return maps, self.model(xa), False

    with monkeypatch.context() as m:
        m.setattr(joint.JointAttack, "_maps_and_logits", separate)
        get("adv2", tiny_model, "grad", **opts)(x, y)
    reference = grads[:]
    grads.clear()
    with monkeypatch.context() as m:  # the prediction gradient through the soft slopes instead
        m.setattr(joint, "exact_relu_backward", contextlib.nullcontext)
        get("adv2", tiny_model, "grad", **opts)(x, y)
    soft = grads[:]
    torch.testing.assert_close(shared[0], reference[0], rtol=1e-4, atol=1e-7 * float(reference[0].abs().max()))
    assert (soft[0] - reference[0]).abs().max() > 1e-4 * reference[0].abs().max()
