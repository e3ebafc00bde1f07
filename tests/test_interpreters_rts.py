"""RTS: the class-conditional masking network, its objective, training (resumable) and the interpreter."""

import json

import pytest
import torch
from safetensors.torch import load_file

import xaisec.interpreters.rts as rts_mod
from xaisec.cli.main import COMMANDS, main
from xaisec.data import ImageDataset
from xaisec.interpreters import get
from xaisec.interpreters.rts import (
    RTS,
    RTSObjective,
    SaliencyNet,
    evaluate_rts,
    gaussian_blur,
    make_alternatives,
    mean_area,
    rts_objective,
    total_variation,
    train_rts,
)
from xaisec.models import save_safetensors
from xaisec.utils.checks import XaisecError


def _net(k: int = 5, c: int = 3, seed: int = 0, **kw) -> SaliencyNet:
    torch.manual_seed(seed)
    return SaliencyNet(c, k, mean=(0.5,) * c, std=(0.25,) * c, width=4, **kw).eval()


def _toy_set(n: int, seed: int) -> ImageDataset:
    """5 classes on 3x16x16: dim noise plus a bright 6x6 square whose position depends on the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 5
    x = torch.randint(0, 60, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    for k in range(5):
        r, c = (k * 2) % 10, (k * 3) % 10
        x[y == k, :, r : r + 6, c : c + 6] += 180
    return ImageDataset(x, y, [f"c{i}" for i in range(5)], name="toy")


def _train(model, out, **kw):
    args = {"epochs": 3, "batch_size": 16, "lr": 1e-2, "seed": 0, "width": 4, "progress": False,
            "test_data": _toy_set(20, 1)}
    args.update(kw)
    return train_rts(model, _toy_set(48, 0), out=out, **args)


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


# ---- the objective ----------------------------------------------------------------------------------------
def test_tv_and_area():
    flat = torch.full((2, 1, 8, 8), 0.7)
    assert torch.allclose(total_variation(flat), torch.zeros(2))
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2).float().expand(2, 1, 8, 8)
    assert torch.allclose(total_variation(checker), torch.full((2,), 2.0))
    assert torch.allclose(mean_area(checker), torch.full((2,), 0.5))
    # power 0.3 punishes small values more than linearly: half ones, half zeros -> (1 + 5e-4 ** 0.3) / 2
    assert float(mean_area(checker, 0.3)[0]) == pytest.approx((1.0005**0.3 + 0.0005**0.3) / 2, rel=1e-4)


def test_alternatives_are_seeded_blurred_or_flat():
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    obj = RTSObjective()
    a1 = make_alternatives(x, obj, torch.Generator().manual_seed(3))
    a2 = make_alternatives(x, obj, torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2) and a1.shape == x.shape and float(a1.min()) >= 0 and float(a1.max()) <= 1
    blur = make_alternatives(x, RTSObjective(blur_prob=1.0), torch.Generator().manual_seed(3))
    assert torch.allclose(blur, gaussian_blur(x, 0.1 * 16))
    assert blur.std() < x.std()  # blurring removes detail
    flat = make_alternatives(x, RTSObjective(blur_prob=0.0, noise_std=0.0), torch.Generator().manual_seed(3))
    assert torch.allclose(flat.amax((2, 3)), flat.amin((2, 3)))  # one colour per sample and channel


def test_objective_terms_and_fake_labels(tiny_model, tiny_batch):
    x, y = tiny_batch
    mask = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0)).requires_grad_()
    alt = make_alternatives(x, RTSObjective(), torch.Generator().manual_seed(0))
    obj = RTSObjective()
    loss, parts = rts_objective(tiny_model, x, y, mask, alt, obj)
    expect = obj.tv * parts["tv"] + obj.area * parts["area"] + parts["preserve"] + obj.destroy * parts["destroy"]
    assert float(loss.detach()) == pytest.approx(float(expect.detach().mean()), rel=1e-5)
    with torch.no_grad():
        p_keep = tiny_model(x * mask + (1 - mask) * alt).softmax(1).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(parts["preserve"], -p_keep.log(), atol=1e-5)
    loss.backward()
    assert torch.isfinite(mask.grad).all() and mask.grad.abs().sum() > 0
    # fake labels: only TV and area count
    with torch.no_grad():
        fake, parts = rts_objective(tiny_model, x, y, mask, alt, obj, real=torch.zeros(6, dtype=torch.bool))
    assert float(fake) == pytest.approx(float((obj.tv * parts["tv"] + obj.area * parts["area"]).mean()), rel=1e-5)


def test_objective_validation():
    with pytest.raises(XaisecError, match="fake_prob"):
        RTSObjective(fake_prob=1.5)
    with pytest.raises(XaisecError, match="area"):
        RTSObjective(area=-1)


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


# ---- training ---------------------------------------------------------------------------------------------
def test_training_decreases_the_objective_and_writes_card(tiny_model, tmp_path):
    flags = [p.requires_grad for p in tiny_model.parameters()]
    res = _train(tiny_model, tmp_path / "run", epochs=4, batch_size=8, lr=5e-2)
    assert [p.requires_grad for p in tiny_model.parameters()] == flags and not tiny_model.training
    card = json.loads(res.card.read_text())
    assert len(card["history"]) == 4
    # held-out images, same alternatives: the trained net vs the same net at initialisation (seed 0)
    test = _toy_set(20, 1)
    torch.manual_seed(0)
    initial = SaliencyNet(3, 5, mean=(0.5,) * 3, std=(0.25,) * 3, width=4)
    before = evaluate_rts(initial, tiny_model, test, seed=1)
    after = evaluate_rts(SaliencyNet.from_file(res.weights), tiny_model, test, seed=1)
    assert after["objective"] < before["objective"] - 0.2
    assert card["test"]["objective"] == pytest.approx(after["objective"], rel=0.05)  # card: bf16 autocast
    for key in ("area", "area_fake_class", "accuracy_preserved", "accuracy_destroyed", "encoder_accuracy"):
        assert 0 <= card["test"][key] <= 1
    assert card["versions"]["torch"] == torch.__version__ and card["data"]["train_images"] == 48
    assert res.weights.name == "rts_tiny.safetensors" and card["architecture"]["num_classes"] == 5
    assert RTS(tiny_model, weights=res.weights)(test.float_images()[:2], 0).shape == (2, 16, 16)


def test_resume_after_interruption_matches_uninterrupted_run(tiny_model, tmp_path, monkeypatch):
    full = _train(tiny_model, tmp_path / "full")
    real_write = rts_mod.atomic_write_bytes
    calls = {"n": 0}

    def write_then_die(path, data):
        calls["n"] += 1
        if calls["n"] == 2:  # killed while writing epoch 2's checkpoint: epoch 1's survives
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(rts_mod, "atomic_write_bytes", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_model, tmp_path / "resumed")
    assert all(p.requires_grad for p in tiny_model.parameters())  # restored after the interruption
    monkeypatch.setattr(rts_mod, "atomic_write_bytes", real_write)
    resumed = _train(tiny_model, tmp_path / "resumed")
    a, b = load_file(str(full.weights)), load_file(str(resumed.weights))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(full.card.read_text())["history"] == json.loads(resumed.card.read_text())["history"]
    with pytest.raises(XaisecError, match="different settings"):
        _train(tiny_model, tmp_path / "resumed", lr=5e-3)


def test_training_rejects_bad_settings(tiny_model, tmp_path):
    with pytest.raises(XaisecError, match="epochs"):
        _train(tiny_model, tmp_path / "a", epochs=0)
    ten = ImageDataset(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), torch.arange(4),
                       [f"c{i}" for i in range(10)])
    with pytest.raises(XaisecError, match="classes"):
        train_rts(tiny_model, ten, epochs=1, out=tmp_path / "b", progress=False)


def test_cli_train_rts(tmp_path, monkeypatch, capsys):
    pytest.importorskip("foolbox")  # the bundled sample images
    monkeypatch.setitem(COMMANDS, "train-rts", ("xaisec.cli.train_rts_cmd", "train RTS"))
    out = tmp_path / "cli"
    code = main(["-q", "train-rts", "--model", "cifar10_resnet20", "--weights", "random", "--data",
                 "samples:cifar10", "--epochs", "1", "--batch-size", "10", "--width", "4", "--out", str(out)])
    assert code == 0
    assert "mean mask area" in capsys.readouterr().out
    card = json.loads((out / "rts_cifar10_resnet20.json").read_text())
    assert card["classifier"] == "cifar10_resnet20" and card["data"]["train_images"] == 20


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
