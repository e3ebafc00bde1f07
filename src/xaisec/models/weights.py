"""Reading and writing weights: safetensors, or ``torch.load(weights_only=True)`` checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from xaisec.utils.checks import XaisecError
from xaisec.utils.io import atomic_write_bytes

WEIGHTS_DIR = Path(__file__).parent / "weights"


def shipped_weights(name: str) -> Path | None:
    """The weights file shipped in the package for ``name``, or None."""
    p = WEIGHTS_DIR / f"{name}.safetensors"
    return p if p.exists() else None


def model_card(name: str) -> dict | None:
    """The JSON card shipped beside a model's weights (how it was trained, its accuracy), or None."""
    p = WEIGHTS_DIR / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def install_weights(*files: str | Path) -> list[Path]:
    """Copy weights files and their JSON cards into the package's shipped-weights folder (maintainers)."""
    import shutil

    return [Path(shutil.copyfile(f, WEIGHTS_DIR / Path(f).name)) for f in files]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch checkpoint (``{"state_dict": ...}`` or bare),
    stripping a ``module.`` prefix left by DataParallel. Never unpickles arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise XaisecError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise XaisecError(f"{path}: cannot read safetensors weights ({exc}); the file may be corrupted") from exc
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for bad or unsafe files
            raise XaisecError(
                f"{path}: cannot read as a torch checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
                "the file may be corrupted or hold pickled objects that are not weights"
            ) from exc
        if isinstance(obj, dict) and "state_dict" in obj:
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise XaisecError(f"{path}: expected a state dict of tensors")
        state = obj
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_into(net: torch.nn.Module, path: str | Path) -> None:
    """Load weights from ``path`` into ``net``, failing with the missing/unexpected keys on a mismatch."""
    state = read_state_dict(path)
    own = net.state_dict()
    # Checkpoints from older torch versions lack BatchNorm's ``num_batches_tracked`` counters: keep ours.
    for k in own:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise XaisecError(
            f"{path}: weights do not fit this architecture: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        k = bad[0]
        raise XaisecError(f"{path}: shape mismatch for {k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}")
    net.load_state_dict(state)


def save_safetensors(net: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Atomically write ``net``'s state dict as safetensors."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    return atomic_write_bytes(path, save(state, metadata=metadata))
