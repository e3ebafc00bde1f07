"""Tests of xaisec.experiments.runner: picking images and running attacks in batches."""

import pytest
import torch

from tests.conftest import TinyNet
from xaisec.data.dataset import ImageDataset
from xaisec.experiments.runner import correctly_classified, run_attack
from xaisec.utils.checks import XaisecError


def test_correctly_classified_maps_folder_names_onto_the_model(tiny_model, tiny_batch):
    x, _ = tiny_batch
    with torch.no_grad():
        pred = tiny_model((x * 255).round().div(255)).argmax(1)
    # a "folder" holding only the predicted classes, numbered 0..k-1 in sorted name order
    names = sorted({tiny_model.classes[int(p)] for p in pred})
    local = torch.tensor([names.index(tiny_model.classes[int(p)]) for p in pred])
    ds = ImageDataset((x * 255).round().to(torch.uint8), local, names, name="folder")
    picked = correctly_classified(tiny_model, ds, 6)
    assert len(picked) == 6 and picked.classes == tiny_model.classes
    with pytest.raises(XaisecError, match="n must be"):
        correctly_classified(tiny_model, ds, 0)
    with pytest.raises(XaisecError, match="seed"):
        correctly_classified(tiny_model, ds, 2, seed=-1)


def test_run_attack_drops_images_already_in_the_target_class(tiny_model, tiny_batch, caplog):
    x, y = tiny_batch  # labels: several classes
    t = int(y[0])
    assert 0 < int((y == t).sum()) < len(y)
    with caplog.at_level("WARNING"):
        res = run_attack(tiny_model, "grad", "pgd", x, y, batch_size=2, target_class=t, steps_scale=0.01)
    k = int((y == t).sum())
    assert len(res) == len(y) - k and res.config["dropped_already_target"] == k
    assert bool((res.y != t).all()) and f"not attacking {k} of {len(y)}" in caplog.text
    with pytest.raises(XaisecError, match="already labelled"):
        run_attack(tiny_model, "grad", "pgd", x, y, target_class=y.clone(), steps_scale=0.01)


def test_run_attack_splits_per_image_targets_with_the_batches(tiny_model, tiny_batch):
    x, _ = tiny_batch
    with torch.no_grad():
        y = tiny_model(x).argmax(1)
    t = (y + 1) % 5
    res = run_attack(tiny_model, "grad", "pgd", x, y, batch_size=4, target_class=t, steps_scale=0.01)
    assert torch.equal(res.target, t) and res.config["dropped_already_target"] == 0


def test_bare_module_warns_and_bad_inputs(tiny_batch, caplog):
    x, y = tiny_batch
    net = TinyNet().eval()
    with caplog.at_level("WARNING"):
        run_attack(net, "grad", "pgd", x, y, steps_scale=0.01, target_class="untargeted")
    assert "not an xaisec Classifier" in caplog.text
    with pytest.raises(XaisecError, match="batch size"):
        run_attack(net, "grad", "pgd", x, y, batch_size=0)
    with pytest.raises(XaisecError, match="no images"):
        run_attack(net, "grad", "pgd", x[:0], y[:0])
