"""Deletion / insertion AUC on a synthetic model whose output depends only on a known region."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from xaisec.metrics import CostMeter, curve_auc, deletion_auc, faithfulness_curve, insertion_auc
from xaisec.metrics.faithfulness import make_baseline
from xaisec.utils.checks import XaisecError

H = W = 12
REGION = (slice(2, 6), slice(3, 7))  # rows, cols that the model looks at


class RegionNet(nn.Module):
    """Two classes; logit of class 0 = 10 * (mean brightness of REGION - 0.3), class 1 logit = 0."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[:, :, REGION[0], REGION[1]].mean((1, 2, 3))
        return torch.stack([self.scale * (m - 0.3), torch.zeros_like(m)], 1)


@pytest.fixture
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = 0.5 + 0.5 * torch.rand(4, 3, H, W, generator=g)
    good = torch.zeros(4, H, W)
    good[:, REGION[0], REGION[1]] = 1.0
    good += 0.01 * torch.rand(4, H, W, generator=g)  # order inside and outside the region is arbitrary
    random = torch.rand(4, H, W, generator=g)
    return RegionNet().eval(), x, good, random


def test_region_map_beats_random_map(setup: tuple) -> None:
    model, x, good, random = setup
    d_good, d_rand = deletion_auc(model, x, good, 0, steps=24), deletion_auc(model, x, random, 0, steps=24)
    i_good = insertion_auc(model, x, good, 0, steps=24, baseline="zeros")
    i_rand = insertion_auc(model, x, random, 0, steps=24, baseline="zeros")
    assert d_good.shape == (4,)
    assert (d_good < d_rand - 0.2).all()
    assert (i_good > i_rand + 0.2).all()
    for v in (d_good, d_rand, i_good, i_rand):
        assert ((v >= 0) & (v <= 1)).all()
    inverse = deletion_auc(model, x, -good, 0, steps=24)  # region removed last
    assert (inverse > d_rand).all()


def test_curve_endpoints_are_image_and_baseline(setup: tuple) -> None:
    model, x, good, _ = setup
    p = lambda z: model(z).softmax(1)[:, 0]  # noqa: E731
    dele = faithfulness_curve(model, x, good, 0, mode="deletion", steps=6)
    ins = faithfulness_curve(model, x, good, 0, mode="insertion", steps=6)  # default baseline: blur
    assert dele.shape == ins.shape == (4, 7)
    torch.testing.assert_close(dele[:, 0], p(x))
    torch.testing.assert_close(dele[:, -1], p(torch.zeros_like(x)))
    torch.testing.assert_close(ins[:, 0], p(make_baseline(x, "blur")))
    torch.testing.assert_close(ins[:, -1], p(x))
    # halfway: exactly round(P / 2) top-ranked pixels changed
    mid = faithfulness_curve(model, x, good, 0, mode="deletion", steps=2)[:, 1]
    order = good.flatten(1).argsort(1, descending=True)
    removed = torch.zeros(4, H * W, dtype=torch.bool).scatter_(1, order[:, : H * W // 2], True)
    torch.testing.assert_close(mid, p(torch.where(removed.view(4, 1, H, W), 0.0, x)))


def test_batch_size_does_not_change_results_and_sets_forward_calls(setup: tuple) -> None:
    model, x, good, _ = setup
    ref = faithfulness_curve(model, x, good, 0, steps=10, batch_size=1000)
    with CostMeter(model, n_images=4) as meter:
        chunked = faithfulness_curve(model, x, good, 0, steps=10, batch_size=7)
    torch.testing.assert_close(chunked, ref)
    assert meter.forward_calls == math.ceil(4 * 11 / 7)
    assert meter.queries == 4 * 11


def test_runs_on_a_conv_net_with_predicted_target(tiny_model: nn.Module, tiny_batch: tuple) -> None:
    x, _ = tiny_batch
    maps = torch.rand(x.shape[0], 16, 16, generator=torch.Generator().manual_seed(0))
    d = deletion_auc(tiny_model, x, maps, steps=8)
    i = insertion_auc(tiny_model, x, maps, steps=8)
    assert d.shape == i.shape == (x.shape[0],)
    assert ((d >= 0) & (d <= 1) & (i >= 0) & (i <= 1)).all()


def test_curve_auc_trapezoid() -> None:
    curves = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert curve_auc(curves).tolist() == pytest.approx([0.5, 1.0])
    assert curve_auc(torch.tensor([[1.0, 0.5, 0.0, 0.0]])).item() == pytest.approx((0.75 + 0.25 + 0.0) / 3)


def test_faithfulness_validates_input(setup: tuple) -> None:
    model, x, good, _ = setup
    with pytest.raises(XaisecError, match="resize"):
        deletion_auc(model, x, good[:, :6, :6], 0)
    with pytest.raises(XaisecError, match="mode"):
        faithfulness_curve(model, x, good, 0, mode="both")
    with pytest.raises(XaisecError, match="steps"):
        deletion_auc(model, x, good, 0, steps=0)
    with pytest.raises(XaisecError, match="baseline"):
        deletion_auc(model, x, good, 0, baseline="noise")
    with pytest.raises(XaisecError, match="broadcast"):
        deletion_auc(model, x, good, 0, baseline=torch.zeros(3, 5, 5))
