"""Adversarial training (xaisec.training.adversarial): PGD iterates within budget, the batch loss."""

import pytest
import torch
import torch.nn.functional as F

from xaisec.training.adversarial import AdversarialTraining, pgd_iterates
from xaisec.training.defenses import BatchContext
from xaisec.utils.checks import XaisecError


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_iterates_respect_the_budget_and_raise_the_loss(tiny_model, tiny_batch, random_start):
    x, y = tiny_batch
    eps = 8 / 255
    advs = pgd_iterates(tiny_model, x, y, eps=eps, alpha=2 / 255, record=[1, 3, 5], random_start=random_start,
                        generator=torch.Generator().manual_seed(0))
    assert len(advs) == 3
    with torch.no_grad():
        clean_loss = F.cross_entropy(tiny_model(x), y)
        losses = [F.cross_entropy(tiny_model(a), y) for a in advs]
    for a in advs:
        assert a.shape == x.shape and float((a - x).abs().max()) <= eps + 1e-6
        assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert losses[-1] > clean_loss  # the attack works on the loss it ascends
    assert all(p.grad is None for p in tiny_model.parameters())  # no gradient leaks into the weights


def test_recorded_iterates_equal_separate_shorter_runs(tiny_model, tiny_batch):
    x, y = tiny_batch
    both = pgd_iterates(tiny_model, x, y, eps=0.05, alpha=0.01, record=[2, 4])
    (two,) = pgd_iterates(tiny_model, x, y, eps=0.05, alpha=0.01, record=[2])
    assert torch.equal(both[0], two) and not torch.equal(both[0], both[1])


def test_adversarial_batch_loss(tiny_model, tiny_batch):
    x, y = tiny_batch
    at = AdversarialTraining(eps=8 / 255, alpha=2 / 255, steps=(1, 2, 3))
    tiny_model.train()
    ctx = BatchContext(0, 0, 0, torch.Generator().manual_seed(0))
    loss, logits = at(tiny_model, x, y, ctx)
    assert logits.shape == (6, 5) and loss.requires_grad and tiny_model.training
    with torch.no_grad():
        clean = F.cross_entropy(tiny_model(x), y)
    assert float(loss.detach()) > float(clean)  # clean + 3 adversarial copies: harder than clean alone
    loss.backward()
    assert all(p.grad is not None for p in tiny_model.parameters())
    advs = at.adversarial_examples(tiny_model, x, y)
    assert len(advs) == 3 and all(float((a - x).abs().max()) <= 8 / 255 + 1e-6 for a in advs)
    s = at.settings()
    assert s["steps"] == [1, 2, 3] and s["eps"] == pytest.approx(8 / 255) and s["attack"] == "pgd"


def test_adversarial_training_rejects_bad_settings():
    with pytest.raises(XaisecError, match="pgd"):
        AdversarialTraining(attack="fgsm")
    with pytest.raises(XaisecError, match="steps"):
        AdversarialTraining(steps=(0, 5))
    with pytest.raises(XaisecError, match="eps"):
        AdversarialTraining(eps=8.0)
