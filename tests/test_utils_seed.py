import pytest
import torch

from xaisec.utils.seed import seed_everything


def test_same_seed_same_numbers():
    g1 = seed_everything(7)
    a = torch.rand(3), torch.rand(2, generator=g1)
    g2 = seed_everything(7)
    b = torch.rand(3), torch.rand(2, generator=g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    seed_everything(8)
    assert not torch.equal(torch.rand(3), a[0])


def test_bad_seed():
    with pytest.raises(ValueError):
        seed_everything(-1)
