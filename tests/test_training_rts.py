"""RTS training (xaisec.training.rts): the objective, the resumable loop, the card and the CLI."""

import json

import pytest
import torch
from safetensors.torch import load_file

import xaisec.training.rts as rts_mod
from xaisec.cli.main import COMMANDS, main
from xaisec.data import ImageDataset
from xaisec.interpreters.rts import RTS
from xaisec.models.saliency_net import SaliencyNet
from xaisec.training.rts import (
    RTSObjective,
    evaluate_rts,
    gaussian_blur,
    make_alternatives,
    mean_area,
    rts_objective,
    total_variation,
    train_rts,
)
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


# ---- AID ----------------------------------------------------------------------------------------------------
def test_aid_fine_tunes_from_a_network_and_records_the_defense(tiny_model, tmp_path):
    from xaisec.training.rts import AIDSettings, aid_distance, aid_examples

    init = SaliencyNet(3, 5, mean=(0.5,) * 3, std=(0.25,) * 3, width=4).save(tmp_path / "init" / "rts_tiny.safetensors")
    aid = AIDSettings(steps=2, eps=8 / 255, alpha=4 / 255)
    res = _train(tiny_model, tmp_path / "aid", epochs=1, batch_size=8, init=init, aid=aid, amp=False)
    card = json.loads(res.card.read_text())
    assert card["defense"]["name"] == "aid" and card["defense"]["settings"]["steps"] == 2
    assert card["initialised_from"] == str(init) and card["history"][0]["aid_l1"] >= 0
    x = _toy_set(8, 3).float_images()
    y = torch.arange(8) % 5
    net = SaliencyNet.from_file(res.weights)
    x_adv, t_adv = aid_examples(net, tiny_model, x, y, aid, torch.Generator().manual_seed(0))
    assert float((x_adv - x).abs().max()) <= 8 / 255 + 1e-6 and t_adv.shape == (8,)
    assert 0 <= float(aid_distance(net, x, y, x_adv, t_adv).detach()) <= 1
    with pytest.raises(XaisecError, match="different settings"):  # resume check covers the AID settings
        _train(tiny_model, tmp_path / "aid", epochs=1, batch_size=8, init=init, aid=AIDSettings(steps=3), amp=False)


def test_aid_step_pushes_adversarial_maps_away(tiny_model):
    from xaisec.training.rts import AIDSettings, aid_distance, aid_examples

    torch.manual_seed(0)
    net = SaliencyNet(3, 5, mean=(0.5,) * 3, std=(0.25,) * 3, width=4).eval()
    x = _toy_set(10, 2).float_images()
    y = torch.arange(10) % 5
    x_adv, t_adv = aid_examples(net, tiny_model, x, y, AIDSettings(steps=2), torch.Generator().manual_seed(0))
    before = float(aid_distance(net, x, y, x_adv, t_adv).detach())
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    (-aid_distance(net, x, y, x_adv, t_adv)).backward()
    opt.step()
    assert float(aid_distance(net, x, y, x_adv, t_adv).detach()) > before


def test_aid_settings_validation():
    from xaisec.training.rts import AIDSettings

    with pytest.raises(XaisecError, match="steps"):
        AIDSettings(steps=0)
    with pytest.raises(XaisecError, match="eps"):
        AIDSettings(eps=2.0)


def test_cli_train_rts_defense_errors(capsys):
    assert main(["-q", "train-rts", "--model", "pneumonia_cnn", "--defense", "distill"]) != 0
    assert "unknown defense" in capsys.readouterr().err
    assert main(["-q", "train-rts", "--model", "pneumonia_cnn", "--defense", "aid"]) != 0  # no RTS to start from
    assert "--init" in capsys.readouterr().err
