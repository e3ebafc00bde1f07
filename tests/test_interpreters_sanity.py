"""Model-randomisation sanity check (Adebayo et al. 2018): an explanation that does not change when the
model's weights are re-initialised explains nothing about the model."""

import pytest
import torch

from xaisec.metrics import spearman

INTERPRETERS = ["cam", "gradcam", "gradcam_pp", "grad", "grad_x_input", "integrated_gradients", "smoothgrad",
                "guided_backprop", "deeplift", "lrp"]


@pytest.fixture(scope="module")
def images():
    from xaisec.data import samples

    ds = samples("cifar10", 20)
    return ds.float_images(), ds.labels


@pytest.mark.parametrize("name", INTERPRETERS)
def test_maps_change_when_the_weights_are_reinitialised(name, resnet20_trained, resnet20_random, images):
    from xaisec.interpreters import get

    x, y = images
    options = {"steps": 16} if name == "integrated_gradients" else {"samples": 8} if name == "smoothgrad" else {}
    trained = get(name, resnet20_trained, **options)(x, y)
    randomised = get(name, resnet20_random, **options)(x, y)
    rho = spearman(trained, randomised)
    rho = torch.nan_to_num(rho, nan=0.0)  # a constant map (e.g. an all-zero ReLU map) has no rank correlation
    assert float(rho.mean()) < 0.5, f"{name}: mean Spearman {float(rho.mean()):.3f}"


def test_mask_maps_change_when_the_weights_are_reinitialised(resnet20_trained, resnet20_random, images):
    from xaisec.interpreters import get

    x, y = images
    trained = get("mask", resnet20_trained, iterations=60)(x, y)
    randomised = get("mask", resnet20_random, iterations=60)(x, y)
    rho = torch.nan_to_num(spearman(trained, randomised), nan=0.0)
    assert float(rho.mean()) < 0.5, f"mask: mean Spearman {float(rho.mean()):.3f}"


def test_rts_maps_change_when_its_masking_network_is_reinitialised(resnet20_trained, images):
    """RTS maps come from its own trained masking network (the classifier is not queried to explain), so
    the randomisation that tests it is the masking network's."""
    from xaisec.interpreters import get
    from xaisec.interpreters.rts import SaliencyNet, rts_weights_path

    path = rts_weights_path("cifar10_resnet20")
    if not path.is_file():
        pytest.skip("no shipped RTS weights for cifar10_resnet20 (xaisec train-rts --install)")
    x, y = images
    torch.manual_seed(0)
    net = SaliencyNet.from_file(path)
    for module in net.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    trained = get("rts", resnet20_trained)(x, y)
    randomised = get("rts", resnet20_trained, saliency_net=net.eval())(x, y)
    rho = torch.nan_to_num(spearman(trained, randomised), nan=0.0)
    assert float(rho.mean()) < 0.5, f"rts: mean Spearman {float(rho.mean()):.3f}"
