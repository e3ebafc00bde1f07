import pytest
import torch

from xaisec.models import MODELS, build, load, model_card, shipped_weights, spec
from xaisec.utils.checks import XaisecError

CIFAR = [n for n, s in MODELS.items() if s.imagenet_arch is None]


@pytest.mark.parametrize("name", CIFAR)
def test_every_small_model_builds_runs_and_declares_a_cam_layer(name):
    model = build(name).eval()
    c, h, w = model.input_size
    x = torch.rand(2, c, h, w)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, len(model.classes))
    feats = {}
    handle = model.layer().register_forward_hook(lambda _m, _i, o: feats.setdefault("a", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    assert feats["a"].dim() == 4 and feats["a"].shape[-1] >= 2  # a spatial map for CAM
    assert model.fc_layer in dict(model.net.named_modules())


def test_normalisation_is_inside_the_model():
    model = build("cifar10_resnet20").eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        manual = model.net((x - torch.tensor(spec("cifar10_resnet20").mean).view(1, 3, 1, 1))
                           / torch.tensor(spec("cifar10_resnet20").std).view(1, 3, 1, 1))
        assert torch.allclose(model(x), manual, atol=1e-6)


@pytest.mark.parametrize("name", ["cifar10_resnet20", "pneumonia_cnn", "cifar10_vgg11_bn", "cifar10_densenet40",
                                  "cifar10_mobilenetv2"])
def test_shipped_weights_load_with_a_card(name):
    if shipped_weights(name) is None:
        pytest.skip(f"{name} weights not shipped yet")
    model = load(name, device="cpu")
    card = model_card(name)
    assert card["model"] == name and 0 < card["test_accuracy"] <= 1
    assert not model.training


def test_resnet_depths():
    counts = {d: sum(p.numel() for p in build(f"cifar10_resnet{d}").parameters()) for d in (20, 32, 44, 56)}
    assert 0.26e6 < counts[20] < 0.28e6 and 0.84e6 < counts[56] < 0.87e6  # He et al.: 0.27M and 0.85M


def test_unknown_model_and_missing_weights():
    with pytest.raises(XaisecError, match="known models"):
        load("cifar10_resnet1000")
    with pytest.raises(XaisecError, match="xaisec train"):
        load("cifar10_resnet56")  # no weights shipped for it
    assert load("cifar10_resnet56", weights="random").name == "cifar10_resnet56"
