"""Build a small real-photo image folder of mixed sizes and modes from the scikit-image and foolbox sample
images, with awkward names, a corrupt file and a text file: the acceptance test of xaisec's folder loader.

    python scripts/make_mixed_folder.py runs/mixed_folder

Classes: ``animal``, ``object`` and ``scan`` (``scan`` holds grey scientific images). Needs scikit-image
(``pip install scikit-image``) and foolbox (an xaisec dependency); nothing is downloaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def _skimage() -> dict[str, np.ndarray]:
    import skimage.data as d

    names = ["astronaut", "camera", "chelsea", "cat", "coffee", "rocket", "retina", "coins", "page", "moon", "text",
             "clock", "hubble_deep_field", "immunohistochemistry", "logo", "colorwheel", "brick", "grass", "gravel",
             "microaneurysms", "horse", "checkerboard"]
    out = {}
    for n in names:
        try:
            out[n] = np.asarray(getattr(d, n)())
        except Exception:  # some sample images need a download; skip those offline
            continue
    return out


def _foolbox(kind: str) -> list[Path]:
    import foolbox

    return sorted((Path(foolbox.__file__).parent / "data").glob(f"{kind}_*"))


CLASSES = {
    "animal": ["chelsea", "cat", "horse", "astronaut"],
    "object": ["coffee", "rocket", "clock", "logo", "colorwheel", "checkerboard", "page", "text", "camera"],
    "scan": ["retina", "coins", "moon", "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel",
             "microaneurysms"],
}


def build(out: Path) -> dict[str, int]:
    """Write the folder; returns {class: files written} (the two bad files included)."""
    photos = _skimage()
    counts: dict[str, int] = {}
    for cls in CLASSES:
        (out / cls).mkdir(parents=True, exist_ok=True)
    for i, (cls, names) in enumerate(CLASSES.items()):
        for j, n in enumerate(n for n in names if n in photos):
            arr = photos[n]
            if arr.dtype == bool:
                arr = arr.astype(np.uint8) * 255
            img = Image.fromarray(arr)
            # vary format, mode, extension case and name: spaces, non-ASCII letters
            variant = (i * 7 + j) % 6
            if variant == 0:
                img.save(out / cls / f"{n} photo.PNG")
            elif variant == 1:
                img.convert("RGB").save(out / cls / f"{n}_é_ü.jpg", quality=90)
            elif variant == 2:
                img.convert("P", palette=Image.Palette.ADAPTIVE).save(out / cls / f"{n}-palette.gif")
            elif variant == 3:
                img.convert("RGBA").save(out / cls / f"{n} (rgba).png")
            elif variant == 4:
                img.convert("L").save(out / cls / f"Ñ_{n}.JPEG", quality=85)
            else:
                img.save(out / cls / f"{n}.bmp")
            counts[cls] = counts.get(cls, 0) + 1
    # foolbox ImageNet validation JPEGs (224 x 224) and MNIST digits (28 x 28 grey)
    for k, f in enumerate(_foolbox("imagenet")[:6]):
        (out / "animal" / f"foolbox {k}.jpg").write_bytes(f.read_bytes())
        counts["animal"] += 1
    for k, f in enumerate(_foolbox("mnist")[:4]):
        (out / "scan" / f"digit_{k}.png").write_bytes(f.read_bytes())
        counts["scan"] += 1
    # the two bad files: a truncated JPEG and a text file
    good = next((out / "object").glob("*.jpg"), None) or next((out / "object").iterdir())
    (out / "object" / "corrupt.jpg").write_bytes(good.read_bytes()[:200])
    (out / "object" / "README.txt").write_text("not an image\n", encoding="utf-8")
    counts["object"] += 2
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    counts = build(ap.parse_args().out)
    print(f"wrote {sum(counts.values())} files (2 of them bad on purpose): {counts}")


if __name__ == "__main__":
    main()
