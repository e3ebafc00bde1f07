"""The soft-ReLU surrogate: exact forward, smooth derivative, curvature for double backprop, clean restore."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xaisec.interpreters.surrogate import (
    SOFT_RELU_EPS,
    SoftReLU,
    replace_relu,
    soft_hardtanh_fn,
    soft_relu,
    soft_relu_fn,
    with_soft_relu,
)
from xaisec.utils.checks import XaisecError


def current() -> dict[str, object]:
    return {"F.relu": F.relu, "F.relu_": F.relu_, "torch.relu": torch.relu, "torch.relu_": torch.relu_,
            "F.hardtanh": F.hardtanh, "F.hardtanh_": F.hardtanh_, "F.relu6": F.relu6}


ORIGINALS = current()


def soft_slope(z: torch.Tensor, eps: float = SOFT_RELU_EPS) -> torch.Tensor:
    r = torch.sqrt(z * z + eps)
    return torch.where(z >= 0, z / r, 1 + z / r)


def soft_slope6(z: torch.Tensor) -> torch.Tensor:
    return soft_slope(z) - soft_slope(z - 6)


class MixedReLUNet(nn.Module):
    """Every way a ReLU can be written: in-place and plain modules, F.relu (also in-place), torch.relu,
    Tensor.relu, Tensor.relu_."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 6, 6, 3, padding=1) for i in range(7))
        self.r_inplace = nn.ReLU(inplace=True)
        self.r_plain = nn.ReLU()
        self.fc = nn.Linear(6, 4)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)  # keeps activations O(1) through 7 layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.convs
        x = self.r_inplace(c[0](x))
        x = self.r_plain(c[1](x))
        x = F.relu(c[2](x))
        x = F.relu(c[3](x), inplace=True)
        x = torch.relu(c[4](x))
        x = c[5](x).relu()
        x = c[6](x)
        x.relu_()
        return self.fc(x.mean((2, 3)))


@pytest.fixture
def mixed() -> MixedReLUNet:
    torch.manual_seed(0)
    return MixedReLUNet().eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))


def test_soft_relu_fn_value_slope_and_curvature() -> None:
    z = torch.linspace(-0.3, 0.3, 601, dtype=torch.float64).requires_grad_(True)
    y = soft_relu_fn(z)
    assert torch.equal(y.detach(), torch.relu(z.detach()))
    (g,) = torch.autograd.grad(y.sum(), z, create_graph=True)
    torch.testing.assert_close(g, soft_slope(z.detach()), rtol=1e-12, atol=1e-12)
    (h,) = torch.autograd.grad(g.sum(), z)
    torch.testing.assert_close(h, SOFT_RELU_EPS / (z.detach() ** 2 + SOFT_RELU_EPS) ** 1.5, rtol=1e-10, atol=1e-10)


def test_forward_is_exact_for_every_relu_form(mixed: MixedReLUNet, images: torch.Tensor) -> None:
    plain = mixed(images.clone().requires_grad_(True))
    with soft_relu(mixed):
        soft = mixed(images.clone().requires_grad_(True))
    assert torch.equal(plain, soft)
    assert soft.grad_fn is not None


@pytest.mark.parametrize("form", ["module_inplace", "module", "F.relu", "F.relu_inplace", "F.relu_", "torch.relu",
                                  "torch.relu_", "Tensor.relu", "Tensor.relu_"])
def test_every_form_gets_the_soft_slope(form: str) -> None:
    z0 = torch.linspace(-0.05, 0.05, 41).requires_grad_(True)
    calls = {
        "module_inplace": lambda z: nn.ReLU(inplace=True)(z),
        "module": lambda z: nn.ReLU()(z),
        "F.relu": lambda z: F.relu(z),
        "F.relu_inplace": lambda z: F.relu(z, inplace=True),
        "F.relu_": lambda z: F.relu_(z),
        "torch.relu": lambda z: torch.relu(z),
        "torch.relu_": lambda z: torch.relu_(z),
        "Tensor.relu": lambda z: z.relu(),
        "Tensor.relu_": lambda z: z.relu_(),
    }
    with soft_relu():
        z = z0 * 1.0  # a non-leaf, so the in-place forms are legal
        y = calls[form](z)
        assert torch.equal(y.detach(), torch.clamp(z0.detach(), min=0))
        if form.endswith("_") or "inplace" in form:
            assert torch.equal(z.detach(), y.detach())  # in-place semantics kept
        (g,) = torch.autograd.grad(y.sum(), z0)
    torch.testing.assert_close(g, soft_slope(z0.detach()))


@pytest.mark.parametrize("form", ["ReLU6", "ReLU6_inplace", "Hardtanh06", "F.relu6", "F.relu6_inplace",
                                  "F.hardtanh", "F.hardtanh_"])
def test_clipped_relus_get_the_soft_slope_at_both_kinks(form: str) -> None:
    z0 = torch.cat([torch.linspace(-0.05, 0.05, 21), torch.linspace(5.95, 6.05, 21)]).requires_grad_(True)
    calls = {
        "ReLU6": lambda z: nn.ReLU6()(z),
        "ReLU6_inplace": lambda z: nn.ReLU6(inplace=True)(z),
        "Hardtanh06": lambda z: nn.Hardtanh(0.0, 6.0)(z),
        "F.relu6": lambda z: F.relu6(z),
        "F.relu6_inplace": lambda z: F.relu6(z, inplace=True),
        "F.hardtanh": lambda z: F.hardtanh(z, 0.0, 6.0),
        "F.hardtanh_": lambda z: F.hardtanh_(z, 0.0, 6.0),
    }
    with soft_relu():
        z = z0 * 1.0
        y = calls[form](z)
        assert torch.equal(y.detach(), torch.clamp(z0.detach(), 0, 6))
        (g,) = torch.autograd.grad(y.sum(), z0)
    torch.testing.assert_close(g, soft_slope6(z0.detach()))
    assert current() == ORIGINALS


def test_soft_hardtanh_fn_general_bounds() -> None:
    z = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    y = soft_hardtanh_fn(z, -1.0, 1.0)
    assert torch.equal(y.detach(), F.hardtanh(z.detach()))
    (g,) = torch.autograd.grad(y.sum(), z)
    torch.testing.assert_close(g, soft_slope(z.detach() + 1) - soft_slope(z.detach() - 1))


def hvp_of_grad_map_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d/dx of ||d f_0 / dx||^2 (a Hessian-vector product), via double backprop."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, 0].sum(), x, create_graph=True)
    (h,) = torch.autograd.grad((g**2).sum(), x, allow_unused=True)
    return torch.zeros_like(x) if h is None else h


def test_hessian_vector_product_nonzero_only_with_surrogate(mixed: MixedReLUNet, images: torch.Tensor) -> None:
    plain = hvp_of_grad_map_loss(mixed, images)
    with soft_relu(mixed):
        soft = hvp_of_grad_map_loss(mixed, images)
    assert plain.abs().max() < 1e-12  # piecewise-linear network: no curvature
    assert soft.abs().max() > 1e-5
    assert torch.isfinite(soft).all()


class ReLU6Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.act = nn.ReLU6(inplace=True)
        self.fc = nn.Linear(6, 3)
        for m in (self.c1, self.c2):
            nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu6(self.c2(self.act(3 * self.c1(x)))).mean((2, 3)))


def test_relu6_network_gets_curvature(images: torch.Tensor) -> None:
    torch.manual_seed(1)
    net = ReLU6Net().eval()
    plain = hvp_of_grad_map_loss(net, images)
    with soft_relu(net):
        assert torch.equal(net(images.clone().requires_grad_(True)), net(images))
        soft = hvp_of_grad_map_loss(net, images)
    assert plain.abs().max() < 1e-12 and soft.abs().max() > 1e-5
    assert "forward" not in vars(net.act)


def test_everything_restored_after_context_and_after_exception(mixed: MixedReLUNet, images: torch.Tensor) -> None:
    assert current() == ORIGINALS
    with soft_relu(mixed):
        assert F.relu is not ORIGINALS["F.relu"] and torch.relu is not ORIGINALS["torch.relu"]
        assert "relu" in vars(torch.Tensor) and "forward" in vars(mixed.r_inplace)
    assert current() == ORIGINALS
    assert "relu" not in vars(torch.Tensor) and "relu_" not in vars(torch.Tensor)
    assert "forward" not in vars(mixed.r_inplace) and "forward" not in vars(mixed.r_plain)
    with pytest.raises(RuntimeError, match="boom"), soft_relu(mixed):
        raise RuntimeError("boom")
    assert current() == ORIGINALS and "relu" not in vars(torch.Tensor)
    assert "forward" not in vars(mixed.r_inplace)
    # and the plain model is back to the hard ReLU derivative
    z0 = torch.tensor([-0.001, 0.001], requires_grad=True)
    (g,) = torch.autograd.grad(F.relu(z0).sum(), z0)
    assert g.tolist() == [0.0, 1.0]


def test_contexts_nest_innermost_wins() -> None:
    z0 = torch.tensor([-0.005, 0.005], requires_grad=True)
    with soft_relu():
        with replace_relu(None, lambda z: torch.clamp(z, min=0) * 2 - torch.clamp(z, min=0)):
            (g,) = torch.autograd.grad(F.relu(z0 * 1.0).sum(), z0)
            assert g.tolist() == [0.0, 1.0]  # the inner (hard-slope) replacement
        (g,) = torch.autograd.grad(F.relu(z0 * 1.0).sum(), z0)
        torch.testing.assert_close(g, soft_slope(z0.detach()))  # back to the outer one
    assert current() == ORIGINALS


def test_no_grad_calls_use_exact_kernel(mixed: MixedReLUNet, images: torch.Tensor) -> None:
    with soft_relu(mixed), torch.no_grad():
        out = mixed(images)
    assert torch.equal(out, mixed(images).detach())


def test_soft_relu_module_and_copy(mixed: MixedReLUNet, images: torch.Tensor) -> None:
    z0 = torch.linspace(-0.05, 0.05, 11).requires_grad_(True)
    m = SoftReLU()
    assert isinstance(m, nn.ReLU)
    (g,) = torch.autograd.grad(m(z0).sum(), z0)
    torch.testing.assert_close(g, soft_slope(z0.detach()))

    soft = with_soft_relu(mixed)
    assert isinstance(soft.r_inplace, SoftReLU) and soft.r_inplace.inplace
    assert type(mixed.r_inplace) is nn.ReLU  # original untouched
    assert torch.equal(soft(images), mixed(images))
    assert hvp_of_grad_map_loss(soft, images).abs().max() > 1e-5
    assert hvp_of_grad_map_loss(mixed, images).abs().max() < 1e-12
    assert current() == ORIGINALS


def test_bad_arguments() -> None:
    with pytest.raises(XaisecError, match="eps"), soft_relu(eps=0.0):
        pass
    with pytest.raises(XaisecError, match=r"nn\.Module"), soft_relu("not a model"):  # type: ignore[arg-type]
        pass
    with pytest.raises(XaisecError):
        soft_relu_fn(torch.zeros(2), eps=-1.0)
    with pytest.raises(XaisecError):
        SoftReLU(eps=0)
    with pytest.raises(XaisecError):
        with_soft_relu(3)  # type: ignore[arg-type]
    assert current() == ORIGINALS


def test_huge_activations_stay_exact_and_copy_survives_deepcopy(mixed: MixedReLUNet, images: torch.Tensor) -> None:
    import copy

    z0 = torch.tensor([-3e38, -1e20, 1e20, 3e38], requires_grad=True)
    y = soft_relu_fn(z0)
    assert torch.equal(y.detach(), torch.relu(z0.detach()))
    (g,) = torch.autograd.grad(y.sum(), z0)
    assert torch.isfinite(g).all()
    twice = copy.deepcopy(with_soft_relu(mixed))
    assert twice.forward.__self__ is twice
    assert torch.equal(twice(images), mixed(images))
    assert hvp_of_grad_map_loss(twice, images).abs().max() > 1e-5


# -- the fused op against the composite reference ------------------------------------------------------------


def random_pre_activations(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    """Gaussian values of several scales, with points near the kinks of ReLU (0) and ReLU6 (0, 6)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=gen, dtype=dtype) * torch.tensor([0.02, 0.3, 3.0], dtype=dtype).repeat(
        shape[-1] // 3 + 1)[: shape[-1]]
    z.view(-1)[::7] += 6.0  # some near the upper kink of ReLU6
    return z


def first_and_second(fn, z0: torch.Tensor, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """Forward value, vjp d<y, v>/dz and the second-order term d<grad, w>/dz of fn at z0, for random v, w."""
    gen = torch.Generator().manual_seed(seed)
    v, w = torch.randn(z0.shape, generator=gen, dtype=z0.dtype), torch.randn(z0.shape, generator=gen, dtype=z0.dtype)
    z = z0.clone().requires_grad_(True)
    y = fn(z)
    (g,) = torch.autograd.grad(y, z, v, create_graph=True)
    (h,) = torch.autograd.grad(g, z, w)
    return y.detach(), g.detach(), h


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_matches_composite_relu_and_clipped(dtype: torch.dtype) -> None:
    z0 = random_pre_activations((4, 6, 5, 5), dtype)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}
    cases = [
        (lambda z: soft_relu_fn(z), lambda z: soft_relu_fn(z, fused=False)),
        (lambda z: soft_relu_fn(z, 1e-2), lambda z: soft_relu_fn(z, 1e-2, fused=False)),
        (lambda z: soft_hardtanh_fn(z, 0.0, 6.0), lambda z: soft_hardtanh_fn(z, 0.0, 6.0, fused=False)),
        (lambda z: soft_hardtanh_fn(z, -1.0, 1.0), lambda z: soft_hardtanh_fn(z, -1.0, 1.0, fused=False)),
    ]
    for fused, composite in cases:
        yf, gf, hf = first_and_second(fused, z0)
        yc, gc, hc = first_and_second(composite, z0)
        assert torch.equal(yf, yc)  # bit-exact forward
        torch.testing.assert_close(gf, gc, **tol)
        torch.testing.assert_close(hf, hc, **tol)
        assert hf.abs().max() > 0


def test_fused_matches_composite_in_networks_with_every_relu_form(mixed: MixedReLUNet, images: torch.Tensor) -> None:
    torch.manual_seed(1)
    relu6 = ReLU6Net().eval()
    for net in (mixed, relu6):
        with soft_relu(net, fused=False):
            ref = hvp_of_grad_map_loss(net, images)
            ref_out = net(images.clone().requires_grad_(True))
        with soft_relu(net):
            fused = hvp_of_grad_map_loss(net, images)
            out = net(images.clone().requires_grad_(True))
        assert torch.equal(out, ref_out)
        assert ref.abs().max() > 1e-5
        torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    assert current() == ORIGINALS


def test_fused_gradcheck_and_gradgradcheck_float64() -> None:
    from xaisec.interpreters.surrogate import _SoftSlope

    z = random_pre_activations((2, 3, 3, 3), torch.float64, seed=3)
    z = torch.where(z.abs() < 2e-3, z + 5e-3, z)  # the slope jumps at the kink: keep finite differences off it
    z = torch.where((z - 6).abs() < 2e-3, z + 5e-3, z).requires_grad_(True)
    g = torch.randn(z.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    # the backward node g * h(z) and its hand-written derivatives (ReLU: one kink; hardtanh: two)
    assert torch.autograd.gradcheck(lambda a, b: _SoftSlope.apply(a, b, ((0.0, 1.0),), 1e-2), (g, z))
    assert torch.autograd.gradcheck(lambda a, b: _SoftSlope.apply(a, b, ((0.0, 1.0), (6.0, -1.0)), 1e-2), (g, z))
    # second derivatives of the fused ops consistent with their first
    assert torch.autograd.gradgradcheck(lambda a: soft_relu_fn(a, 1e-2), (z,))
    assert torch.autograd.gradgradcheck(lambda a: soft_hardtanh_fn(a, 0.0, 6.0, 1e-2), (z,))


def test_exact_relu_backward_gives_the_real_gradient(mixed: MixedReLUNet, images: torch.Tensor) -> None:
    from xaisec.interpreters.surrogate import exact_relu_backward

    torch.manual_seed(1)
    for net in (mixed, ReLU6Net().eval()):
        x = images.clone().requires_grad_(True)
        real = torch.autograd.grad(net(x).logsumexp(1).sum(), x)[0]
        with soft_relu(net):
            out = net(x)
        with exact_relu_backward():
            (exact,) = torch.autograd.grad(out.logsumexp(1).sum(), x, retain_graph=True)
        (soft,) = torch.autograd.grad(out.logsumexp(1).sum(), x)  # closed: the soft slope again
        torch.testing.assert_close(exact, real, rtol=1e-6, atol=1e-7)
        assert (soft - real).abs().max() > 1e-6
    z = random_pre_activations((50,), torch.float64).requires_grad_(True)
    with exact_relu_backward():
        assert torch.autograd.gradcheck(soft_relu_fn, (torch.where(z.abs() < 1e-3, z + 1e-2, z).detach()
                                                       .requires_grad_(True),))


def test_fused_third_derivative_raises() -> None:
    z = torch.linspace(-0.2, 0.2, 11, requires_grad=True)
    (g,) = torch.autograd.grad(soft_relu_fn(z).sum(), z, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), z, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(h.sum(), z)
