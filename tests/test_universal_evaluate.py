"""evaluate(): fooling, L1, IoU per image and means; the threshold IoU."""

from __future__ import annotations

import pytest
import torch

import xaisec.universal as U
from xaisec.universal.evaluate import threshold_iou
from xaisec.universal.result import UniversalPerturbation
from xaisec.utils.checks import XaisecError


def test_zero_perturbation_changes_nothing(tiny_model, tiny_batch) -> None:
    x, _ = tiny_batch
    ev = U.evaluate(UniversalPerturbation(torch.zeros(3, 16, 16), "none"), tiny_model, "cam", x, batch_size=4)
    s = ev.summary()
    assert len(ev) == 6 and s["fooling_ratio"] == 0 and s["l1"] == pytest.approx(0, abs=1e-6)
    assert s["iou"] == pytest.approx(1) and s["iou_threshold"] == pytest.approx(1)
    assert len(ev.records()) == 6 and ev.records()[0]["fooled"] is False


def test_large_perturbation_fools_and_moves_maps(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    p = torch.zeros(3, 16, 16)
    p[:, :8] = 1.0  # the top half saturates
    ev = U.evaluate(UniversalPerturbation(p, "x"), tiny_model, "cam", x, labels=y, keep=3)
    assert ev.l1.mean() > 0.01 and ev.iou.mean() < 1
    assert ev.extras["x_adv"].shape == (3, 3, 16, 16) and ev.extras["maps_adv"].shape == (3, 16, 16)
    assert "accuracy_adv" in ev.summary()


def test_threshold_iou() -> None:
    a = torch.zeros(2, 4, 4)
    b = torch.zeros(2, 4, 4)
    a[0, :2] = 1  # 8 pixels
    b[0, :1] = 1  # 4 of them
    a[1, 0, 0] = b[1, 3, 3] = 1  # disjoint
    torch.testing.assert_close(threshold_iou(a, b), torch.tensor([0.5, 0.0]))


def test_fooling_only_and_shape_error(tiny_model, tiny_batch) -> None:
    x, _ = tiny_batch
    ev = U.evaluate(UniversalPerturbation(torch.zeros(3, 16, 16), "x"), tiny_model, None, x)
    assert torch.isnan(ev.l1).all() and ev.summary()["fooling_ratio"] == 0
    with pytest.raises(XaisecError, match="trained for"):
        U.evaluate(UniversalPerturbation(torch.zeros(3, 32, 32), "x"), tiny_model, "cam", x)
