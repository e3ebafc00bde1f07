"""Data: image folders and tars, CIFAR python archives, MedMNIST npz, and bundled sample images.

``load(source, split)`` accepts a registered name (``cifar10``, ``cifar100``, ``pneumoniamnist``,
``samples:cifar10``...) or a path (a folder, a ``.tar``, a ``.npz``, a ``cifar-10-batches-py`` folder).
"""

from __future__ import annotations

from pathlib import Path

from xaisec.data.cifar_python import download_cifar, load_cifar_python
from xaisec.data.dataset import ImageDataset
from xaisec.data.imagefolder import load_image_folder
from xaisec.data.medmnist import load_medmnist
from xaisec.data.paths import CIFAR10_CLASSES, PNEUMONIA_CLASSES, cache_dir, shared_dir, shared_path
from xaisec.data.samples import SAMPLE_SETS, samples
from xaisec.utils.checks import XaisecError

DATASETS = {
    "cifar10": "CIFAR-10 test/train: the shared JPEG tar when present, else the official python archive",
    "cifar100": "CIFAR-100: the official python archive (downloaded when online)",
    "pneumoniamnist": "PneumoniaMNIST 28x28 chest X-rays, normal vs pneumonia (shared .npz)",
    "samples:cifar10": "20 real CIFAR-10 test images bundled with foolbox (no download)",
    "samples:cifar100": "20 real CIFAR-100 images bundled with foolbox",
    "samples:imagenet": "20 real ImageNet validation images bundled with foolbox (224x224)",
}


def load(source: str | Path, split: str = "test", *, strict: bool = False, image_size: int | None = None,
         resize_mode: str = "crop", mode: str | None = "RGB", progress: bool = True) -> ImageDataset:
    """Load a data set by registered name or path; see the module docstring.

    ``image_size`` S resizes every image to S x S (centre crop, or ``resize_mode="pad"``); ``mode`` applies to
    image folders (``"RGB"``, ``"L"``, or None: grey when every image is); ``progress`` shows the folder bar.
    """
    from xaisec.data.imagefolder import check_image_size

    check_image_size(image_size, resize_mode)
    if image_size is not None and not _is_folder(source):
        ds = load(source, split, strict=strict, mode=mode, progress=progress)
        return ds.resized(image_size, resize_mode)
    kw = {"strict": strict, "image_size": image_size, "resize_mode": resize_mode, "mode": mode, "progress": progress}
    s = str(source)
    if s.startswith("samples:"):
        return samples(s.split(":", 1)[1])
    if s == "cifar10":
        tar = shared_path("data", "cifar10-jpeg.tar")
        if tar is not None:
            return load_image_folder(tar, split, **kw)
        return load_cifar_python(download_cifar(10), split, 10)
    if s == "cifar100":
        return load_cifar_python(download_cifar(100), split, 100)
    if s == "pneumoniamnist":
        npz = shared_path("data", "pneumoniamnist", "pneumoniamnist.npz")
        if npz is None:
            raise XaisecError("PneumoniaMNIST not found: pass --data path/to/pneumoniamnist.npz")
        return load_medmnist(npz, split)
    path = Path(s)
    if not path.exists():
        raise XaisecError(
            f"{s}: neither a file/folder nor a registered data set (known: {', '.join(DATASETS)})"
        )
    if path.suffix == ".npz":
        return load_medmnist(path, split)
    if path.is_dir() and any((path / m).exists() or (path / d / m).exists()
                             for m in ("batches.meta", "meta") for d in ("cifar-10-batches-py", "cifar-100-python")):
        return load_cifar_python(path, split)
    if path.is_dir() and not (path / split).is_dir():
        return load_image_folder(path, None, **kw)
    return load_image_folder(path, split, **kw)


def _is_folder(source: str | Path) -> bool:
    """True when ``source`` is read as an image folder or tar (decoded image by image, so resized there)."""
    s = str(source)
    if s == "cifar10":
        return shared_path("data", "cifar10-jpeg.tar") is not None
    path = Path(s)
    return path.exists() and path.suffix != ".npz" and not (
        path.is_dir() and any((path / m).exists() or (path / d / m).exists() for m in ("batches.meta", "meta")
                              for d in ("cifar-10-batches-py", "cifar-100-python")))


__all__ = [
    "CIFAR10_CLASSES", "DATASETS", "PNEUMONIA_CLASSES", "SAMPLE_SETS", "ImageDataset", "cache_dir",
    "download_cifar", "load", "load_cifar_python", "load_image_folder", "load_medmnist", "samples",
    "shared_dir", "shared_path",
]
