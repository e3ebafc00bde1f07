"""Training JUAP / GAP / UAP on a tiny trained network: direction of effect, reproducibility, errors."""

from __future__ import annotations

import math

import pytest
import torch

import xaisec.universal as U
from tests.conftest import TinyNet
from xaisec.models import Classifier, wrap
from xaisec.utils.checks import XaisecError

FAST = {"steps": 30, "ngf": 4, "blocks": 1, "lr": 2e-3}


def trained_tiny(n: int = 200, seed: int = 0) -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    """TinyNet trained for a few steps on 5 colour classes with noise (3x16x16): confident, not constant."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    y = torch.randint(0, 5, (n,), generator=g)
    centers = torch.rand(5, 3, 1, 1, generator=g) * 0.6 + 0.2
    x = (centers[y] + 0.15 * torch.randn(n, 3, 16, 16, generator=g)).clamp(0, 1)
    model = wrap(TinyNet(), mean=(0.5,) * 3, std=(0.25,) * 3, cam_layer="features", fc_layer="fc",
                 classes=[f"c{i}" for i in range(5)], input_size=(3, 16, 16), name="tiny")
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x, y


@pytest.fixture(scope="module")
def tiny() -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    return trained_tiny()


def test_gap_loss_falls_and_fooling_rises(tiny) -> None:
    model, x, _ = tiny
    first = U.train("gap", model, None, x[:60], eps=0.1, seed=0, **{**FAST, "steps": 1})
    uap = U.train("gap", model, None, x[:60], eps=0.1, seed=0, log_every=5, **FAST)
    h = uap.history
    assert h["loss"][-1] < h["loss"][0]
    assert U.evaluate(uap, model, None, x).summary()["fooling_ratio"] > \
        U.evaluate(first, model, None, x).summary()["fooling_ratio"] + 0.05
    assert math.isnan(h["map_loss"][0])  # GAP computes no map


def test_map_term_lowers_l1(tiny) -> None:
    model, x, _ = tiny
    base = U.train("juap", model, "cam", x[:60], eps=0.1, lam=0.0, seed=0, **FAST)
    joint = U.train("juap", model, "cam", x[:60], eps=0.1, lam=0.2, seed=0, **FAST)
    e0, e1 = U.evaluate(base, model, "cam", x).summary(), U.evaluate(joint, model, "cam", x).summary()
    assert e1["l1"] < 0.9 * e0["l1"]
    assert e1["iou"] > e0["iou"]
    assert e1["fooling_ratio"] > 0.05  # still fools


def test_per_sample_clamp(tiny) -> None:
    model, x, _ = tiny
    uap = U.train("juap", model, "cam", x[:30], eps=0.1, lam=0.2, per_sample=True, seed=0, **{**FAST, "steps": 3})
    assert uap.config["per_sample"] is True and math.isfinite(uap.history["loss"][-1])


def test_gradcam_juap_runs_with_surrogate(tiny) -> None:
    model, x, _ = tiny
    uap = U.train("juap", model, "gradcam", x[:30], eps=0.1, lam=0.05, seed=0, **{**FAST, "steps": 4})
    assert uap.config["surrogate"] is True and math.isfinite(uap.history["map_loss"][-1])


@pytest.mark.parametrize("norm,eps,gen", [("linf", 0.1, "resnet"), ("l2", 1.5, "unet")])
def test_budget_holds(tiny, norm: str, eps: float, gen: str) -> None:
    model, x, _ = tiny
    uap = U.train("juap", model, "cam", x[:30], generator=gen, norm=norm, eps=eps, scaling="exact", seed=0,
                  **{**FAST, "steps": 5})
    p = uap.perturbation
    value = float(p.abs().max()) if norm == "linf" else float(p.norm())
    assert value <= eps and value > 0.99 * eps


def test_same_seed_same_perturbation(tiny) -> None:
    model, x, _ = tiny
    a = U.train("juap", model, "cam", x[:30], eps=0.1, seed=3, **{**FAST, "steps": 5})
    b = U.train("juap", model, "cam", x[:30], eps=0.1, seed=3, **{**FAST, "steps": 5})
    c = U.train("juap", model, "cam", x[:30], eps=0.1, seed=4, **{**FAST, "steps": 5})
    assert torch.equal(a.perturbation, b.perturbation)
    assert not torch.equal(a.perturbation, c.perturbation)


def test_uap_fools_within_budget(tiny) -> None:
    model, x, _ = tiny
    uap = U.train("uap", model, "cam", x[:60], eps=0.1, seed=0, max_passes=3)
    assert float(uap.perturbation.abs().max()) <= 0.1
    assert U.evaluate(uap, model, None, x).summary()["fooling_ratio"] > 0.2
    assert uap.history["fooling"] and uap.config["train_fooling"] == max(uap.history["fooling"])
    again = U.train("uap", model, None, x[:60], eps=0.1, seed=0, max_passes=3)
    assert torch.equal(uap.perturbation, again.perturbation)


def test_untargeted_and_targeted_losses(tiny) -> None:
    model, x, y = tiny
    from xaisec.data.dataset import ImageDataset

    data = ImageDataset((x[:30] * 255).round().to(torch.uint8), y[:30], [f"c{i}" for i in range(5)])
    u = U.train("gap", model, None, data, loss="untargeted", eps=0.1, **{**FAST, "steps": 3})
    t = U.train("gap", model, None, x[:30], loss="targeted", target_class=2, eps=0.1, **{**FAST, "steps": 3})
    assert u.config["loss"] == "untargeted" and t.config["target_class"] == 2


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": 0}, "eps"), ({"eps": float("nan")}, "eps"), ({"eps": -1}, "eps"),
    ({"generator": "vae"}, "unknown generator"), ({"norm": "l1"}, "unknown norm"),
    ({"loss": "hinge"}, "unknown loss"), ({"loss": "targeted"}, "target_class"),
])
def test_bad_options(tiny, kwargs: dict, match: str) -> None:
    model, x, _ = tiny
    with pytest.raises(XaisecError, match=match):
        U.train("juap", model, "cam", x[:10], **{**FAST, "steps": 1, **kwargs})


def test_unknown_method_empty_set_and_interpreter_errors(tiny) -> None:
    model, x, _ = tiny
    with pytest.raises(XaisecError, match="unknown method"):
        U.train("fgsm", model, "cam", x[:10])
    with pytest.raises(XaisecError, match="empty"):
        U.train("juap", model, "cam", x[:0])
    with pytest.raises(XaisecError, match=r"no differentiable mode.*cam"):
        U.train("juap", model, "mask", x[:10], steps=1)
    # GAP and UAP accept and ignore the interpreter, even one without a differentiable mode
    assert U.train("gap", model, "mask", x[:10], **{**FAST, "steps": 1}).config["interpreter"] is None
