import pickle

import numpy as np
import pytest
import torch

from xaisec.data import load, load_cifar_python
from xaisec.data.cifar_python import download_cifar
from xaisec.utils.checks import XaisecError


def _write_cifar10(root, n=4):
    """A small file set in the real cifar-10-batches-py format (pickled dicts of bytes keys)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": n}, f, protocol=2)
    data = {}
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        arr = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / fname, "wb") as f:
            pickle.dump({b"batch_label": fname.encode(), b"labels": labels, b"data": arr,
                         b"filenames": [b"x.png"] * n}, f, protocol=2)
        data[fname] = (arr, labels)
    return folder, data


def test_reads_real_format_train_and_test(tmp_path):
    folder, data = _write_cifar10(tmp_path)
    test = load_cifar_python(folder, "test")
    arr, labels = data["test_batch"]
    assert test.images.shape == (4, 3, 32, 32) and test.classes[0] == "airplane"
    assert torch.equal(test.images, torch.from_numpy(arr.reshape(-1, 3, 32, 32)))
    assert test.labels.tolist() == labels
    train = load_cifar_python(tmp_path, "train")  # parent folder also works
    assert len(train) == 20
    assert len(load(folder, "test")) == 4  # the generic loader recognises the format


def test_cifar100_format(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, f)
    arr = np.zeros((3, 3072), np.uint8)
    with open(folder / "test", "wb") as f:
        pickle.dump({b"data": arr, b"fine_labels": [5, 6, 99], b"coarse_labels": [0, 0, 1]}, f)
    ds = load_cifar_python(folder, "test", 100)
    assert ds.labels.tolist() == [5, 6, 99] and ds.num_classes == 100


def test_malicious_pickle_is_refused(tmp_path):
    folder, _ = _write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(XaisecError, match="refusing"):
        load_cifar_python(folder, "test")


def test_bad_shapes_and_missing_files(tmp_path):
    folder, _ = _write_cifar10(tmp_path)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(XaisecError, match="3072"):
        load_cifar_python(folder, "test")
    (folder / "data_batch_3").unlink()
    with pytest.raises(XaisecError, match="data_batch_3"):
        load_cifar_python(folder, "train")
    with pytest.raises(XaisecError, match="split"):
        load_cifar_python(folder, "val")


def test_download_offline_gives_clear_error(tmp_path, monkeypatch):
    import urllib.request

    def offline(*_a, **_k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(XaisecError, match="download it by hand"):
        download_cifar(10, root=tmp_path)


@pytest.mark.network
def test_download_real_archive(tmp_path):
    try:
        folder = download_cifar(10, root=tmp_path, timeout=10)
    except XaisecError as exc:
        pytest.skip(f"offline: {exc}")
    assert len(load_cifar_python(folder, "test")) == 10000
