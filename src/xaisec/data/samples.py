"""The real sample images the ``foolbox`` wheel ships (``foolbox/data``): 20 CIFAR-10, 20 CIFAR-100 and
20 ImageNet validation images with labels, the embedded default on a machine with no data."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from xaisec.data.dataset import ImageDataset
from xaisec.data.paths import CIFAR10_CLASSES
from xaisec.utils.checks import XaisecError

SAMPLE_SETS = {"cifar10": ("cifar10", 32), "cifar100": ("cifar100", 32), "imagenet": ("imagenet", 224)}


def samples_dir() -> Path:
    spec = importlib.util.find_spec("foolbox")
    if spec is None or spec.origin is None:
        raise XaisecError("the bundled sample images come with foolbox: `pip install foolbox==3.3.4`")
    path = Path(spec.origin).parent / "data"
    if not path.is_dir():
        raise XaisecError(f"{path}: foolbox is installed without its data folder; reinstall foolbox==3.3.4")
    return path


def samples(name: str = "cifar10", n: int = 20) -> ImageDataset:
    """Up to 20 real labelled images: ``"cifar10"``, ``"cifar100"`` (32x32) or ``"imagenet"`` (224x224).

    Returns an :class:`ImageDataset`; ``samples("cifar10").float_images()`` is (n, 3, 32, 32) in [0, 1].
    """
    if name not in SAMPLE_SETS:
        raise XaisecError(f"unknown sample set {name!r}; choose from {sorted(SAMPLE_SETS)}")
    if n < 1:
        raise XaisecError(f"n must be >= 1, got {n}")
    prefix, size = SAMPLE_SETS[name]
    pattern = re.compile(rf"^{prefix}_(\d+)_(\d+)\.(png|jpg)$")
    found = sorted((int(m.group(1)), int(m.group(2)), p) for p in samples_dir().iterdir()
                   if (m := pattern.match(p.name)))
    if not found:
        raise XaisecError(f"no {name} sample images in {samples_dir()}")
    found = found[:n]
    arrays = []
    for _, _, p in found:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if im.size != (size, size):  # ImageNet samples: shorter side to size, centre crop
                scale = size / min(im.size)
                im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))),
                               Image.BILINEAR)
                left, top = (im.width - size) // 2, (im.height - size) // 2
                im = im.crop((left, top, left + size, top + size))
            arrays.append(np.asarray(im, dtype=np.uint8))
    images = torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())
    labels = torch.tensor([lab for _, lab, _ in found])
    n_classes = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}[name]
    classes = list(CIFAR10_CLASSES) if name == "cifar10" else [str(i) for i in range(n_classes)]
    return ImageDataset(images, labels, classes, name=f"samples:{name}", files=[str(p) for *_, p in found])
