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


def test_split_is_seeded_stratified_and_complete():
    ds = ImageDataset(torch.zeros(20, 1, 2, 2, dtype=torch.uint8), torch.tensor([0] * 15 + [1] * 5), ["a", "b"])
    a, b = ds.split(0.8, seed=0)
    assert len(a) + len(b) == 20 and a.labels.bincount().tolist() == [12, 4] and b.labels.bincount().tolist() == [3, 1]
    a2, _ = ds.split(0.8, seed=0)
    assert torch.equal(a.labels, a2.labels)
    with pytest.raises(XaisecError, match="fraction"):
        ds.split(1.0)


def test_resized_crop_pad_and_channels():
    img = torch.arange(2 * 3 * 4 * 8).remainder(256).to(torch.uint8).view(2, 3, 4, 8)
    ds = ImageDataset(img, torch.tensor([0, 1]), ["a", "b"])
    assert ds.resized(4).images.shape == (2, 3, 4, 4)
    assert torch.equal(ds.resized(4).images, img[..., 2:6])  # shorter side already 4: centre crop only
    pad = ds.resized(8, "pad").images
    assert pad.shape == (2, 3, 8, 8) and int(pad[..., :2, :].sum()) == 0 and torch.equal(pad[..., 2:6, :], img)
    grey = ds.with_channels(1)
    assert grey.images.shape == (2, 1, 4, 8)
    assert grey.with_channels(3).images.shape == (2, 3, 4, 8) and ds.with_channels(3) is ds
