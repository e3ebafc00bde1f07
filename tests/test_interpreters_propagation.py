"""Guided backprop and DeepLIFT: agreement with Captum 0.9.0 on module-ReLU networks, the same results
with functional and in-place ReLUs (which Captum misses), DeepLIFT's summation-to-delta, batching,
restoring the ReLU functions, and input validation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import predicted, rel_err
from xaisec.interpreters import get
from xaisec.interpreters.propagation import DeepLift, GuidedBackprop
from xaisec.models import Classifier, wrap
from xaisec.utils.checks import XaisecError

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings(
    "ignore:Input Tensor 0 did not already require gradients", "ignore:Setting forward, backward hooks",
    "ignore:.*backward hooks", "ignore:.*nn.Module.register_full_backward_hook",
)

MODELS = ["resnet20_random", "resnet20_trained"]
RELU_FUNCTIONS = (F.relu, F.relu_, torch.relu, torch.relu_)


@pytest.fixture
def cifar_batch() -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(8))


@pytest.mark.parametrize("fixture", MODELS)
def test_guided_backprop_matches_captum(fixture: str, request: pytest.FixtureRequest,
                                        cifar_batch: torch.Tensor) -> None:
    model = request.getfixturevalue(fixture)
    t = predicted(model, cifar_batch)
    ours = GuidedBackprop(model).attributions(cifar_batch, t)
    ref = captum_attr.GuidedBackprop(model).attribute(cifar_batch.clone(), target=t)
    assert rel_err(ours, ref) <= 1e-4
    assert rel_err(ours, captum_attr.Saliency(model).attribute(cifar_batch.clone(), target=t, abs=False)) > 1e-2
    torch.testing.assert_close(GuidedBackprop(model, normalize="none")(cifar_batch, t), ref.detach().abs().amax(1),
                               rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("fixture", MODELS)
@pytest.mark.parametrize("baseline", [0.0, 0.5])
def test_deeplift_matches_captum_and_sums_to_delta(fixture: str, baseline: float, request: pytest.FixtureRequest,
                                                   cifar_batch: torch.Tensor) -> None:
    model = request.getfixturevalue(fixture)
    t = predicted(model, cifar_batch)
    ours = DeepLift(model, baseline=baseline).attributions(cifar_batch, t)
    ref = captum_attr.DeepLift(model).attribute(cifar_batch.clone(), target=t,
                                                baselines=torch.full_like(cifar_batch, baseline))
    assert rel_err(ours, ref) <= 1e-4
    with torch.no_grad():
        delta = (model(cifar_batch) - model(torch.full_like(cifar_batch, baseline))).gather(1, t.view(-1, 1))
    torch.testing.assert_close(ours.sum((1, 2, 3)), delta.squeeze(1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(DeepLift(model, baseline=baseline, normalize="none")(cifar_batch, t),
                               ref.detach().sum(1), rtol=1e-4, atol=1e-5)


class ReluStyles(nn.Module):
    """conv-relu-conv-relu(+residual)-pool-linear with the ReLUs written as ``style``."""

    def __init__(self, style: str) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.style = style
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 8, 3, padding=1)
        self.r1, self.r2, self.r3 = (nn.ReLU(inplace=style == "inplace") for _ in range(3))
        self.fc = nn.Linear(8, 4)

    def act(self, z: torch.Tensor, i: int) -> torch.Tensor:
        if self.style in ("module", "inplace"):
            return (self.r1, self.r2, self.r3)[i](z)
        return (F.relu(z), torch.relu(z), z.relu())[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.c1(x), 0)
        h = self.act(self.c3(self.act(self.c2(h), 1)) + h, 2)
        return self.fc(h.mean((2, 3)))


def styled(style: str) -> Classifier:
    return wrap(ReluStyles(style), mean=(0.5,) * 3, std=(0.25,) * 3, classes=list("abcd")).eval()


@pytest.mark.parametrize("style", ["functional", "inplace"])
def test_functional_and_inplace_relus_match_captum_on_modules(style: str) -> None:
    x = torch.rand(4, 3, 10, 10, generator=torch.Generator().manual_seed(9))
    t = torch.tensor([0, 1, 2, 3])
    reference, model = styled("module"), styled(style)
    assert all(torch.equal(p, q) for p, q in zip(reference.parameters(), model.parameters(), strict=True))
    for ours_cls, captum_cls, kw in ((GuidedBackprop, captum_attr.GuidedBackprop, {}),
                                     (DeepLift, captum_attr.DeepLift, {"baselines": torch.zeros_like(x)})):
        ref = captum_cls(reference).attribute(x.clone(), target=t, **kw)
        assert rel_err(ours_cls(model).attributions(x, t), ref) <= 1e-4
    if style == "functional":  # Captum itself cannot see functional ReLUs: its guided backprop is the gradient
        blind = captum_attr.GuidedBackprop(model).attribute(x.clone(), target=t)
        assert rel_err(blind, captum_attr.GuidedBackprop(reference).attribute(x.clone(), target=t)) > 1e-2


@pytest.mark.parametrize("name", ["guided_backprop", "deeplift"])
def test_batch_equals_one_image_at_a_time(name: str, tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    g = get(name, tiny_model)
    batch = g(x, t)
    single = torch.cat([g(x[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])])
    assert batch.shape == (x.shape[0], 16, 16)
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)


class Exploding(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        F.relu(x)
        raise RuntimeError("boom")


@pytest.mark.parametrize("cls", [GuidedBackprop, DeepLift])
def test_relu_functions_restored_even_on_errors(cls: type, tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    cls(tiny_model)(x, t)
    assert (F.relu, F.relu_, torch.relu, torch.relu_) == RELU_FUNCTIONS
    assert "relu" not in vars(torch.Tensor)
    assert not any("forward" in vars(m) for m in tiny_model.modules())
    with pytest.raises(RuntimeError, match="boom"):
        cls(wrap(Exploding()), normalize="minmax").attributions(x, 0)
    assert (F.relu, F.relu_, torch.relu, torch.relu_) == RELU_FUNCTIONS
    assert "relu" not in vars(torch.Tensor)


def test_deeplift_relu_on_non_batch_tensors_keeps_gradient(tiny_batch: tuple) -> None:
    class ParamRelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3 * 16 * 16, generator=torch.Generator().manual_seed(0)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu(x.flatten(1)) @ F.relu(self.w).t()  # relu of a parameter: not batch-shaped

    x, _ = tiny_batch
    model = wrap(ParamRelu())
    a = DeepLift(model).attributions(x, 1)
    with torch.no_grad():
        delta = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
    torch.testing.assert_close(a.sum((1, 2, 3)), delta, rtol=1e-4, atol=1e-4)


def test_no_differentiable_mode_and_bad_inputs(tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    for name in ("guided_backprop", "deeplift"):
        g = get(name, tiny_model)
        assert not g.differentiable
        with pytest.raises(XaisecError, match="differentiable"):
            g(x, t, create_graph=True)
        with pytest.raises(XaisecError, match="differentiable"):
            g.attributions(x, t, create_graph=True)  # type: ignore[attr-defined]
        bad_nan = x.clone()
        bad_nan[1, 2, 3, 4] = float("nan")
        for bad in (x[0], bad_nan, x - 0.5):
            with pytest.raises(XaisecError):
                g(bad, t)
    for opts in ({"baseline": 2.0}, {"baseline": torch.zeros(5, 3, 16, 16)}, {"baseline": "zeros"},
                 {"eps": -1.0}, {"reduce": "mean"}, {"unknown": 1}):
        with pytest.raises(XaisecError):
            get("deeplift", tiny_model, **opts)(x, t)
    with pytest.raises(XaisecError):
        get("guided_backprop", tiny_model, reduce="nope")


@pytest.mark.parametrize("name", ["guided_backprop", "deeplift"])
def test_explain_returns_exact_logits(name: str, tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    maps, logits = get(name, tiny_model).explain(x, t)
    assert maps.shape == (x.shape[0], 16, 16)
    torch.testing.assert_close(logits, tiny_model(x).detach(), rtol=1e-6, atol=1e-6)
