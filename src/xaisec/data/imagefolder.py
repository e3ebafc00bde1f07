"""Image-folder data sets (``[split/]<class>/<image>``) read from a directory or straight from a ``.tar``.

Any mix of sizes (``image_size=S`` resizes and centre-crops, or pads, every image to S x S) and of modes
(grey, RGB, RGBA, palette, 16-bit: read as grey when every image is grey, else as RGB), upper- or
lower-case extensions, names with spaces or non-ASCII letters. Non-image files, unreadable or corrupt
images, decompression bombs and a truncated archive are skipped with ONE warning that counts them,
unless ``strict=True``, which fails on the first one. Hidden files (``.DS_Store``...) are ignored. The
decoded set of a tar is cached under the user cache (keyed by the archive's path, size and mtime).
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
import warnings
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

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                  ".pbm", ".pnm"}
RESIZE_MODES = ("crop", "pad")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_BROKEN = "\0broken-archive"  # pseudo class name for the unreadable tail of a truncated archive


def _class_order(names: set[str]) -> list[str]:
    """CIFAR-10's standard order when the folders are its classes, else sorted."""
    return list(CIFAR10_CLASSES) if names == set(CIFAR10_CLASSES) else sorted(names)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in ("Thumbs.db", "desktop.ini", "__MACOSX")


def has_splits(path: str | Path) -> bool:
    """True when ``path`` is a folder holding ``train/`` or ``test/`` above its class folders."""
    path = Path(path)
    return path.is_dir() and any((path / s).is_dir() for s in ("train", "test"))


def _entries_from_dir(root: Path, split: str | None) -> Iterator[tuple[str, str, bytes | Path]]:
    base = root / split if split else root
    if not base.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise XaisecError(f"{root}: no folder {split!r} (sub-folders here: {have}); pass split=... or --split")
    for cls_dir in sorted(p for p in base.iterdir() if p.is_dir() and not _hidden(p.name)):
        yield cls_dir.name, "", b""  # announce the class even when it turns out empty
        for f in sorted(cls_dir.iterdir()):
            if f.is_file() and not _hidden(f.name):
                yield cls_dir.name, str(f), f


def _entries_from_tar(path: Path, split: str | None) -> Iterator[tuple[str, str, bytes | Path]]:
    try:
        tf = tarfile.open(path)  # noqa: SIM115 - closed by the `with` below; open errors need their own message
    except (tarfile.TarError, OSError) as exc:
        raise XaisecError(f"{path}: not a readable tar archive ({exc})") from exc
    with tf:
        members = iter(tf)
        while True:
            try:
                m = next(members)
            except StopIteration:
                return
            except (tarfile.TarError, OSError, EOFError) as exc:
                yield _BROKEN, f"{path} (after the last readable member: {exc})", b""
                return
            if not m.isfile():
                continue
            parts = Path(m.name.lstrip("./")).parts
            if split:
                if split not in parts[:-2]:
                    continue
                parts = parts[parts.index(split) + 1 :]
            if len(parts) < 2 or any(_hidden(p) for p in parts):
                continue
            try:
                fh = tf.extractfile(m)
                data = fh.read() if fh is not None else None
            except (tarfile.TarError, OSError, EOFError) as exc:
                yield _BROKEN, f"{m.name} (truncated archive: {exc})", b""
                return
            if data is not None:
                yield parts[-2], m.name, data


def _fit(im: Image.Image, image_size: int, resize_mode: str) -> Image.Image:
    """Resize the shorter side to S and centre-crop (``crop``), or the longer side to S and pad with black
    (``pad``), giving S x S."""
    w, h = im.size
    if resize_mode == "crop":
        scale = image_size / min(w, h)
        nw, nh = max(image_size, round(w * scale)), max(image_size, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0 if scale < 0.5 else None)
        left, top = (nw - image_size) // 2, (nh - image_size) // 2
        return im.crop((left, top, left + image_size, top + image_size))
    scale = image_size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0 if scale < 0.5 else None)
    canvas = Image.new(im.mode, (image_size, image_size))
    canvas.paste(im, ((image_size - nw) // 2, (image_size - nh) // 2))
    return canvas


def _to_mode(im: Image.Image, mode: str | None) -> Image.Image:
    """Convert to ``"L"`` or ``"RGB"`` (None: ``"L"`` for grey images, else ``"RGB"``); transparent pixels
    are composited on white; 16-bit and float grey images are scaled to 8 bits."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    grey = im.mode in _GREY_MODES
    target = mode or ("L" if grey else "RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    return im.convert(target)


def _decode(data: bytes | Path, mode: str | None, size: tuple[int, int] | None, image_size: int | None = None,
            resize_mode: str = "crop") -> np.ndarray:
    """Decode one file to uint8 (H, W) for grey or (H, W, 3); raises on anything unreadable."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # a bomb is a bad file, not a warning
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            im.load()
            im = _to_mode(im, mode)
    if image_size is not None:
        im = _fit(im, image_size, resize_mode)
    elif size is not None and im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _cache_file(path: Path, split: str | None, mode: str | None, size, image_size, resize_mode) -> Path:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{split}|{mode}|{size}"
    if image_size is not None:  # keys without it stay those of earlier versions: their caches stay valid
        key += f"|{image_size}|{resize_mode}"
    return cache_dir() / "imagefolder" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")


def check_image_size(image_size: int | None, resize_mode: str = "crop") -> None:
    """Raise a clear error for an image size <= 0 or an unknown resize mode."""
    if image_size is not None and (isinstance(image_size, bool) or int(image_size) != image_size or image_size < 1):
        raise XaisecError(f"image size must be a positive integer number of pixels, got {image_size}")
    if resize_mode not in RESIZE_MODES:
        raise XaisecError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, got {resize_mode!r}")


def load_image_folder(
    path: str | Path,
    split: str | None = None,
    *,
    mode: str | None = "RGB",
    size: tuple[int, int] | None = None,
    image_size: int | None = None,
    resize_mode: str = "crop",
    strict: bool = False,
    cache: bool = True,
    progress: bool = True,
) -> ImageDataset:
    """Read ``path`` (a directory or a ``.tar``) laid out as ``[split/]<class>/<image>``.

    Args:
        path: folder or tar archive.
        split: sub-folder such as ``"train"`` or ``"test"``; None when the class folders are at the top.
        mode: ``"RGB"`` (3 channels), ``"L"`` (1 channel), or None: ``"L"`` when every image is grey, else RGB.
        size: (H, W) to resize every image to (aspect ratio not kept).
        image_size: S: resize and centre-crop (``resize_mode="crop"``) or pad (``"pad"``) to S x S;
            needed when the images differ in size. Takes precedence over ``size``.
        strict: fail on the first unreadable file instead of skipping it.
        cache: keep the decoded arrays in the user cache (tar archives only).
        progress: show a progress bar.

    Returns:
        an :class:`ImageDataset` with uint8 images (N, C, H, W) and the folder names as classes.
    """
    check_image_size(image_size, resize_mode)
    if mode not in (None, "RGB", "L"):
        raise XaisecError(f"mode must be 'RGB', 'L' or None, got {mode!r}")
    path = Path(path)
    if not path.exists():
        raise XaisecError(f"{path}: no such file or folder; give an image folder or a .tar of one")
    is_tar = path.is_file()
    cache_path = _cache_file(path, split, mode, size, image_size, resize_mode) if (is_tar and cache) else None
    if cache_path is not None and not cache_path.exists() and image_size is not None:
        plain = _cache_file(path, split, mode, size, None, resize_mode)  # images already S x S: same arrays
        if plain.exists():
            with np.load(plain) as z:
                if tuple(z["images"].shape[2:]) == (image_size, image_size):
                    cache_path = plain
    if cache_path is not None and cache_path.exists():
        try:
            with np.load(cache_path) as z:
                return ImageDataset(
                    torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]), [str(c) for c in z["classes"]],
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
        if cls == _BROKEN:
            if strict:
                raise XaisecError(f"{fname}: cannot read the rest of the archive; re-create or re-download it")
            skipped += 1
            continue
        class_names.add(cls)
        if not fname:
            continue
        if Path(fname).suffix.lower() not in IMAGE_SUFFIXES:
            if strict:
                raise XaisecError(f"{fname}: not an image file (suffix {Path(fname).suffix!r})")
            skipped += 1
            continue
        try:
            arr = _decode(data, mode, size, image_size, resize_mode)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as exc:
            if strict:
                raise XaisecError(f"{fname}: cannot decode image ({exc}); remove or replace the file") from exc
            log.debug("skipping %s: %s", fname, exc)
            skipped += 1
            continue
        if arrays and arr.shape[:2] != arrays[0].shape[:2]:
            raise XaisecError(
                f"{fname}: size {arr.shape[:2]} differs from {arrays[0].shape[:2]}; pass --image-size S "
                "(image_size=S) to resize and centre-crop every image to S x S"
            )
        arrays.append(arr)
        names.append(cls)
        files.append(fname)

    if not class_names:
        where = f"{path}/{split}" if split else str(path)
        raise XaisecError(f"{where}: no class sub-folders with images found (expected <class>/<image> files)")
    classes = _class_order(class_names)
    present = set(names)
    empty = sorted(c for c in classes if c not in present)
    if empty:
        raise XaisecError(f"{path}: class folder(s) {empty} contain no readable images; add images or remove them")
    if skipped:
        log.warning("%s: skipped %d unreadable or non-image file(s); pass strict=True (--strict) to fail instead",
                    path, skipped)
    if any(a.ndim == 3 for a in arrays):  # mixed grey and colour (mode=None): grey images become RGB
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays]
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
