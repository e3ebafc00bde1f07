"""Atomic file writes: a result file is either the old one or the complete new one, never half."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def json_safe(obj: Any) -> Any:
    """``obj`` with tensors/arrays as lists and every NaN or infinite float replaced by None (JSON null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return json_safe(_json_default(obj))


def to_json(obj: Any, *, indent: int | None = 2, nan: str = "null") -> str:
    """Strict JSON text (never NaN/Infinity). ``nan="null"`` writes non-finite floats as null; ``nan="error"``
    raises XaisecError instead."""
    from xaisec.utils.checks import XaisecError

    if nan == "null":
        obj = json_safe(obj)
    try:
        return json.dumps(obj, indent=indent, default=_json_default, allow_nan=False)
    except ValueError as exc:
        raise XaisecError(f"refusing to write NaN or infinity into JSON ({exc})") from exc


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, nan: str = "null") -> Path:
    """Atomically write ``obj`` as indented strict JSON (tensors and arrays become lists; NaN and infinity
    become null, or raise with ``nan="error"``)."""
    return atomic_write_text(path, to_json(obj, nan=nan) + "\n")


def check_out_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Check before any work that ``path`` is, or can be created as, a writable folder; return it.

    Raises:
        XaisecError: when it is an existing file, or it (or its nearest existing parent) is not writable.
    """
    from xaisec.utils.checks import XaisecError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise XaisecError(f"{what} {p} is an existing file, not a folder; give a folder path")
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise XaisecError(f"{what} {p}: {probe} is a file, so the folder cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise XaisecError(f"{what} {p}: {probe} is not writable; choose another folder")
    return p


def atomic_replace_together(files: dict[str | os.PathLike[str], bytes]) -> list[Path]:
    """Write several files so that they change together: every temporary file is written first, then all are
    moved into place (an interruption during writing leaves every old file; the moves take microseconds)."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise
    return [p for _, p in temps]
