"""Image-folder data sets (``[split/]<class>/<image>``) read from a directory or straight from a ``.tar``.

Unreadable files (corrupted, or not images) are skipped with a warning that counts them, unless
``strict=True``, which fails on the first one. The decoded set is cached under the user cache
(keyed by the archive's path, size and modification time), so a second load takes a second.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from xaisec.data.dataset import ImageDataset
from xaisec.data.paths import CIFAR10_CLASSES, cache_dir
from xaisec.utils.checks import XaisecError
from xaisec.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


def _class_order(names: set[str]) -> list[str]:
    """CIFAR-10's standard order when the folders are its classes, else sorted."""
    return list(CIFAR10_CLASSES) if names == set(CIFAR10_CLASSES) else sorted(names)


def _entries_from_dir(root: Path, split: str | None) -> Iterator[tuple[str, str, bytes | Path]]:
    base = root / split if split else root
    if not base.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise XaisecError(f"{root}: no folder {split!r} (sub-folders here: {have}); pass split=... or --split")
    for cls_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in sorted(cls_dir.iterdir()):
            if f.is_file():
                yield cls_dir.name, str(f), f


def _entries_from_tar(path: Path, split: str | None) -> Iterator[tuple[str, str, bytes | Path]]:
    try:
        tf = tarfile.open(path)  # noqa: SIM115 - closed by the `with` below; open errors need their own message
    except (tarfile.TarError, OSError) as exc:
        raise XaisecError(f"{path}: not a readable tar archive ({exc})") from exc
    with tf:
        for m in tf:
            if not m.isfile():
                continue
            parts = Path(m.name.lstrip("./")).parts
            if split:
                if split not in parts[:-2]:
                    continue
                parts = parts[parts.index(split) + 1 :]
            if len(parts) < 2:
                continue
            fh = tf.extractfile(m)
            if fh is not None:
                yield parts[-2], m.name, fh.read()


def _decode(data: bytes | Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        im = im.convert(mode)
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def _cache_file(path: Path, split: str | None, mode: str, size: tuple[int, int] | None) -> Path:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{split}|{mode}|{size}"
    return cache_dir() / "imagefolder" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")


def load_image_folder(
    path: str | Path,
    split: str | None = None,
    *,
    mode: str = "RGB",
    size: tuple[int, int] | None = None,
    strict: bool = False,
    cache: bool = True,
    progress: bool = True,
) -> ImageDataset:
    """Read ``path`` (a directory or a ``.tar``) laid out as ``[split/]<class>/<image>``.

    Args:
        path: folder or tar archive.
        split: sub-folder such as ``"train"`` or ``"test"``; None when the class folders are at the top.
        mode: PIL mode, ``"RGB"`` (3 channels) or ``"L"`` (1 channel).
        size: (H, W) to resize to; required when the images differ in size.
        strict: fail on the first unreadable file instead of skipping it.
        cache: keep the decoded arrays in the user cache (tar archives only).

    Returns:
        an :class:`ImageDataset` with uint8 images (N, C, H, W).
    """
    path = Path(path)
    if not path.exists():
        raise XaisecError(f"{path}: no such file or folder; give an image folder or a .tar of one")
    is_tar = path.is_file()
    cache_path = _cache_file(path, split, mode, size) if (is_tar and cache) else None
    if cache_path is not None and cache_path.exists():
        try:
            with np.load(cache_path) as z:
                return ImageDataset(
                    torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]), list(z["classes"]),
                    name=f"{path.name}:{split or ''}", skipped=int(z["skipped"]),
                )
        except Exception as exc:  # a damaged cache is rebuilt, never trusted
            log.warning("ignoring damaged cache %s (%s)", cache_path, exc)

    entries = _entries_from_tar(path, split) if is_tar else _entries_from_dir(path, split)
    arrays: list[np.ndarray] = []
    names: list[str] = []
    files: list[str] = []
    class_names: set[str] = set()
    skipped = 0
    for cls, fname, data in tqdm(entries, desc=f"reading {path.name}", unit="img", disable=not progress,
                                 leave=False):
        class_names.add(cls)
        if Path(fname).suffix.lower() not in IMAGE_SUFFIXES:
            if strict:
                raise XaisecError(f"{fname}: not an image file (suffix {Path(fname).suffix!r})")
            skipped += 1
            continue
        try:
            arr = _decode(data, mode, size)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            if strict:
                raise XaisecError(f"{fname}: cannot decode image ({exc}); remove or replace the file") from exc
            skipped += 1
            continue
        if arrays and arr.shape != arrays[0].shape:
            raise XaisecError(
                f"{fname}: size {arr.shape[:2]} differs from {arrays[0].shape[:2]}; pass size=(H, W) to resize"
            )
        arrays.append(arr)
        names.append(cls)
        files.append(fname)

    if not class_names:
        where = f"{path}/{split}" if split else str(path)
        raise XaisecError(f"{where}: no class sub-folders with images found (expected <class>/<image> files)")
    classes = _class_order(class_names)
    empty = sorted(c for c in classes if c not in set(names))
    if empty:
        raise XaisecError(f"{path}: class folder(s) {empty} contain no readable images")
    if skipped:
        log.warning("%s: skipped %d unreadable or non-image file(s); pass strict=True to fail instead", path, skipped)
    images = np.stack(arrays)
    images = images[..., None] if images.ndim == 3 else images
    images_t = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[c] for c in names], dtype=torch.long)
    ds = ImageDataset(images_t, labels, classes, name=f"{path.name}:{split or ''}", skipped=skipped, files=files)
    if cache_path is not None:
        buf = io.BytesIO()
        np.savez(buf, images=images_t.numpy(), labels=labels.numpy(), classes=np.array(classes), skipped=skipped)
        atomic_write_bytes(cache_path, buf.getvalue())
    return ds
