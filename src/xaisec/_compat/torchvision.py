"""Import torchvision in one place, on CUDA and on CPU-only torch builds.

With a CPU-only torch, torchvision's compiled extension may fail to load (it needs CUDA libraries);
``torchvision/_meta_registrations.py`` then registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms`` without checking that they exist, and ``import torchvision`` raises
"operator torchvision::nms does not exist". Defining the two operator schemas first lets models,
transforms and datasets work (not ``torchvision.ops`` or image decoding). Where the extension loads,
nothing is changed.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import torch

from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)

_SHIM_LIBRARY: torch.library.Library | None = None
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
)


def extension_loads() -> bool:
    """True when torchvision's compiled extension loads into this torch build."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    candidates = sorted(Path(spec.origin).parent.glob("_C*.so")) + sorted(Path(spec.origin).parent.glob("_C*.pyd"))
    if not candidates:
        return False
    try:
        torch.ops.load_library(str(candidates[0]))
    except (OSError, RuntimeError) as exc:
        log.debug("torchvision extension does not load: %s", exc)
        return False
    return True


def _define_missing_schemas() -> None:
    global _SHIM_LIBRARY
    if _SHIM_LIBRARY is not None:
        return
    lib = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        lib.define(schema)
    _SHIM_LIBRARY = lib  # keep a reference: the definitions live as long as the Library object
    log.info("torchvision's compiled ops are unavailable on this torch build; using model definitions only")


def import_torchvision() -> ModuleType:
    """Return the ``torchvision`` module, applying the CPU-build shim when it is needed.

    Raises:
        XaisecError: torchvision is not installed, or fails to import for another reason.
    """
    if importlib.util.find_spec("torchvision") is None:
        raise XaisecError(
            "torchvision is not installed; install it with `pip install -c constraints.txt torchvision` "
            "to use the ImageNet models"
        )
    import sys

    if "torchvision" not in sys.modules and not extension_loads():
        _define_missing_schemas()
    try:
        import torchvision
    except RuntimeError as exc:  # pragma: no cover - depends on the local build
        raise XaisecError(
            f"torchvision is installed but does not import with torch {torch.__version__}: {exc}"
        ) from exc
    return torchvision
