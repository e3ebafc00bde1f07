"""RTS interpreter: the class-conditional masking network and the interpreter that loads it."""

import pytest
import torch

from xaisec.interpreters import get
from xaisec.interpreters.rts import RTS, SaliencyNet
from xaisec.models import save_safetensors
from xaisec.utils.checks import XaisecError


def _net(k: int = 5, c: int = 3, seed: int = 0, **kw) -> SaliencyNet:
    torch.manual_seed(seed)
    return SaliencyNet(c, k, mean=(0.5,) * c, std=(0.25,) * c, width=4, **kw).eval()


# ---- the network ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(16, 16), (15, 23)])
def test_saliency_net_shapes_and_ranges(size):
    net = _net()
    x = torch.rand(4, 3, *size)
    mask, logits = net(x, torch.tensor([0, 1, 2, 3]))
    assert mask.shape == (4, 1, *size) and logits.shape == (4, 5)
    assert float(mask.detach().min()) >= 0 and float(mask.detach().max()) <= 1 and torch.isfinite(logits).all()


def test_class_conditioning_changes_the_mask():
    net = _net()
    with torch.no_grad():  # class 0 opens the bottleneck gate everywhere, class 1 closes it
        feats, _ = net.encode(torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
        direction = feats[2].mean((0, 2, 3))
        net.class_embedding.weight[0] = 50 * direction / direction.norm()
        net.class_embedding.weight[1] = -50 * direction / direction.norm()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    m0, l0 = net(x, torch.zeros(3, dtype=torch.long))
    m1, l1 = net(x, torch.ones(3, dtype=torch.long))
    m0b, _ = net(x, torch.zeros(3, dtype=torch.long))
    assert (m0 - m1).abs().max() > 1e-4 and torch.equal(m0, m0b)  # untrained: the decoder output is near-flat
    assert torch.equal(l0, l1)  # the encoder's logits do not depend on the requested class
    mixed, _ = net(x, torch.tensor([0, 1, 0]))
    assert torch.allclose(mixed[1], m1[1], atol=1e-6) and torch.allclose(mixed[2], m0[2], atol=1e-6)


def test_saliency_net_rejects_bad_input():
    net = _net()
    with pytest.raises(XaisecError, match="expects"):
        net(torch.rand(2, 1, 16, 16), torch.zeros(2, dtype=torch.long))
    with pytest.raises(XaisecError, match="class_index"):
        net(torch.rand(2, 3, 16, 16), torch.zeros(3, dtype=torch.long))
    with pytest.raises(XaisecError, match="4x4"):
        net(torch.rand(2, 3, 2, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(XaisecError, match="blocks"):
        SaliencyNet(3, 5, blocks=(1, 1))
    with pytest.raises(XaisecError, match="mean/std"):
        SaliencyNet(3, 5, mean=(0.5,), std=(0.2,))


# ---- the interpreter --------------------------------------------------------------------------------------
def test_interpreter_maps_are_the_mask(tiny_model, tiny_batch):
    x, y = tiny_batch
    net = _net()
    g = get("rts", tiny_model, saliency_net=net)
    assert isinstance(g, RTS) and g.differentiable
    maps = g(x, y)
    with torch.no_grad():
        expect = net(x, y)[0][:, 0]
    assert maps.shape == (6, 16, 16) and not maps.requires_grad
    assert torch.allclose(maps, expect, atol=1e-6)
    mm = RTS(tiny_model, saliency_net=net, normalize="minmax")(x, y)
    assert torch.allclose(mm.flatten(1).amax(1), torch.ones(6))
    predicted = g(x)  # target None: the model's predicted class
    assert torch.allclose(predicted, g(x, tiny_model(x).argmax(1)))


def test_interpreter_is_differentiable(tiny_model, tiny_batch):
    x, y = tiny_batch
    g = RTS(tiny_model, saliency_net=_net())
    x = x.clone().requires_grad_()
    maps = g(x, y, create_graph=True)
    ((maps - 0.5) ** 2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    x.grad = None
    logits = g.encoder_logits(x)
    assert logits.shape == (6, 5)
    torch.nn.functional.cross_entropy(logits, (y + 1) % 5).backward()
    assert x.grad.abs().sum() > 0
    mask, logits2 = g.mask_and_logits(x.detach(), y)
    assert mask.shape == (6, 16, 16) and torch.allclose(logits2, logits.detach(), atol=1e-6)


def test_interpreter_errors(tiny_model, tiny_batch, tmp_path):
    x, _ = tiny_batch
    with pytest.raises(XaisecError, match="train-rts"):
        RTS(tiny_model)  # nothing shipped for the model "tiny"
    with pytest.raises(XaisecError, match="no such"):
        RTS(tiny_model, weights=tmp_path / "missing.safetensors")
    not_rts = save_safetensors(tiny_model.net, tmp_path / "classifier.safetensors")
    with pytest.raises(XaisecError, match="not an xaisec RTS"):
        RTS(tiny_model, weights=not_rts)
    with pytest.raises(XaisecError, match="classes"):
        RTS(tiny_model, saliency_net=_net(k=7))
    with pytest.raises(XaisecError, match="SaliencyNet"):
        RTS(tiny_model, saliency_net=torch.nn.Linear(2, 2))
    g = RTS(tiny_model, saliency_net=_net())
    with pytest.raises(XaisecError, match="channels"):
        g(torch.rand(2, 1, 16, 16), 0)
    with pytest.raises(XaisecError, match="channels"):
        g(torch.rand(2, 1, 16, 16))
    with pytest.raises(XaisecError, match=r"\(N, C, H, W\)"):
        g(x[0], 0)
    with pytest.raises(XaisecError, match=r"\[0, 1\]"):
        g.encoder_logits(x * 3)


def test_weights_file_round_trip(tiny_model, tiny_batch, tmp_path):
    x, y = tiny_batch
    net = _net(seed=3)
    path = net.save(tmp_path / "rts_tiny.safetensors", classifier="tiny")
    g = RTS(tiny_model, weights=path)
    with torch.no_grad():
        assert torch.allclose(g(x, y), net(x, y)[0][:, 0], atol=1e-6)
    assert not any(p.requires_grad for p in g.saliency_net.parameters())
    xg = x.clone().requires_grad_()
    g(xg, y, create_graph=True).sum().backward()  # frozen weights, but the map still depends on x
    assert xg.grad.abs().sum() > 0


def test_shipped_rts_follows_the_class(resnet20_trained):
    """The shipped CIFAR-10 RTS network (once trained): wrong classes get smaller masks than true ones."""
    from xaisec.data import samples
    from xaisec.interpreters.rts import rts_weights_path

    if not rts_weights_path("cifar10_resnet20").is_file():
        pytest.skip("no shipped RTS weights for cifar10_resnet20 yet (xaisec train-rts --install)")
    pytest.importorskip("foolbox")
    ds = samples("cifar10")
    x, y = ds.float_images(), ds.labels
    g = get("rts", resnet20_trained)
    true_area = g(x, y).mean()
    wrong_area = g(x, (y + 1 + torch.arange(len(y)) % 9) % 10).mean()
    assert 0.02 < true_area < 0.9 and wrong_area < true_area
    assert (g.encoder_logits(x).argmax(1) == y).float().mean() > 0.5
