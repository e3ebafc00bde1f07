import pytest

from tests.conftest import shared_or_skip
from xaisec.data import load
from xaisec.utils.checks import XaisecError


def test_unknown_name_lists_known_sets():
    with pytest.raises(XaisecError, match="cifar10"):
        load("imagenet-full")


def test_shared_cifar10_jpeg_test_split():
    shared_or_skip("data", "cifar10-jpeg.tar")
    ds = load("cifar10", "test")
    assert len(ds) == 10000 and ds.images.shape[1:] == (3, 32, 32)
    assert ds.labels.bincount().tolist() == [1000] * 10
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
