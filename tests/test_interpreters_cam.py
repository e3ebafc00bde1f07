"""CAM, Grad-CAM, Grad-CAM++: cross-checked against torchcam 0.5.0 and Captum, differentiable, batched,
hook hygiene and input errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xaisec.interpreters import get, resize_maps
from xaisec.interpreters.cam import CAM, GradCAM, GradCAMpp
from xaisec.models import wrap
from xaisec.utils.checks import XaisecError

MODELS = ["resnet20_random", "resnet20_trained"]
NAMES = ["cam", "gradcam", "gradcam_pp"]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b.detach()).abs().max() / b.detach().abs().max().clamp_min(1e-30))


@pytest.fixture
def cifar_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(6, 3, 32, 32, generator=g), torch.tensor([0, 3, 5, 7, 9, 2])


@pytest.mark.parametrize("model_name", MODELS)
def test_cam_matches_torchcam(request, model_name, cifar_batch):
    methods = pytest.importorskip("torchcam.methods")
    model = request.getfixturevalue(model_name)
    x, t = cifar_batch
    ours = CAM(model).raw_maps(x, t)
    with methods.CAM(model, "net.layer3", "net.linear", input_shape=(3, 32, 32)) as ext:
        scores = model(x)
        ref = ext(class_idx=t.tolist(), scores=scores, normalized=False)[0]
    assert ours.shape == (6, 8, 8)
    assert rel_err(ours, ref) <= 1e-4
    assert (ours < 0).any()  # no ReLU: negative evidence is kept (the ADV^2 convention)


@pytest.mark.parametrize("model_name", MODELS)
def test_gradcam_matches_torchcam_and_captum(request, model_name, cifar_batch):
    methods = pytest.importorskip("torchcam.methods")
    captum_attr = pytest.importorskip("captum.attr")
    model = request.getfixturevalue(model_name)
    x, t = cifar_batch
    ours = GradCAM(model).raw_maps(x, t)
    with methods.GradCAM(model, "net.layer3", input_shape=(3, 32, 32)) as ext:
        scores = model(x)
        ref_tc = ext(class_idx=t.tolist(), scores=scores, normalized=False)[0]
    assert rel_err(ours, ref_tc) <= 1e-4
    lgc = captum_attr.LayerGradCam(model, model.net.layer3)
    ref_cap = lgc.attribute(x, target=t, relu_attributions=True)[:, 0]
    assert rel_err(ours, ref_cap) <= 1e-4
    no_relu = GradCAM(model, relu=False).raw_maps(x, t)
    assert rel_err(no_relu, lgc.attribute(x, target=t)[:, 0]) <= 1e-4
    assert (no_relu < 0).any() and (ours >= 0).all()


@pytest.mark.parametrize("model_name", MODELS)
def test_gradcam_pp_matches_torchcam(request, model_name, cifar_batch):
    """torchcam 0.5.0's GradCAMpp skips its alpha division (an in-place divide on a masked copy), so the
    reference is its SmoothGradCAMpp with one noise-free sample and no epsilon, which computes alpha; on a
    global-pooling head both use the same denominator as the paper."""
    methods = pytest.importorskip("torchcam.methods")
    model = request.getfixturevalue(model_name)
    x, t = cifar_batch
    ours = GradCAMpp(model).raw_maps(x, t)
    noise_free = {"num_samples": 1, "std": 1e-30, "input_shape": (3, 32, 32)}
    with methods.SmoothGradCAMpp(model, "net.layer3", **noise_free) as ext:
        model(x)
        ref = ext(class_idx=t.tolist(), normalized=False, eps=0.0)[0]
    assert rel_err(ours, ref) <= 1e-4
    # and it is not Grad-CAM: the alpha weighting changes the map
    plain = GradCAM(model).raw_maps(x, t)
    peak = ours.flatten(1).amax(1)[:, None, None]
    assert rel_err(ours / peak, plain / plain.flatten(1).amax(1)[:, None, None]) > 1e-3


class FlatHead(nn.Module):
    """conv features (4 x 4 x 4) then a non-pooling MLP head, so d y / d A varies over positions."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_gradcam_pp_matches_paper_formula_with_true_derivatives():
    """alpha from the actual 2nd and 3rd derivatives of exp(y_c) w.r.t. A (torch.func), on a head where
    d y / d A varies over positions (where torchcam's denominator and the paper's differ)."""
    torch.manual_seed(0)
    model = wrap(FlatHead().double(), cam_layer="features", classes=["a", "b", "c"]).double().eval()
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0, 1, 2])
    ours = GradCAMpp(model).raw_maps(x, t)
    for n in range(3):
        a = model.net.features(model.normalize(x[n:n + 1]))[0]  # (4, 4, 4)

        def s(a_flat: torch.Tensor, n: int = n) -> torch.Tensor:
            return torch.exp(model.net.head(a_flat.view(1, 4, 4, 4))[0, t[n]])

        flat = a.flatten()
        d1 = torch.func.grad(s)(flat)
        d2 = torch.func.hessian(s)(flat).diagonal()
        d3 = torch.func.jacfwd(lambda v: torch.func.hessian(s)(v).diagonal())(flat).diagonal()
        sum_a = a.sum((1, 2)).repeat_interleave(16)
        den = 2 * d2 + sum_a * d3
        alpha = torch.where(den != 0, d2 / torch.where(den != 0, den, 1.0), 0.0)
        w = (alpha * d1.clamp_min(0)).view(4, 16).sum(1)
        ref = torch.relu((w[:, None, None] * a).sum(0)) / s(flat)  # ours drops the exp(y_c) factor
        assert ref.abs().max() > 0
        assert rel_err(ours[n], ref) <= 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_call_is_upsampled_normalised_raw_map(resnet20_random, cifar_batch, name):
    x, t = cifar_batch
    g = get(name, resnet20_random, normalize="none")
    raw = g.raw_maps(x, t)
    maps = g(x, t)
    assert maps.shape == (6, 32, 32) and not maps.requires_grad
    assert torch.allclose(maps, resize_maps(raw, (32, 32)))
    mm = get(name, resnet20_random)(x, t)
    assert mm.amin((1, 2)).abs().max() < 1e-6 and (mm.amax((1, 2)) - 1).abs().max() < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_target_none_is_predicted_class(tiny_model, tiny_batch, name):
    x, _ = tiny_batch
    g = get(name, tiny_model)
    pred = tiny_model(x).argmax(1)
    assert torch.allclose(g.raw_maps(x), g.raw_maps(x, pred))
    assert torch.allclose(g(x), g(x, pred))


@pytest.mark.parametrize("name", NAMES)
def test_differentiable_maps_backpropagate_to_x(resnet20_random, cifar_batch, name):
    x, t = cifar_batch
    x = x.clone().requires_grad_(True)
    weights = torch.rand(32, 32, generator=torch.Generator().manual_seed(0))
    maps = get(name, resnet20_random)(x, t, create_graph=True)
    assert maps.requires_grad
    (grad,) = torch.autograd.grad((maps * weights).sum(), x)
    assert torch.isfinite(grad).all()
    assert (grad.flatten(1).abs().sum(1) > 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_create_graph_gradient_matches_finite_differences(tiny_model, tiny_batch, name):
    model = tiny_model.double()
    x, t = tiny_batch
    x = (x.double() * 0.8 + 0.1).requires_grad_(True)
    g = get(name, model, normalize="none")
    weights = torch.rand(16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def loss(z: torch.Tensor, create_graph: bool) -> torch.Tensor:
        return (g(z, t, create_graph=create_graph) * weights).sum()

    (grad,) = torch.autograd.grad(loss(x, True), x)
    d = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h = 1e-6
    fd = (loss((x + h * d).detach(), False) - loss((x - h * d).detach(), False)) / (2 * h)
    assert float((grad * d).sum()) == pytest.approx(float(fd), rel=1e-4, abs=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_one_at_a_time(resnet20_random, cifar_batch, name):
    x, t = cifar_batch
    g = get(name, resnet20_random)
    batched = g(x, t)
    single = torch.cat([g(x[i:i + 1], t[i:i + 1]) for i in range(len(x))])
    assert torch.allclose(batched, single, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_hooks_are_removed_and_grad_mode_restored(resnet20_random, cifar_batch, name):
    x, t = cifar_batch
    layer = resnet20_random.net.layer3
    before = (len(layer._forward_hooks), len(layer._backward_hooks))
    g = get(name, resnet20_random)
    g(x, t)
    g(x.requires_grad_(True), t, create_graph=True)
    with pytest.raises(XaisecError):
        g(x, torch.tensor([0, 1]))
    assert (len(layer._forward_hooks), len(layer._backward_hooks)) == before
    assert torch.is_grad_enabled()
    with torch.no_grad():
        maps = g(x.detach(), t)
        assert not torch.is_grad_enabled()
    assert torch.allclose(maps, g(x.detach(), t))
    # and no parameter gradients were accumulated
    assert all(p.grad is None for p in resnet20_random.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_frozen_model_gives_the_same_maps(resnet20_random, cifar_batch, name):
    x, t = cifar_batch
    g = get(name, resnet20_random)
    expected = g(x, t)
    for p in resnet20_random.parameters():
        p.requires_grad_(False)
    assert torch.allclose(g(x, t), expected)
    xg = x.clone().requires_grad_(True)
    maps = g(xg, t, create_graph=True)
    assert torch.allclose(maps, expected, atol=1e-6)
    assert torch.autograd.grad(maps.sum(), xg)[0].abs().sum() > 0


class ConvThenInplaceRelu(nn.Module):
    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.act = nn.ReLU(inplace=inplace)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


@pytest.mark.parametrize("name", NAMES)
def test_inplace_op_after_the_layer_does_not_change_the_map(name):
    torch.manual_seed(0)
    plain = ConvThenInplaceRelu(inplace=False)
    inplace = ConvThenInplaceRelu(inplace=True)
    inplace.load_state_dict(plain.state_dict())
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    maps = [get(name, wrap(m, cam_layer="conv", fc_layer="fc").eval()).raw_maps(x, 1)
            for m in (plain, inplace)]
    assert torch.allclose(maps[0], maps[1])


def test_cam_fc_option_and_default(tiny_model, tiny_batch):
    x, t = tiny_batch
    by_default = CAM(tiny_model).raw_maps(x, t)
    explicit = CAM(tiny_model, layer="features", fc="fc").raw_maps(x, t)
    assert torch.equal(by_default, explicit)
    a = tiny_model.net.features(tiny_model.normalize(x))
    manual = torch.einsum("nk,nkhw->nhw", tiny_model.net.fc.weight[t], a)
    assert torch.allclose(by_default, manual, atol=1e-6)
    # without fc_layer: the model's only nn.Linear is used
    bare = wrap(tiny_model.net, mean=(0.5,) * 3, std=(0.25,) * 3, cam_layer="features")
    assert torch.allclose(CAM(bare).raw_maps(x, t), by_default)


def test_bad_inputs_raise_xaisec_error(tiny_model, tiny_batch, resnet20_random):
    x, t = tiny_batch
    g = GradCAM(tiny_model)
    with pytest.raises(XaisecError, match="shape"):
        g(x[0], t[0])
    with pytest.raises(XaisecError, match=r"\[0, 1\]"):
        g(x * 3, t)
    with pytest.raises(XaisecError, match="target"):
        g(x, torch.tensor([0, 1]))
    with pytest.raises(XaisecError, match="target classes"):
        g(x, 7)
    with pytest.raises(XaisecError, match="not found"):
        GradCAM(tiny_model, layer="nope")
    with pytest.raises(XaisecError, match="needs a layer"):
        GradCAM(tiny_model.net)
    with pytest.raises(XaisecError, match="channels"):
        CAM(resnet20_random, layer="layer2").raw_maps(torch.rand(2, 3, 32, 32), 0)
    with pytest.raises(XaisecError, match=r"\(N, K, h, w\)"):
        GradCAM(tiny_model, layer="fc")(x, t)
    with pytest.raises(XaisecError, match="did not run"):
        GradCAM(tiny_model, layer=nn.Conv2d(3, 3, 1))(x, t)


def test_layer_used_twice_is_refused():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(self.conv(x)).mean((2, 3)))

    model = wrap(Twice(), cam_layer="conv", fc_layer="fc")
    with pytest.raises(XaisecError, match="more than once"):
        GradCAM(model)(torch.rand(2, 3, 8, 8), 0)
    assert len(model.net.conv._forward_hooks) == 0


def test_explain_returns_the_logits_of_its_own_forward_pass(tiny_model, tiny_batch):
    x, y = tiny_batch
    for name in ("cam", "gradcam", "gradcam_pp"):
        xr = x.clone().requires_grad_(True)
        maps, logits = get(name, tiny_model).explain(xr, y, create_graph=True)
        assert logits is not None and torch.allclose(logits, tiny_model(x), atol=1e-6)
        (g,) = torch.autograd.grad(logits.sum() + maps.sum(), xr)  # both differentiable in x
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_detach_weights_gives_the_same_input_gradient_on_relu_nets(tiny_model, tiny_batch):
    # the head after the layer is piecewise linear, so the gradient weights are piecewise constant in x
    x, y = tiny_batch
    grads = []
    for detach in (False, True):
        xr = x.clone().requires_grad_(True)
        raw = GradCAM(tiny_model, detach_weights=detach).attribute(xr, y, create_graph=True)
        (g,) = torch.autograd.grad((raw[:, :4, :4] ** 2).sum(), xr)
        grads.append(g)
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    # on a smooth head the weights' own derivative matters and detaching changes the gradient
    smooth = wrap(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Softplus(), nn.Conv2d(4, 4, 3, padding=1),
                                nn.Softplus(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)),
                  cam_layer="1")
    out = []
    for detach in (False, True):
        xr = x.clone().requires_grad_(True)
        raw = GradCAM(smooth, relu=False, detach_weights=detach).attribute(
            xr, torch.zeros(6, dtype=torch.long), create_graph=True)
        out.append(torch.autograd.grad(raw.pow(2).sum(), xr)[0])
    assert out[0].abs().sum() > 0
    assert (out[0] - out[1]).norm() > 1e-3 * out[0].norm()
