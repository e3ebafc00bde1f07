"""Attack metrics on hand-computable examples, plus the package's aggregate helpers and registry."""

from __future__ import annotations

import math

import pytest
import torch

from xaisec.metrics import (
    METRICS,
    aggregate,
    attack_success_rate,
    fooling_ratio,
    misclassification_confidence,
    summarize,
)
from xaisec.utils.checks import XaisecError

# argmax per row: 0, 2, 1, 1
LOGITS = torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 5.0, 1.0], [1.0, 2.0, 0.0]])


def test_targeted_success_from_logits() -> None:
    target = torch.tensor([0, 1, 1, 2])
    s = attack_success_rate(LOGITS, target=target)
    assert s.dtype == torch.bool
    assert s.tolist() == [True, False, True, False]
    assert aggregate(s) == pytest.approx(0.5)


def test_untargeted_success_from_labels() -> None:
    preds = torch.tensor([0, 2, 1, 1])
    label = torch.tensor([0, 0, 1, 0])
    assert attack_success_rate(preds, label=label).tolist() == [False, True, False, True]
    assert attack_success_rate(LOGITS, label=label).tolist() == [False, True, False, True]


def test_int_target_broadcasts() -> None:
    assert attack_success_rate(LOGITS, target=1).tolist() == [False, False, True, True]


@pytest.mark.parametrize("kwargs", [{}, {"target": 1, "label": 0}])
def test_success_needs_exactly_one_of_target_and_label(kwargs: dict) -> None:
    with pytest.raises(XaisecError, match="exactly one"):
        attack_success_rate(LOGITS, **kwargs)


def test_success_rejects_bad_shapes() -> None:
    with pytest.raises(XaisecError, match="shape"):
        attack_success_rate(LOGITS, target=torch.tensor([0, 1]))
    with pytest.raises(XaisecError, match="logits"):
        attack_success_rate(torch.tensor([0.5, 1.0]), target=0)  # float 1-D is neither logits nor labels


def test_misclassification_confidence_is_the_softmax_probability() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])  # probs [.25, .75], [.8, .2]
    assert misclassification_confidence(logits, target=1).tolist() == pytest.approx([0.75, 0.2])
    assert misclassification_confidence(logits, target=torch.tensor([0, 0])).tolist() == pytest.approx([0.25, 0.8])
    assert misclassification_confidence(logits).tolist() == pytest.approx([0.75, 0.8])


def test_misclassification_confidence_checks_input() -> None:
    with pytest.raises(XaisecError, match="target classes"):
        misclassification_confidence(LOGITS, target=3)
    with pytest.raises(XaisecError, match="logits"):
        misclassification_confidence(torch.tensor([0, 1]))


def test_fooling_ratio_counts_changed_predictions() -> None:
    clean = torch.tensor([0, 1, 1, 1])
    f = fooling_ratio(clean, LOGITS)  # adv predictions 0, 2, 1, 1
    assert f.tolist() == [False, True, False, False]
    assert aggregate(f) == pytest.approx(0.25)
    assert fooling_ratio(LOGITS, LOGITS).sum() == 0
    with pytest.raises(XaisecError, match="same batch"):
        fooling_ratio(clean[:2], LOGITS)


def test_aggregate_and_summarize() -> None:
    v = torch.tensor([1.0, 2.0, float("nan"), 3.0])
    assert math.isnan(aggregate(v))
    assert aggregate(v, ignore_nan=True) == pytest.approx(2.0)
    s = summarize(v, ignore_nan=True)
    assert s == {"mean": pytest.approx(2.0), "std": pytest.approx(1.0), "min": 1.0, "max": 3.0, "n": 3}
    assert summarize(torch.tensor([0.5]))["std"] == 0.0
    with pytest.raises(XaisecError, match=r"\(N,\)"):
        aggregate(torch.zeros(2, 2))
    with pytest.raises(XaisecError, match="empty"):
        aggregate(torch.zeros(0))


def test_registry_entries_are_complete() -> None:
    import xaisec.metrics as m

    for name, spec in METRICS.items():
        assert callable(spec.fn), name
        assert isinstance(spec.higher_is_better, bool), name
        assert spec.description and spec.normalisation, name
    for name in ("map_iou", "map_l1", "ssim", "noise_rate", "kendall_tau", "deletion_auc", "insertion_auc"):
        assert getattr(m, name) is METRICS[name].fn
    assert METRICS["map_iou"].higher_is_better and not METRICS["map_l1"].higher_is_better
    assert not METRICS["deletion_auc"].higher_is_better and METRICS["insertion_auc"].higher_is_better
    assert set(m.__all__) <= set(dir(m))
