"""Where data lives: the project's shared folder, and the per-user cache."""

from __future__ import annotations

import os
from pathlib import Path

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PNEUMONIA_CLASSES = ["normal", "pneumonia"]


def cache_dir() -> Path:
    """``$XAISEC_CACHE`` or ``~/.cache/xaisec``: downloads and decoded-data caches."""
    root = os.environ.get("XAISEC_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "xaisec"
    return path


def shared_dir() -> Path | None:
    """The shared data folder: ``$XAISEC_SHARED``, else ``../shared`` next to the working directory
    or next to the source checkout; None when there is none."""
    env = os.environ.get("XAISEC_SHARED")
    if env:
        return Path(env) if Path(env).is_dir() else None
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        cand = base.parent / "shared"
        if (cand / "data").is_dir():
            return cand
    return None


def shared_path(*parts: str) -> Path | None:
    """A path inside the shared folder if it exists, else None."""
    root = shared_dir()
    if root is None:
        return None
    p = root.joinpath(*parts)
    return p if p.exists() else None
