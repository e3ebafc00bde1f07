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
