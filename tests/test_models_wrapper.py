import pytest
import torch
from torch import nn

from tests.conftest import TinyNet
from xaisec.models import Classifier, Normalize, wrap
from xaisec.utils.checks import XaisecError


def test_wrap_any_module_normalises_inside():
    net = TinyNet()
    model = wrap(net, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), cam_layer="features", classes=list("abcde"))
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(model(x), net(x * 2 - 1))
    assert model.layer() is net.features and model.num_classes == 5 and model.class_name(1) == "b"
    assert wrap(model) is model


def test_wrap_errors():
    with pytest.raises(XaisecError, match=r"nn\.Module"):
        wrap(lambda x: x)
    with pytest.raises(XaisecError, match="not in the network"):
        wrap(TinyNet(), cam_layer="layer9")
    with pytest.raises(XaisecError, match="positive"):
        Normalize((0.0,), (0.0,))
    with pytest.raises(XaisecError, match="CAM layer"):
        Classifier(nn.Linear(2, 2), mean=(0.0,), std=(1.0,)).layer()


def test_forward_validates_input(tiny_model):
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(XaisecError, match=r"uint8|dtype"):
        tiny_model((x * 255).to(torch.uint8))
    with pytest.raises(XaisecError, match="divide 0-255"):
        tiny_model(x * 255)
    with pytest.raises(XaisecError, match="channels-last"):
        tiny_model(x.permute(0, 2, 3, 1))
    with pytest.raises(XaisecError, match="4 channels"):
        tiny_model(torch.rand(2, 4, 16, 16))
    with pytest.raises(XaisecError, match="1 channels"):
        tiny_model(torch.rand(2, 1, 16, 16))
    with pytest.raises(XaisecError, match=r"\(1, 1\) pixels"):
        tiny_model(torch.rand(2, 3, 1, 1))
    # float64 (torch.from_numpy) is converted, with the same logits
    assert torch.allclose(tiny_model(x.double()), tiny_model(x))


def test_bare_module_warns_once(caplog):
    from xaisec.models.wrapper import ensure_classifier

    net = TinyNet()
    with caplog.at_level("WARNING"):
        ensure_classifier(net)
        ensure_classifier(net)
    assert caplog.text.count("not an xaisec Classifier") == 1 and "wrap(" in caplog.text


@pytest.mark.parametrize("name", ["gradcam", "grad"])
def test_float64_images_work_end_to_end(tiny_model, name):
    from xaisec.interpreters import get

    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    maps = get(name, tiny_model)(x)
    assert maps.shape == (2, 16, 16) and torch.isfinite(maps).all()
    double = wrap(TinyNet().double(), classes=list("abcde"), input_size=(3, 16, 16))
    assert double(x).dtype == torch.float64  # a float64 model keeps float64 input
