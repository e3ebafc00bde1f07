"""Generators: shapes, tanh range, grouped copies equal separate generators, errors."""

from __future__ import annotations

import pytest
import torch

from xaisec.universal.generators import build_generator
from xaisec.utils.checks import XaisecError


@pytest.mark.parametrize("name", ["resnet", "unet"])
def test_shape_and_tanh_range(name: str) -> None:
    gen = build_generator(name, 3, (32, 32), ngf=4, blocks=1, seed=0)
    out = gen(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 3, 32, 32)
    assert out.abs().max() < 1 and out.std() > 0


@pytest.mark.parametrize("name", ["resnet", "unet"])
def test_grouped_generator_equals_separate_generators(name: str) -> None:
    """groups=G is G independent generators: slice the weights, run each alone, compare."""
    g = 3
    grouped = build_generator(name, 3, (16, 16), ngf=4, blocks=1, groups=g, seed=1)
    noise = torch.rand(1, g * 3, 16, 16, generator=torch.Generator().manual_seed(2))
    out = grouped(noise)
    for i in range(g):
        single = build_generator(name, 3, (16, 16), ngf=4, blocks=1, groups=1, seed=5)
        single.load_state_dict({k: v.chunk(g, 0)[i] for k, v in grouped.state_dict().items()})
        ref = single(noise[:, 3 * i: 3 * i + 3])
        torch.testing.assert_close(out[:, 3 * i: 3 * i + 3], ref, rtol=1e-4, atol=1e-5)


def test_grouped_generators_are_independent() -> None:
    """The gradient of generator 0's output reaches no weight of generator 1."""
    gen = build_generator("resnet", 3, (16, 16), ngf=4, blocks=1, groups=2, seed=0)
    gen(torch.rand(1, 6, 16, 16))[:, :3].sum().backward()
    w = gen.net[1].weight.grad  # first conv: rows of group 1 are the second half
    assert w[: w.shape[0] // 2].abs().sum() > 0 and w[w.shape[0] // 2:].abs().sum() == 0


def test_same_seed_same_weights_and_unet_small_images() -> None:
    a = build_generator("unet", 1, (16, 16), ngf=4, seed=3)
    b = build_generator("unet", 1, (16, 16), ngf=4, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert a(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)  # 4 levels at 16 px


def test_errors() -> None:
    with pytest.raises(XaisecError, match="unknown generator"):
        build_generator("vae", 3, (32, 32))
    with pytest.raises(XaisecError, match="divisible by 4"):
        build_generator("resnet", 3, (30, 30))
    with pytest.raises(XaisecError, match="ngf"):
        build_generator("resnet", 3, (32, 32), ngf=0)
