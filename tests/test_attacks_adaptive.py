"""Adaptive ADV^2 (xaisec.attacks.adaptive) and the joint attack's extra_loss hook."""

from __future__ import annotations

import pytest
import torch

import xaisec.attacks as attacks
from xaisec.attacks.adaptive import AdaptiveAttack
from xaisec.attacks.joint import JointAttack
from xaisec.defenses import squeeze_detector
from xaisec.interpreters import get as get_interpreter
from xaisec.models import Classifier
from xaisec.utils.checks import XaisecError

EPS = 8 / 255


def test_extra_loss_hook_is_called_and_changes_the_attack(tiny_model: Classifier, tiny_batch) -> None:
    x, _ = tiny_batch
    calls = []

    def extra(xa: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        calls.append(xa.shape[0])
        assert xa.requires_grad and logits.shape == (x.shape[0], 5)
        return 50.0 * (xa - 0.5).abs().flatten(1).mean(1)  # pull toward grey

    g = get_interpreter("gradcam", tiny_model)
    plain = JointAttack(tiny_model, g, steps_scale=0.01, keep_best=False)(x)
    pulled = JointAttack(tiny_model, g, steps_scale=0.01, keep_best=False, extra_loss=extra)(x)
    assert len(calls) == pulled.iterations
    assert (pulled.x_adv - 0.5).abs().mean() < (plain.x_adv - 0.5).abs().mean()


@pytest.mark.parametrize("squeezers", [["median:2"], ["bits:3"], ["median:2", "bits:4"]])
def test_adaptive_feature_squeezing_runs_within_budget(tiny_model: Classifier, tiny_batch, squeezers) -> None:
    x, _ = tiny_batch
    det = squeeze_detector(tiny_model, squeezers)
    det.calibrate(torch.rand(20, 3, 16, 16, generator=torch.Generator().manual_seed(2)), fpr=0.1)
    atk = attacks.get("adv2", tiny_model, "gradcam", steps_scale=0.02, adaptive="feature_squeezing",
                      detector=det, seed=0)
    assert isinstance(atk, AdaptiveAttack)
    res = atk(x)
    assert (res.x_adv - x).abs().max() <= EPS + 1e-6 and res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert res.config["adaptive"] == "feature_squeezing" and res.config["squeezers"] == squeezers
    # same targets as the basic attack with the same seed
    basic = attacks.get("adv2", tiny_model, "gradcam", steps_scale=0.02, seed=0)(x)
    assert torch.equal(res.target, basic.target)
    assert set(res.metrics) == set(basic.metrics)


def test_adaptive_term_lowers_the_squeeze_score(tiny_model: Classifier, tiny_batch) -> None:
    x, _ = tiny_batch
    det = squeeze_detector(tiny_model, ["median:3"])
    common = {"steps_scale": 0.03, "seed": 0, "keep_best": False}
    basic = attacks.get("pgd", tiny_model, "gradcam", **common)(x)
    adaptive = attacks.get("pgd", tiny_model, "gradcam", adaptive="feature_squeezing", squeezers=["median:3"],
                           weight=20.0, **common)(x)
    assert float(det.score(adaptive.x_adv).mean()) < float(det.score(basic.x_adv).mean())


def test_adaptive_errors(tiny_model: Classifier) -> None:
    with pytest.raises(XaisecError, match="unknown adaptive"):
        attacks.get("adv2", tiny_model, "gradcam", adaptive="jpeg")
    with pytest.raises(XaisecError, match="SqueezeDetector"):
        attacks.get("adv2", tiny_model, "gradcam", adaptive="feature_squeezing", detector=object())
    with pytest.raises(XaisecError, match="EnsembleDetector"):
        attacks.get("adv2", tiny_model, "gradcam", adaptive="detector")
    with pytest.raises(XaisecError, match="bits_mode"):
        attacks.get("adv2", tiny_model, "gradcam", adaptive="feature_squeezing", bits_mode="x")
    with pytest.raises(XaisecError, match="unknown squeezer"):
        attacks.get("adv2", tiny_model, "gradcam", adaptive="feature_squeezing", squeezers=["blur:2"])
