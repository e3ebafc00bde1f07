import pytest
import torch

from xaisec.attacks.targets import other_class_partner, random_other_class, random_patch_maps, resolve_target_class
from xaisec.utils.checks import XaisecError


def test_random_other_class_is_never_the_true_class_and_covers_all_others():
    y = torch.zeros(2000, dtype=torch.long)
    t = random_other_class(y, 10, torch.Generator().manual_seed(0))
    assert (t != y).all() and set(t.tolist()) == set(range(1, 10))


def test_resolve_target_class():
    y = torch.tensor([0, 1, 2])
    assert resolve_target_class("untargeted", y, 5) is None and resolve_target_class(None, y, 5) is None
    assert resolve_target_class(4, y, 5).tolist() == [4, 4, 4]
    with pytest.raises(XaisecError, match="unknown target class"):
        resolve_target_class("least-likely-ish", y, 5)


def test_patch_maps_are_binary_sized_and_seeded():
    m = random_patch_maps(64, (32, 32), generator=torch.Generator().manual_seed(0))
    assert m.shape == (64, 32, 32) and set(m.unique().tolist()) == {0.0, 1.0}
    area = m.flatten(1).mean(1)
    assert float(area.min()) > 0.005 and float(area.max()) < 0.2
    again = random_patch_maps(64, (32, 32), generator=torch.Generator().manual_seed(0))
    assert torch.equal(m, again)


def test_partner_has_a_different_label():
    y = torch.tensor([0, 0, 1, 2, 2, 1])
    p = other_class_partner(y, torch.Generator().manual_seed(0))
    assert (y[p] != y).all()
    with pytest.raises(XaisecError, match="two different labels"):
        other_class_partner(torch.tensor([3, 3, 3]))
