"""Image metrics: SSIM against torchmetrics, noise rate, MSE and perturbation norms."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xaisec.metrics import image_mse, l2_norm, linf_norm, noise_rate, ssim
from xaisec.metrics.images import gaussian_filter, gaussian_kernel1d
from xaisec.utils.checks import XaisecError

FAST = settings(max_examples=50, deadline=None)


def _tm_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """torchmetrics 1.9.0's SSIM (its defaults: Gaussian 11, sigma 1.5) with data_range 1, per image."""
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure
    except ImportError:
        pytest.skip("torchmetrics is not installed")
    return structural_similarity_index_measure(y, x, data_range=1.0, reduction="none")


@pytest.mark.parametrize(
    ("shape", "noise", "seed"),
    [((4, 3, 32, 32), 0.1, 0), ((2, 1, 16, 20), 0.3, 1), ((3, 3, 9, 7), 1.0, 2), ((2, 3, 32, 32), 0.01, 3)],
)
def test_ssim_matches_torchmetrics(shape: tuple[int, ...], noise: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    y = (x + noise * torch.randn(shape, generator=g)).clamp(0, 1)
    ours = ssim(x, y)
    assert ours.shape == (shape[0],)
    torch.testing.assert_close(ours, _tm_ssim(x, y), atol=1e-5, rtol=0)
    torch.testing.assert_close(noise_rate(x, y), 1 - _tm_ssim(x, y), atol=1e-5, rtol=0)


@FAST
@given(st.integers(1, 3), st.sampled_from([1, 3]), st.integers(6, 12), st.integers(6, 12), st.integers(0, 2**31 - 1))
def test_ssim_is_one_on_identical_images(n: int, c: int, h: int, w: int, seed: int) -> None:
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(ssim(x, x), torch.ones(n), atol=1e-5, rtol=0)
    assert (noise_rate(x, x).abs() < 1e-5).all()
    y = (1 - x).clamp(0, 1)
    assert (ssim(x, y) < 1).all() and (ssim(x, y) <= ssim(x, x) + 1e-6).all()


def test_ssim_decreases_with_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    e = torch.randn(2, 3, 16, 16, generator=g)
    values = [ssim(x, (x + s * e).clamp(0, 1)) for s in (0.01, 0.05, 0.2)]
    assert (values[0] > values[1]).all() and (values[1] > values[2]).all()


def test_gaussian_kernel_is_normalised_and_symmetric() -> None:
    k = gaussian_kernel1d(11, 1.5, dtype=torch.float64)
    assert k.sum().item() == pytest.approx(1.0)
    assert torch.equal(k, k.flip(0)) and k.argmax().item() == 5
    const = torch.full((1, 2, 8, 8), 0.3)
    torch.testing.assert_close(gaussian_filter(const, 5, 2.0), const)
    with pytest.raises(XaisecError, match="odd"):
        gaussian_kernel1d(4, 1.0)


def test_mse_and_norms_hand_example() -> None:
    x = torch.zeros(2, 1, 2, 2)
    y = x.clone()
    y[0, 0, 0, 0] = 0.5
    y[0, 0, 1, 1] = 0.25
    y[1] = 0.1
    assert image_mse(x, y).tolist() == pytest.approx([(0.25 + 0.0625) / 4, 0.01])
    assert linf_norm(x, y).tolist() == pytest.approx([0.5, 0.1])
    assert l2_norm(x, y).tolist() == pytest.approx([math.sqrt(0.3125), 0.2])


def test_image_metrics_validate_input() -> None:
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(XaisecError, match="same shape"):
        ssim(x, torch.rand(2, 3, 16, 15))
    with pytest.raises(XaisecError, match=r"\[0, 1\]"):
        image_mse(x, x * 2 + 1)
    with pytest.raises(XaisecError, match="kernel_size"):
        ssim(torch.rand(1, 1, 5, 5), torch.rand(1, 1, 5, 5))
    with pytest.raises(XaisecError, match=r"\(N, C, H, W\)"):
        linf_norm(x[0], x[0])
