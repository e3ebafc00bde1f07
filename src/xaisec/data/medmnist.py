"""MedMNIST ``.npz`` files (e.g. PneumoniaMNIST): ``{split}_images`` and ``{split}_labels`` arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xaisec.data.dataset import ImageDataset
from xaisec.data.paths import PNEUMONIA_CLASSES
from xaisec.utils.checks import XaisecError


def load_medmnist(path: str | Path, split: str = "test", classes: list[str] | None = None) -> ImageDataset:
    """Read one split of a MedMNIST npz: images uint8 (N, H, W) or (N, H, W, 3), labels (N, 1) or (N,)."""
    path = Path(path)
    if not path.is_file():
        raise XaisecError(f"{path}: no such file; give the MedMNIST .npz (e.g. pneumoniamnist.npz)")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] != b"PK":  # .npz files are zip archives; anything else is refused before numpy reads it
        raise XaisecError(f"{path}: not a NumPy .npz archive (a MedMNIST .npz is a zip of arrays); check the file")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise XaisecError(f"{path}: not a readable .npz archive of arrays; the file is corrupted") from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise XaisecError(f"{path}: not a NumPy .npz archive")
    with z:
        key_i, key_l = f"{split}_images", f"{split}_labels"
        if key_i not in z or key_l not in z:
            splits = sorted({f[: -len("_images")] for f in z.files if f.endswith("_images")}
                            & {f[: -len("_labels")] for f in z.files if f.endswith("_labels")})
            raise XaisecError(f"{path}: no split {split!r}; the splits here are {splits} (--split)"
                              if splits else f"{path}: no {key_i!r}/{key_l!r} arrays (has {sorted(z.files)})")
        try:
            images, labels = z[key_i], z[key_l]
        except (OSError, ValueError) as exc:
            raise XaisecError(f"{path}: cannot read the {split!r} arrays (corrupted, or object arrays)") from exc
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise XaisecError(f"{path}: {key_i} must be uint8 (N, H, W[, 3]), got {images.dtype} {images.shape}")
    labels = labels.reshape(-1)
    if labels.shape[0] != images.shape[0]:
        raise XaisecError(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or int(labels.min()) < 0):
        raise XaisecError(f"{path}: {key_l} must hold class indices >= 0, got dtype {labels.dtype}")
    if images.shape[0] == 0:
        raise XaisecError(f"{path}: split {split!r} holds no images")
    chw = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    n_cls = int(labels.max()) + 1 if labels.size else 0
    if classes is None:
        classes = list(PNEUMONIA_CLASSES) if "pneumonia" in path.name.lower() else [str(i) for i in range(n_cls)]
    if n_cls > len(classes):
        raise XaisecError(f"{path}: labels go up to {n_cls - 1} but there are {len(classes)} classes {classes}")
    return ImageDataset(
        torch.from_numpy(np.ascontiguousarray(chw)), torch.from_numpy(labels.astype(np.int64)), classes,
        name=f"{path.stem}:{split}",
    )
