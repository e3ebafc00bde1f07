"""LRP: agreement with Zennit 0.5.1 (every composite on a conv/BN/pool net; EpsilonPlus on a torchvision
ResNet with Zennit's ResNet canonizer), relevance conservation on ResNet-20 (functional residual
additions, zero-padding shortcuts), batching, and input validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import rel_err
from xaisec.interpreters import get
from xaisec.interpreters.lrp import COMPOSITES, LRP
from xaisec.models import Classifier, wrap
from xaisec.utils.checks import XaisecError

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def randomise_batchnorms(net: nn.Module, seed: int) -> None:
    """Non-trivial eval statistics. eps = 0 because Zennit's BN-merging canonizer leaves the batch norm's eps
    in place after folding (its 'identity' BN scales by 1/sqrt(1 + eps)), which would bias the comparison."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 0.0
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)


def zennit_relevance(net: nn.Module, composite: object, xn: torch.Tensor, t: torch.Tensor, k: int) -> torch.Tensor:
    from zennit.attribution import Gradient

    onehot = torch.eye(k, dtype=xn.dtype)[t]
    with Gradient(model=net, composite=composite) as attributor:
        _, rel = attributor(xn.detach().requires_grad_(True), attr_output=lambda out: out * onehot)
    return rel


@pytest.fixture
def conv_bn_net() -> tuple[nn.Module, Classifier]:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5),
    )
    randomise_batchnorms(net, 1)
    net = net.double().eval()
    return net, wrap(net, mean=MEAN, std=STD, classes=list("abcde")).double().eval()


def zennit_composite(name: str, dtype: torch.dtype) -> object:
    pytest.importorskip("zennit")
    from zennit import composites as zc
    from zennit import rules as zr
    from zennit.canonizers import SequentialMergeBatchNorm

    canon = [SequentialMergeBatchNorm()]
    low = ((0 - torch.tensor(MEAN, dtype=dtype)) / torch.tensor(STD, dtype=dtype)).view(1, 3, 1, 1)
    high = ((1 - torch.tensor(MEAN, dtype=dtype)) / torch.tensor(STD, dtype=dtype)).view(1, 3, 1, 1)
    return {
        "epsilon": lambda: zc.LayerMapComposite(
            [*zc.layer_map_base(), (nn.Conv2d, zr.Epsilon()), (nn.Linear, zr.Epsilon())], canonizers=canon),
        "epsilon_plus": lambda: zc.EpsilonPlus(canonizers=canon),
        "epsilon_plus_flat": lambda: zc.EpsilonPlusFlat(canonizers=canon),
        "epsilon_alpha2_beta1": lambda: zc.EpsilonAlpha2Beta1(canonizers=canon),
        "epsilon_alpha2_beta1_flat": lambda: zc.EpsilonAlpha2Beta1Flat(canonizers=canon),
        "epsilon_gamma_box": lambda: zc.EpsilonGammaBox(low=low, high=high, canonizers=canon),
    }[name]()


@pytest.mark.parametrize("composite", list(COMPOSITES))
def test_matches_zennit_on_conv_bn_pool_net(composite: str, conv_bn_net: tuple) -> None:
    """float64: LRP-epsilon with eps = 1e-6 amplifies float32 rounding near z = 0 in either library."""
    net, model = conv_bn_net
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.tensor([0, 2, 4])
    ours = LRP(model, composite=composite).attributions(x, t)
    ref = zennit_relevance(net, zennit_composite(composite, torch.float64), model.normalize(x), t, 5)
    assert rel_err(ours, ref) <= 1e-4
    torch.testing.assert_close(LRP(model, composite=composite, normalize="none")(x, t), ref.sum(1), rtol=1e-4,
                               atol=1e-8)


def test_matches_zennit_on_torchvision_resnet() -> None:
    """Residual blocks: Zennit needs its ResNet canonizer (a Sum module for ``out += identity``); ours handles
    the functional addition directly. Differences come only from Zennit's stabiliser on those sums."""
    pytest.importorskip("zennit")
    from xaisec._compat.torchvision import import_torchvision

    tv = import_torchvision()
    from zennit.composites import EpsilonPlus
    from zennit.torchvision import ResNetCanonizer

    torch.manual_seed(0)
    net = tv.models.resnet18(num_classes=5)
    randomise_batchnorms(net, 3)
    net = net.double().eval()
    model = wrap(net, mean=MEAN, std=STD, classes=list("abcde")).double().eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    t = torch.tensor([1, 3])
    ours = LRP(model, composite="epsilon_plus").attributions(x, t)
    ref = zennit_relevance(net, EpsilonPlus(canonizers=[ResNetCanonizer()]), model.normalize(x), t, 5)
    assert rel_err(ours, ref) <= 1e-4


@pytest.mark.parametrize("composite", list(COMPOSITES))
def test_conservation_on_resnet20(composite: str, resnet20_random: Classifier) -> None:
    """Without biases (fresh batch norms, zeroed head bias) relevance is conserved: sum R = f_c(x)."""
    model = resnet20_random
    model.net.linear.bias.data.zero_()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        logits = model(x)
    t = logits.argmin(1)  # also a negative logit for conservation of signed relevance
    rel = LRP(model, composite=composite, epsilon=1e-9).attributions(x, t)
    assert rel.shape == x.shape and torch.isfinite(rel).all()
    torch.testing.assert_close(rel.sum((1, 2, 3)), logits.gather(1, t.view(-1, 1)).squeeze(1), rtol=1e-4, atol=1e-4)


def test_epsilon_without_biases_is_gradient_times_input(resnet20_random: Classifier) -> None:
    """LRP-0 = gradient x input (at the normalised input) for bias-free ReLU networks, residual ones included."""
    model = resnet20_random.double()
    model.net.linear.bias.data.zero_()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    t = torch.tensor([3, 8])
    rel = LRP(model, composite="epsilon", epsilon=1e-12, stabilizer=1e-12).attributions(x, t)
    xn = model.normalize(x).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model.net(xn).gather(1, t.view(-1, 1)).sum(), xn)
    assert rel_err(rel, xn.detach() * g) <= 1e-6


def test_trained_resnet20_maps(resnet20_trained: Classifier) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    for composite in ("epsilon_plus", "epsilon_gamma_box"):
        maps = LRP(resnet20_trained, composite=composite)(x)
        assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()
        assert maps.min() >= 0 and maps.max() <= 1 and maps.std() > 0


def test_batch_equals_one_image_at_a_time(tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    g = get("lrp", tiny_model)
    batch = g(x, t)
    single = torch.cat([g(x[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])])
    assert batch.shape == (x.shape[0], 16, 16)
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)


def test_hooks_removed_and_forward_unchanged(tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    before = tiny_model(x)
    LRP(tiny_model, composite="epsilon_plus_flat")(x, t)
    assert all(not m._forward_hooks for m in tiny_model.modules())
    assert torch.equal(tiny_model(x), before)


def test_mlp_relevance_reshaped_to_image() -> None:
    torch.manual_seed(1)
    model = wrap(nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6), nn.ReLU(), nn.Linear(6, 3)),
                 classes=list("abc")).eval()
    x = torch.rand(2, 3, 4, 4)
    rel = LRP(model, composite="epsilon").attributions(x, 1)
    assert rel.shape == x.shape


def test_bad_inputs_and_options(tiny_model: Classifier, tiny_batch: tuple) -> None:
    x, t = tiny_batch
    for opts in ({"composite": "alpha1_beta0"}, {"epsilon": -1.0}, {"gamma": float("inf")}, {"bounds": (0.0,)},
                 {"reduce": "max"}, {"rule": "epsilon"}):
        with pytest.raises(XaisecError):
            get("lrp", tiny_model, **opts)
    g = LRP(tiny_model)
    bad_nan = x.clone()
    bad_nan[0, 0, 0, 0] = float("inf")
    for bad in (x[0], bad_nan, x + 1):
        with pytest.raises(XaisecError):
            g(bad, t)
    with pytest.raises(XaisecError, match="differentiable"):
        g(x, t, create_graph=True)
    with pytest.raises(XaisecError, match="Conv or Linear"):
        LRP(wrap(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))(x, 0)
    with pytest.raises(XaisecError, match="bounds"):
        LRP(tiny_model, composite="epsilon_gamma_box", bounds=([0.0, 1.0], [1.0, 2.0]))(x, t)


def test_training_mode_batchnorm_rejected(resnet20_random: Classifier) -> None:
    x = torch.rand(2, 3, 32, 32)
    resnet20_random.train()
    with pytest.raises(XaisecError, match="eval"):
        LRP(resnet20_random)(x, 0)


def test_explain_returns_exact_logits(resnet20_random: Classifier) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    maps, logits = LRP(resnet20_random).explain(x, torch.tensor([1, 2]))
    assert maps.shape == (2, 32, 32)
    torch.testing.assert_close(logits, resnet20_random(x).detach(), rtol=1e-6, atol=1e-6)
