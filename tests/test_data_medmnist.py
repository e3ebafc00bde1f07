import numpy as np
import pytest

from tests.conftest import shared_or_skip
from xaisec.data import load, load_medmnist
from xaisec.utils.checks import XaisecError


def test_reads_npz_layout(tmp_path):
    p = tmp_path / "pneumoniamnist.npz"
    np.savez(p, train_images=np.zeros((5, 28, 28), np.uint8), train_labels=np.array([[0], [1], [1], [0], [1]]),
             test_images=np.full((2, 28, 28), 7, np.uint8), test_labels=np.array([[1], [0]]))
    ds = load_medmnist(p, "test")
    assert ds.images.shape == (2, 1, 28, 28) and int(ds.images[0, 0, 0, 0]) == 7
    assert ds.labels.tolist() == [1, 0] and ds.classes == ["normal", "pneumonia"]
    assert len(load(p, "train")) == 5


def test_rgb_variant_and_errors(tmp_path):
    p = tmp_path / "derma.npz"
    np.savez(p, test_images=np.zeros((3, 28, 28, 3), np.uint8), test_labels=np.array([0, 2, 1]))
    assert load_medmnist(p, "test").images.shape == (3, 3, 28, 28)
    with pytest.raises(XaisecError, match="splits here are"):
        load_medmnist(p, "val")
    bad = tmp_path / "bad.npz"
    np.savez(bad, test_images=np.zeros((3, 28, 28), np.float32), test_labels=np.zeros(3))
    with pytest.raises(XaisecError, match="uint8"):
        load_medmnist(bad, "test")
    mism = tmp_path / "mism.npz"
    np.savez(mism, test_images=np.zeros((3, 28, 28), np.uint8), test_labels=np.zeros(2))
    with pytest.raises(XaisecError, match="labels"):
        load_medmnist(mism, "test")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"junk")
    with pytest.raises(XaisecError, match=r"not a NumPy \.npz") as info:
        load_medmnist(junk, "test")
    assert "allow_pickle" not in str(info.value)
    text = tmp_path / "text.npz"
    text.write_text("just some text\n")
    with pytest.raises(XaisecError, match=r"not a NumPy \.npz") as info:
        load_medmnist(text, "test")
    assert "allow_pickle" not in str(info.value) and "pickle" not in str(info.value)


def test_shared_pneumoniamnist_splits():
    p = shared_or_skip("data", "pneumoniamnist", "pneumoniamnist.npz")
    assert [len(load_medmnist(p, s)) for s in ("train", "val", "test")] == [3882, 524, 624]
