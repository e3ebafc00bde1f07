"""Patch metrics: mass ratio at map and input resolution, area share, fidelity off the patch."""

from __future__ import annotations

import pytest
import torch

from xaisec.metrics import METRICS
from xaisec.metrics.patch import area_share, off_patch_fidelity, patch_mass_ratio, patch_metrics
from xaisec.utils.checks import XaisecError


def _mask(n: int, hw: int, top: int, left: int, side: int) -> torch.Tensor:
    m = torch.zeros(n, hw, hw)
    m[:, top:top + side, left:left + side] = 1
    return m


def test_uniform_map_gives_area_share() -> None:
    mask = _mask(3, 32, 0, 24, 8)
    maps = torch.ones(3, 8, 8)
    assert torch.allclose(patch_mass_ratio(maps, mask), torch.full((3,), 1 / 16))
    assert torch.allclose(patch_mass_ratio(maps, mask, upsample=True), torch.full((3,), 1 / 16))
    assert torch.allclose(area_share(mask), torch.full((3,), 64 / 1024))


def test_mass_all_inside_and_negative_part_ignored() -> None:
    mask = _mask(2, 32, 0, 24, 8)
    maps = torch.full((2, 8, 8), -5.0)  # negative evidence is ReLU'd away
    maps[:, 0:2, 6:8] = torch.tensor([1.0, 3.0])
    maps[1, 5, 5] = 2.0  # 2 of 10 units outside for the second image
    r = patch_mass_ratio(maps, mask)
    assert r[0].item() == pytest.approx(1.0)
    assert r[1].item() == pytest.approx(8 / 10)


def test_partial_cell_coverage_weights_cells() -> None:
    mask = _mask(1, 32, 0, 30, 2)  # 2x2 px: a quarter of the 4x4-px cell (0, 7)
    maps = torch.zeros(1, 8, 8)
    maps[0, 0, 7] = 1.0
    maps[0, 4, 4] = 1.0
    assert patch_mass_ratio(maps, mask).item() == pytest.approx(0.25 * 1 / 2)


def test_zero_map_gives_zero_and_upsampled_differs_from_cells() -> None:
    mask = _mask(2, 32, 0, 24, 8)
    maps = torch.zeros(2, 8, 8)
    maps[1, 1, 5] = 1.0  # next to the patch: bilinear upsampling spills some of it inside
    r = patch_mass_ratio(maps, mask)
    up = patch_mass_ratio(maps, mask, upsample=True)
    assert r[0].item() == 0.0 and up[0].item() == 0.0
    assert r[1].item() == 0.0 and 0 < up[1].item() < 0.5


def test_fidelity_ignores_the_patch_cells() -> None:
    g = torch.Generator().manual_seed(0)
    benign = torch.rand(4, 8, 8, generator=g)
    mask = _mask(4, 32, 0, 24, 8)
    adv = benign.clone()
    adv[:, 0:2, 6:8] = 50.0  # only the patch cells change
    assert torch.allclose(off_patch_fidelity(adv, benign, mask), torch.ones(4), atol=1e-5)
    other = torch.rand(4, 8, 8, generator=g)
    f = off_patch_fidelity(other, benign, mask)
    assert (f.abs() < 0.6).all()
    assert off_patch_fidelity(1.0 - benign, benign, mask).allclose(torch.full((4,), -1.0), atol=1e-5)
    assert off_patch_fidelity(torch.ones(4, 8, 8), benign, mask).eq(0).all()  # constant map: 0


def test_patch_metrics_names_and_shapes() -> None:
    mask = _mask(5, 16, 0, 12, 4)
    maps = torch.rand(5, 16, 16)
    out = patch_metrics(maps, maps, mask)
    assert set(out) == {"patch_mass", "patch_mass_up", "patch_mass_clean", "area_share", "fidelity_off_patch"}
    assert all(v.shape == (5,) for v in out.values())
    assert torch.allclose(out["patch_mass"], out["patch_mass_up"])  # map at input resolution: same thing
    for name in ("patch_mass_ratio", "patch_area_share", "off_patch_fidelity"):
        assert name in METRICS


def test_bad_shapes() -> None:
    with pytest.raises(XaisecError, match="N, h, w"):
        patch_mass_ratio(torch.rand(8, 8), torch.zeros(1, 32, 32))
    with pytest.raises(XaisecError, match="batch"):
        patch_mass_ratio(torch.rand(3, 8, 8), torch.zeros(2, 32, 32))
    with pytest.raises(XaisecError, match="same shape"):
        off_patch_fidelity(torch.rand(2, 8, 8), torch.rand(2, 4, 4), torch.zeros(2, 32, 32))
