"""The standard CIFAR-10 / CIFAR-100 python-format archives (``cifar-10-batches-py``, ``cifar-100-python``).

Read with a restricted unpickler that only admits the NumPy types the archives contain, so a
tampered file cannot run code. :func:`download_cifar` fetches the official archive (checked by MD5).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xaisec.data.dataset import ImageDataset
from xaisec.data.paths import cache_dir
from xaisec.utils.checks import XaisecError
from xaisec.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

ARCHIVES = {
    10: ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
         "cifar-10-batches-py"),
    100: ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
          "cifar-100-python"),
}
_FILES = {
    10: {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"], "meta": "batches.meta",
         "labels": b"labels", "names": b"label_names"},
    100: {"train": ["train"], "test": ["test"], "meta": "meta", "labels": b"fine_labels",
          "names": b"fine_label_names"},
}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR format")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = _SafeUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise XaisecError(f"{path}: not a valid CIFAR python-format batch ({exc})") from exc
    if not isinstance(obj, dict):
        raise XaisecError(f"{path}: expected a dict, got {type(obj).__name__}")
    return obj


def load_cifar_python(root: str | Path, split: str = "test", variant: int | None = None) -> ImageDataset:
    """Read a ``cifar-10-batches-py`` or ``cifar-100-python`` folder.

    Args:
        root: the folder itself (or its parent).
        split: ``"train"`` or ``"test"``.
        variant: 10 or 100; guessed from the files when None.
    """
    root = Path(root)
    if variant is None:
        for v, (_, _, folder) in ARCHIVES.items():
            if (root / folder).is_dir():
                root = root / folder
            if (root / _FILES[v]["meta"]).exists():
                variant = v
                break
    if variant not in _FILES:
        raise XaisecError(f"{root}: no CIFAR python-format files (batches.meta or meta) found")
    spec = _FILES[variant]
    if split not in ("train", "test"):
        raise XaisecError(f"split must be 'train' or 'test', got {split!r}")
    missing = [f for f in spec[split] if not (root / f).exists()]
    if missing:
        raise XaisecError(f"{root}: missing {missing}; re-download the archive")
    names = [n.decode() for n in _unpickle(root / spec["meta"])[spec["names"]]]
    images, labels = [], []
    for f in spec[split]:
        d = _unpickle(root / f)
        data = np.asarray(d.get(b"data"))
        lab = np.asarray(d.get(spec["labels"]))
        if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
            raise XaisecError(f"{root / f}: data must be uint8 (N, 3072), got {data.dtype} {data.shape}")
        if lab.shape != (data.shape[0],):
            raise XaisecError(f"{root / f}: {data.shape[0]} images but {lab.shape} labels")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return ImageDataset(
        torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels).astype(np.int64)),
        names, name=f"cifar{variant}-python:{split}",
    )


def download_cifar(variant: int = 10, root: str | Path | None = None, timeout: float = 30.0) -> Path:
    """Download and extract the official CIFAR python archive into ``root`` (default: the user cache).

    Returns the extracted folder. Raises :class:`XaisecError` with the manual fix when offline.
    """
    url, md5, folder = ARCHIVES[variant]
    root = Path(root) if root else cache_dir() / "cifar"
    target = root / folder
    if target.is_dir():
        return target
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise XaisecError(
            f"cannot download CIFAR-{variant} from {url} ({exc}); download it by hand and extract it into {root}"
        ) from exc
    if hashlib.md5(data).hexdigest() != md5:
        raise XaisecError(f"downloaded CIFAR-{variant} archive has the wrong checksum; try again")
    archive = atomic_write_bytes(root / Path(url).name, data)
    with tarfile.open(archive) as tf:
        tf.extractall(root, filter="data")
    return target
