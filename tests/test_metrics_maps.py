"""Map-similarity metrics: hand examples, properties (hypothesis) and agreement with scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from xaisec.metrics import (
    binarize_top_k,
    kendall_tau,
    map_iou,
    map_l1,
    map_l2,
    map_mse,
    minmax_normalize,
    spearman,
)
from xaisec.utils.checks import XaisecError

FAST = settings(max_examples=50, deadline=None)


@st.composite
def map_pairs(draw: st.DrawFn, max_value: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (N, H, W) maps of small integers (many ties), as float32."""
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    vals = st.lists(st.integers(0, max_value), min_size=n * h * w, max_size=n * h * w)
    a = torch.tensor(draw(vals), dtype=torch.float32).view(n, h, w)
    b = torch.tensor(draw(vals), dtype=torch.float32).view(n, h, w)
    return a, b


def _non_constant(m: torch.Tensor) -> bool:
    flat = m.flatten(1)
    return bool((flat.max(1).values > flat.min(1).values).all())


# ------------------------------------------------------------------ L1 / L2 / MSE


def test_distances_hand_example() -> None:
    a = torch.tensor([[[0.0, 2.0], [4.0, 4.0]]])  # normalised: 0, .5, 1, 1
    b = torch.tensor([[[1.0, 1.0], [0.0, 3.0]]])  # normalised: 1/3, 1/3, 0, 1
    d = [1 / 3, 1 / 6, 1.0, 0.0]
    assert map_l1(a, b).item() == pytest.approx(sum(d) / 4)
    assert map_l2(a, b).item() == pytest.approx(math.sqrt(sum(x * x for x in d)) / 2)
    assert map_mse(a, b).item() == pytest.approx(sum(x * x for x in d) / 4)
    assert map_l1(a, b, normalize="none").item() == pytest.approx((1 + 1 + 4 + 1) / 4)


@FAST
@given(map_pairs())
def test_l1_symmetric_in_unit_range_and_zero_iff_normalised_maps_equal(pair: tuple) -> None:
    a, b = pair
    d_ab, d_ba = map_l1(a, b), map_l1(b, a)
    assert torch.equal(d_ab, d_ba)
    assert ((d_ab >= 0) & (d_ab <= 1)).all()
    same = (minmax_normalize(a) == minmax_normalize(b)).flatten(1).all(1)
    assert torch.equal(d_ab == 0, same)
    assert (map_l1(a, a) == 0).all()
    assert (map_l1(a, 3 * a + 2) == 0).all()  # invariant to positive affine maps, exactly
    for fn in (map_l2, map_mse):
        v = fn(a, b)
        assert torch.equal(v, fn(b, a)) and ((v >= 0) & (v <= 1)).all()
        assert torch.equal(v == 0, same)


def test_distance_rejects_bad_input() -> None:
    with pytest.raises(XaisecError, match="same shape"):
        map_l1(torch.rand(2, 4, 4), torch.rand(2, 4, 5))
    with pytest.raises(XaisecError, match=r"\(N, H, W\)"):
        map_l1(torch.rand(4, 4), torch.rand(4, 4))
    with pytest.raises(XaisecError, match="NaN"):
        map_l1(torch.full((1, 2, 2), float("nan")), torch.rand(1, 2, 2))
    with pytest.raises(XaisecError, match="normalisation"):
        map_l1(torch.rand(1, 2, 2), torch.rand(1, 2, 2), normalize="sum")


def test_channel_dimension_of_one_is_accepted() -> None:
    a, b = torch.rand(3, 1, 5, 5), torch.rand(3, 5, 5)
    assert torch.equal(map_l1(a, b), map_l1(a[:, 0], b))


# ------------------------------------------------------------------ IoU


def test_iou_hand_example() -> None:
    a = torch.tensor([[9.0, 8.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]).view(1, 2, 5)
    b = torch.tensor([[0.0, 8.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]).view(1, 2, 5)
    assert map_iou(a, b, k=20).item() == pytest.approx(1 / 3)  # {0, 1} vs {1, 2}
    assert map_iou(a, b, k=10).item() == 0.0  # {0} vs {2}
    assert map_iou(a, b, k=100).item() == 1.0


def test_top_k_ties_break_to_the_lower_index() -> None:
    m = torch.tensor([[[1.0, 2.0, 2.0, 2.0, 0.0]]])
    assert binarize_top_k(m, 40).flatten().tolist() == [False, True, True, False, False]
    const = torch.zeros(2, 3, 5)
    mask = binarize_top_k(const, 20)
    assert mask.sum().item() == 2 * 3 and mask[:, 0, :3].all()  # round(0.2 * 15) = 3, row-major first
    with pytest.raises(XaisecError, match="percentage"):
        binarize_top_k(const, 0)


@FAST
@given(map_pairs(max_value=3), st.sampled_from([5.0, 20.0, 50.0]))
def test_iou_in_unit_range_symmetric_and_one_on_identical(pair: tuple, k: float) -> None:
    a, b = pair
    v = map_iou(a, b, k=k)
    assert ((v >= 0) & (v <= 1)).all()
    assert torch.equal(v, map_iou(b, a, k=k))
    assert (map_iou(a, a, k=k) == 1).all()
    assert torch.equal(map_iou(a, b, k=k), map_iou(minmax_normalize(a), minmax_normalize(b), k=k))


# ------------------------------------------------------------------ rank correlations


@FAST
@given(map_pairs())
def test_rank_correlations_match_scipy_with_ties(pair: tuple) -> None:
    a, b = (m.double() for m in pair)
    tau, rho = kendall_tau(a, b), spearman(a, b)
    for i in range(a.shape[0]):
        x, y = a[i].flatten().numpy(), b[i].flatten().numpy()
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert math.isnan(tau[i]) and math.isnan(rho[i])  # scipy returns NaN too
            continue
        assert tau[i].item() == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-6)
        assert rho[i].item() == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-6)


@FAST
@given(map_pairs())
def test_rank_correlations_bounded_and_one_on_identical(pair: tuple) -> None:
    a, b = pair
    if not (_non_constant(a) and _non_constant(b)):
        return
    for fn in (kendall_tau, spearman):
        v = fn(a, b)
        assert ((v >= -1) & (v <= 1)).all()
        assert torch.allclose(fn(a, a), torch.ones(a.shape[0]))
        assert torch.allclose(fn(a, -a), -torch.ones(a.shape[0]))


@pytest.mark.parametrize("shape", [(2, 32, 32), (3, 7, 13)])
def test_rank_correlations_match_scipy_on_float_maps(shape: tuple[int, int, int]) -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.rand(shape, generator=g)
    b = (a + 0.5 * torch.rand(shape, generator=g)).round(decimals=1)  # correlated, with ties in b
    tau, rho = kendall_tau(a, b), spearman(a, b)
    for i in range(shape[0]):
        x, y = a[i].flatten().numpy(), b[i].flatten().numpy()
        assert tau[i].item() == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-6)
        assert rho[i].item() == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-6)
    assert (tau > 0.3).all()


def test_rank_correlations_are_nan_for_constant_maps() -> None:
    a, b = torch.zeros(1, 4, 4), torch.rand(1, 4, 4)
    assert math.isnan(kendall_tau(a, b).item()) and math.isnan(spearman(a, b).item())
