import pytest
import torch
import torch.nn.functional as F

from xaisec.attacks.objectives import map_loss, prediction_loss, soft_targets
from xaisec.utils.checks import XaisecError


def test_soft_targets_sum_to_one():
    t = soft_targets(torch.tensor([0, 3]), 5, 0.95)
    assert torch.allclose(t.sum(1), torch.ones(2))
    assert t[0, 0] == pytest.approx(0.95) and t[0, 1] == pytest.approx(0.0125)


def test_prediction_losses():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    y, t = torch.tensor([0, 1]), torch.tensor([1, 2])
    assert torch.allclose(prediction_loss(logits, t, y), F.cross_entropy(logits, t, reduction="none"))
    assert torch.allclose(prediction_loss(logits, None, y), -F.cross_entropy(logits, y, reduction="none"))
    cw = prediction_loss(logits, t, y, kind="cw")
    assert cw.tolist() == pytest.approx([2.0 - 0.5, 3.0 - 1.0])
    assert prediction_loss(logits, None, y, kind="cw").tolist() == pytest.approx([1.5, 2.0])
    assert prediction_loss(logits, t, y, kind="cw", kappa=0.5).min() >= -0.5
    smooth = prediction_loss(logits, t, y, confidence=0.9)
    manual = -(soft_targets(t, 3, 0.9) * logits.log_softmax(1)).sum(1)
    assert torch.allclose(smooth, manual)
    with pytest.raises(XaisecError, match="prediction loss"):
        prediction_loss(logits, t, y, kind="hinge")


def test_map_loss_is_mean_squared_difference():
    a, b = torch.zeros(2, 4, 4), torch.ones(2, 4, 4)
    b[1] = 0.5
    assert map_loss(a, b).tolist() == pytest.approx([1.0, 0.25])
