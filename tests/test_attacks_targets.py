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


def test_keep_not_already_target_counts_and_refuses(caplog):
    from xaisec.attacks.targets import keep_not_already_target

    y = torch.tensor([6, 1, 6, 2])
    with caplog.at_level("WARNING"):
        keep = keep_not_already_target(torch.full((4,), 6), y)
    assert keep.tolist() == [False, True, False, True] and "not attacking 2 of 4" in caplog.text
    assert keep_not_already_target(None, y) is None
    assert keep_not_already_target(torch.tensor([0, 0, 0, 0]), y) is None
    with pytest.raises(XaisecError, match="already labelled"):
        keep_not_already_target(y.clone(), y)


def test_joint_attack_does_not_count_images_already_in_the_target(tiny_model, tiny_batch):
    from xaisec.attacks import get

    x, _ = tiny_batch
    with torch.no_grad():
        y = tiny_model(x).argmax(1)
    # target_class=y: every image already has its target -> refused, not a 100% success
    atk = get("pgd", tiny_model, "grad", target_class=y.clone(), steps_scale=0.01)
    with pytest.raises(XaisecError, match="already labelled"):
        atk(x, y)
    t = y.clone()
    t[0] = (y[0] + 1) % 5
    res = get("pgd", tiny_model, "grad", target_class=t, steps_scale=0.01)(x, y)
    assert len(res) == 1 and int(res.target[0]) == int(t[0])


def test_api_eps_checks(tiny_model, caplog):
    from xaisec.attacks import get

    with caplog.at_level("WARNING"):
        get("pgd", tiny_model, "grad", eps=8)
    assert "did you mean 8/255" in caplog.text
    for bad in (float("nan"), float("inf"), -0.1):
        with pytest.raises(XaisecError, match="eps"):
            get("pgd", tiny_model, "grad", eps=bad)
    with pytest.raises(XaisecError, match="seed"):
        get("pgd", tiny_model, "grad", seed=-1)
