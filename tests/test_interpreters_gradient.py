"""Gradient-family interpreters: agreement with Captum 0.9.0, integration accuracy, batching, the
differentiable mode under the soft-ReLU surrogate, and input validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import predicted, rel_err
from xaisec.interpreters import get
from xaisec.interpreters.gradient import (
    Gradient,
    GradientXInput,
    IntegratedGradients,
    SmoothGrad,
    input_gradients,
    quadrature,
)
from xaisec.interpreters.surrogate import soft_relu
from xaisec.models import Classifier, wrap
from xaisec.utils.checks import XaisecError

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")

MODELS = ["resnet20_random", "resnet20_trained"]


@pytest.fixture
def cifar_batch() -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("fixture", MODELS)
def test_saliency_and_input_x_gradient_match_captum(fixture: str, request: pytest.FixtureRequest,
                                                    cifar_batch: torch.Tensor) -> None:
    model = request.getfixturevalue(fixture)
    t = predicted(model, cifar_batch)
    ours = Gradient(model).attributions(cifar_batch, t)
    ref = captum_attr.Saliency(model).attribute(cifar_batch.clone(), target=t, abs=False)
    assert rel_err(ours, ref) <= 1e-4
    ours = GradientXInput(model).attributions(cifar_batch, t)
    ref = captum_attr.InputXGradient(model).attribute(cifar_batch.clone(), target=t)
    assert rel_err(ours, ref) <= 1e-4
    # the maps are the documented reductions of those attributions
    sal = captum_attr.Saliency(model).attribute(cifar_batch.clone(), target=t, abs=True)
    torch.testing.assert_close(Gradient(model, normalize="none")(cifar_batch, t), sal.amax(1), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(GradientXInput(model, normalize="none")(cifar_batch, t), ref.sum(1), rtol=1e-4,
                               atol=1e-6)


@pytest.mark.parametrize("fixture", MODELS)
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_match_captum(fixture: str, method: str, request: pytest.FixtureRequest,
                                           cifar_batch: torch.Tensor) -> None:
    model = request.getfixturevalue(fixture)
    x, steps = cifar_batch[:2], 8
    t = predicted(model, x)
    ours = IntegratedGradients(model, steps=steps, method=method, internal_batch_size=5).attributions(x, t)
    ref = captum_attr.IntegratedGradients(model).attribute(x.clone(), target=t, n_steps=steps, method=method,
                                                           baselines=0.0)
    if method == "riemann_trapezoid":  # Captum's trapezoid weights sum to (steps-1)/steps, ours to 1
        ref = ref * steps / (steps - 1)
    assert rel_err(ours, ref) <= 1e-4


class SmoothNet(nn.Module):
    """A smooth (tanh) network: the integral is smooth in alpha, so quadrature converges fast."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 8 * 8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(2 * self.conv(x)).flatten(1))


@pytest.fixture
def smooth_model() -> Classifier:
    torch.manual_seed(3)
    return wrap(SmoothNet().double(), mean=(0.5,) * 3, std=(0.3,) * 3).double().eval()


@pytest.mark.parametrize(("method", "steps", "tol"), [("gausslegendre", 24, 1e-6), ("riemann_trapezoid", 200, 1e-4)])
def test_integrated_gradients_completeness(smooth_model: Classifier, method: str, steps: int, tol: float) -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64)
    base = torch.rand(3, 8, 8, generator=g, dtype=torch.float64)  # one (C, H, W) baseline for all images
    t = torch.tensor([0, 1, 3])
    a = IntegratedGradients(smooth_model, steps=steps, method=method, baseline=base).attributions(x, t)
    with torch.no_grad():
        diff = (smooth_model(x) - smooth_model(base.expand_as(x))).gather(1, t.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(a.sum((1, 2, 3)), diff, rtol=tol, atol=tol)


def test_quadrature_weights() -> None:
    for method in ("gausslegendre", "riemann_trapezoid"):
        alphas, weights = quadrature(method, 7)
        assert len(alphas) == len(weights) == 7
        assert abs(sum(weights) - 1) < 1e-12
        assert all(0 <= a <= 1 for a in alphas)
        # exact for a quadratic on [0, 1] (Gauss) / close for the trapezoid
        integral = sum(w * a * a for a, w in zip(alphas, weights, strict=True))
        assert abs(integral - 1 / 3) < (1e-12 if method == "gausslegendre" else 1e-2)


def test_ig_chunking_and_baseline_equal_to_input(tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    full = IntegratedGradients(tiny_model, steps=6, internal_batch_size=10_000).attributions(x, t)
    for chunk in (1, 7):
        torch.testing.assert_close(
            IntegratedGradients(tiny_model, steps=6, internal_batch_size=chunk).attributions(x, t), full,
            rtol=1e-5, atol=1e-7)
    zero = IntegratedGradients(tiny_model, steps=3, baseline=x).attributions(x, t)
    assert zero.abs().max() == 0


def test_gradient_pool_averages_blocks(tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    raw = Gradient(tiny_model).attribute(x, t)  # (N, 16, 16)
    pooled = Gradient(tiny_model, pool=4).attribute(x, t)
    assert pooled.shape == (x.shape[0], 4, 4)
    torch.testing.assert_close(pooled[:, 1, 2], raw[:, 4:8, 8:12].mean((1, 2)))
    pooled5 = Gradient(tiny_model, pool=5).attribute(x, t)  # 16 = 3 * 5 + 1: a partial last block
    assert pooled5.shape == (x.shape[0], 4, 4)
    torch.testing.assert_close(pooled5[:, 3, 3], raw[:, 15, 15])
    assert Gradient(tiny_model, pool=4)(x, t).shape == (x.shape[0], 16, 16)


def test_smoothgrad_definition_and_seed(tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    sg = SmoothGrad(tiny_model, samples=5, sigma=0.2, seed=11, internal_batch_size=4)
    noise = torch.randn((5, *x.shape[1:]), generator=torch.Generator().manual_seed(11))
    scale = 0.2 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    grads = torch.stack([input_gradients(tiny_model, x + scale.view(-1, 1, 1, 1) * noise[k], t) for k in range(5)])
    torch.testing.assert_close(sg.attributions(x, t), grads.mean(0), rtol=1e-5, atol=1e-7)
    sg_raw = SmoothGrad(tiny_model, samples=5, sigma=0.2, seed=11, normalize="none")
    torch.testing.assert_close(sg_raw(x, t), grads.abs().amax(2).mean(0), rtol=1e-5, atol=1e-7)
    assert torch.equal(sg(x, t), sg(x, t))  # seeded: deterministic
    unseeded = SmoothGrad(tiny_model, samples=5, seed=None)
    torch.manual_seed(0)
    first = unseeded(x, t)
    assert not torch.equal(first, unseeded(x, t))
    # no noise: SmoothGrad is the gradient map
    torch.testing.assert_close(SmoothGrad(tiny_model, samples=2, sigma=0.0)(x, t), Gradient(tiny_model)(x, t))


@pytest.mark.parametrize("name", ["grad", "grad_x_input", "integrated_gradients", "smoothgrad"])
def test_batch_equals_one_image_at_a_time(name: str, tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    opts = {"integrated_gradients": {"steps": 5, "internal_batch_size": 7},
            "smoothgrad": {"samples": 4, "internal_batch_size": 5}}.get(name, {})
    g = get(name, tiny_model, **opts)
    batch = g(x, t)
    single = torch.cat([g(x[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])])
    assert batch.shape == (x.shape[0], 16, 16)
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["grad", "grad_x_input", "integrated_gradients", "smoothgrad"])
def test_differentiable_under_soft_relu(name: str, tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    opts = {"integrated_gradients": {"steps": 4}, "smoothgrad": {"samples": 3}}.get(name, {})
    g = get(name, tiny_model, **opts)
    assert g.differentiable

    def map_loss_grad(soft: bool) -> torch.Tensor:
        xx = x.clone().requires_grad_(True)
        if soft:
            with soft_relu(tiny_model):
                maps = g(xx, t, create_graph=True)
        else:
            maps = g(xx, t, create_graph=True)
        assert maps.requires_grad
        (maps**2).sum().backward()
        return xx.grad

    soft = map_loss_grad(True)
    assert torch.isfinite(soft).all() and soft.abs().max() > 1e-6
    if name in ("grad", "smoothgrad"):  # pure gradient maps of a ReLU net: flat without the surrogate
        assert map_loss_grad(False).abs().max() < 1e-9
    # create_graph does not change the map's values
    torch.testing.assert_close(g(x, t, create_graph=True).detach(), g(x, t))


def test_default_target_is_prediction_and_shapes(tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, _ = tiny_batch
    g = Gradient(tiny_model)
    maps = g(x)
    torch.testing.assert_close(maps, g(x, predicted(tiny_model, x)))
    assert maps.shape == (6, 16, 16) and maps.min() >= 0 and maps.max() <= 1
    assert not maps.requires_grad
    assert GradientXInput(tiny_model).attributions(x, 2).shape == x.shape
    assert Gradient(tiny_model, reduce="abs_sum", normalize="none")(x, 1).min() >= 0
    assert "max_abs" in repr(g)


@pytest.mark.parametrize(
    ("name", "opts"),
    [
        ("grad", {"pool": 0}),
        ("grad", {"pool": 2.5}),
        ("grad", {"reduce": "median"}),
        ("grad", {"normalize": "softmax"}),
        ("grad", {"bogus_option": 1}),
        ("integrated_gradients", {"steps": 0}),
        ("integrated_gradients", {"steps": 1, "method": "riemann_trapezoid"}),
        ("integrated_gradients", {"method": "riemann_left"}),
        ("integrated_gradients", {"internal_batch_size": 0}),
        ("integrated_gradients", {"baseline": "black"}),
        ("smoothgrad", {"samples": 0}),
        ("smoothgrad", {"sigma": -0.1}),
        ("smoothgrad", {"sigma": float("nan")}),
        ("smoothgrad", {"seed": "0"}),
    ],
)
def test_bad_options_raise(name: str, opts: dict, tiny_model: Classifier) -> None:
    with pytest.raises(XaisecError):
        get(name, tiny_model, **opts)


@pytest.mark.parametrize("name", ["grad", "grad_x_input", "integrated_gradients", "smoothgrad"])
def test_bad_inputs_raise(name: str, tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    g = get(name, tiny_model)
    bad_nan = x.clone()
    bad_nan[0, 0, 0, 0] = float("nan")
    for bad in (x[0], bad_nan, x * 3, (x * 255).to(torch.uint8)):
        with pytest.raises(XaisecError):
            g(bad, t)
        with pytest.raises(XaisecError):
            g.attributions(bad, t)  # type: ignore[attr-defined]
    with pytest.raises(XaisecError):
        g(x, torch.tensor([0, 1]))  # wrong number of targets
    with pytest.raises(XaisecError):
        g(x, 99)  # no such class


def test_bad_baselines_raise(tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    for base in (1.5, torch.zeros(2, 3, 16, 16), torch.full((3, 16, 16), float("nan")), torch.zeros(3, 8, 8)):
        with pytest.raises(XaisecError, match="baseline"):
            IntegratedGradients(tiny_model, steps=2, baseline=base)(x, t)


def test_gradient_is_of_the_logit_wrt_unnormalised_input(tiny_model: Classifier) -> None:
    """Finite-difference check of one gradient entry (guards the normalisation-inside-the-model rule)."""
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    model = tiny_model.double()
    a = Gradient(model).attributions(x, 3)
    h = 1e-6
    e = torch.zeros_like(x)
    e[0, 1, 5, 7] = h
    with torch.no_grad():
        fd = (model(x + e)[0, 3] - model(x - e)[0, 3]) / (2 * h)
    assert abs(float(a[0, 1, 5, 7]) - float(fd)) < 1e-6


@pytest.mark.parametrize("name", ["grad", "grad_x_input"])
def test_explain_returns_the_forward_logits(name: str, tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    g = get(name, tiny_model)
    maps, logits = g.explain(x, t)
    torch.testing.assert_close(maps, g(x, t))
    # the same forward pass (run on channels-last activations, so equal to the last few bits)
    torch.testing.assert_close(logits, tiny_model(x).detach(), rtol=1e-6, atol=1e-6)
    assert not logits.requires_grad
    xx = x.clone().requires_grad_(True)
    _, logits = g.explain(xx, t, create_graph=True)
    (d,) = torch.autograd.grad(logits[:, 0].sum(), xx)  # the real model's gradient flows through them
    torch.testing.assert_close(d, input_gradients(tiny_model, x, torch.zeros_like(t)))
    assert get("integrated_gradients", tiny_model, steps=2).explain(x, t)[1] is None


def test_a_bare_module_warns_once_that_it_skips_normalisation(caplog):
    import logging

    from xaisec.interpreters import get as get_interpreter

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    net(torch.rand(1, 3, 8, 8))
    with caplog.at_level(logging.WARNING):
        get_interpreter("grad", net)
        get_interpreter("grad_x_input", net)
    warnings = [r for r in caplog.records if "not an xaisec Classifier" in r.getMessage()]
    assert len(warnings) == 1 and "wrap" in warnings[0].getMessage()
