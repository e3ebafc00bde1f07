import pytest
import torch

from xaisec.data import ImageDataset
from xaisec.utils.checks import XaisecError


def _ds(n=10):
    return ImageDataset(torch.arange(n * 3 * 2 * 2, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 3, 2, 2),
                        torch.arange(n) % 3, ["a", "b", "c"], name="t")


def test_batches_cover_everything_in_order_as_float():
    ds = _ds()
    xs, ys = zip(*ds.batches(4), strict=True)
    assert [len(y) for y in ys] == [4, 4, 2]
    assert torch.equal(torch.cat(xs), ds.images.float() / 255)
    assert torch.equal(torch.cat(ys), ds.labels)


def test_sample_is_seeded_and_head_limits():
    ds = _ds()
    assert torch.equal(ds.sample(5, seed=3).labels, ds.sample(5, seed=3).labels)
    assert len(ds.head(3)) == 3 and ds.head(None) is ds


def test_validation():
    with pytest.raises(XaisecError, match="uint8"):
        ImageDataset(torch.zeros(2, 3, 2, 2), torch.zeros(2), ["a"])
    with pytest.raises(XaisecError, match="labels"):
        ImageDataset(torch.zeros(2, 3, 2, 2, dtype=torch.uint8), torch.zeros(3), ["a"])
    with pytest.raises(XaisecError, match="outside"):
        ImageDataset(torch.zeros(2, 3, 2, 2, dtype=torch.uint8), torch.tensor([0, 5]), ["a", "b"])
