import pytest
import torch

from xaisec.data import load, samples
from xaisec.utils.checks import XaisecError


@pytest.mark.parametrize(("name", "size", "classes"), [("cifar10", 32, 10), ("cifar100", 32, 100),
                                                       ("imagenet", 224, 1000)])
def test_bundled_samples(name, size, classes):
    ds = samples(name)
    assert len(ds) == 20 and ds.images.shape[1:] == (3, size, size) and ds.num_classes == classes
    assert ds.images.float().std() > 10  # real images, not blank
    assert int(ds.labels.max()) < classes


def test_samples_known_labels_and_limits():
    ds = samples("cifar10", 5)
    assert len(ds) == 5 and ds.labels.tolist()[:3] == [3, 8, 8]  # cifar10_00_3, 01_8, 02_8
    x = ds.float_images()
    assert x.dtype == torch.float32 and float(x.min()) >= 0 and float(x.max()) <= 1
    assert len(load("samples:cifar10")) == 20
    with pytest.raises(XaisecError, match="unknown sample set"):
        samples("mnist-ish")
    with pytest.raises(XaisecError, match="n must be"):
        samples("cifar10", 0)
