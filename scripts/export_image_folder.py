"""Write a MedMNIST ``.npz`` (e.g. PneumoniaMNIST) out as an image folder ``OUT/{train,test}/<class>/<image>.png``.

    python scripts/export_image_folder.py ../shared/data/pneumoniamnist/pneumoniamnist.npz runs/pneumonia_png

Class folder names: ``normal`` and ``pneumonia`` for PneumoniaMNIST (``--classes`` for other files); the
``val`` split goes to ``val/`` with ``--val``. A plain image folder that any xaisec command reads.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from PIL import Image

from xaisec.data.medmnist import load_medmnist

log = logging.getLogger("export_image_folder")


def export(npz: Path, out: Path, splits: tuple[str, ...] = ("train", "test"), classes: list[str] | None = None) -> dict:
    """Write every image of ``splits`` as PNG; returns {split: count}."""
    counts = {}
    for split in splits:
        ds = load_medmnist(npz, split, classes=classes)
        for c in ds.classes:
            (out / split / c).mkdir(parents=True, exist_ok=True)
        arrays = ds.images.permute(0, 2, 3, 1).numpy()
        for i, (arr, y) in enumerate(zip(arrays, ds.labels.tolist(), strict=True)):
            img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
            img.save(out / split / ds.classes[y] / f"{split}_{i:05d}.png")
        counts[split] = len(ds)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("npz", type=Path, help="a MedMNIST .npz, e.g. pneumoniamnist.npz")
    ap.add_argument("out", type=Path, help="output folder")
    ap.add_argument("--val", action="store_true", help="also write the val split")
    ap.add_argument("--classes", default=None, help="comma-separated class names (label order)")
    a = ap.parse_args()
    splits = ("train", "val", "test") if a.val else ("train", "test")
    counts = export(a.npz, a.out, splits, a.classes.split(",") if a.classes else None)
    print(f"wrote {sum(counts.values())} PNGs to {a.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
