import pytest
import torch

from xaisec._compat import torchvision as tv_compat
from xaisec.models import load
from xaisec.models.imagenet import ARCHS
from xaisec.utils.checks import XaisecError


@pytest.mark.parametrize("arch", ["resnet50", "mobilenet_v2", "vgg16"])
def test_random_weight_construction_and_forward(arch):
    model = load(f"imagenet_{arch}", weights="random", device="cpu")
    with torch.no_grad():
        out = model(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    assert model.classes[0] == "tench" and model.layer() is not None


def test_every_arch_declares_existing_layers():
    tv = tv_compat.import_torchvision()
    for arch, spec in ARCHS.items():
        net = getattr(tv.models, spec.builder)(weights=None)
        names = dict(net.named_modules())
        assert spec.cam_layer in names and spec.fc_layer in names, arch


def test_pretrained_download_or_clear_offline_error():
    try:
        model = load("imagenet_mobilenet_v2", device="cpu")
    except XaisecError as exc:
        assert "weights='random'" in str(exc)
        pytest.skip(f"offline: {exc}")
    assert model.num_classes == 1000
