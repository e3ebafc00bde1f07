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
