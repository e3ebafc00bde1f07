"""Reading and writing weights: safetensors, or ``torch.load(weights_only=True)`` checkpoints."""

from __future__ import annotations

import json
import re
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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

CONVERT_HINT = (
    "xaisec never unpickles arbitrary objects (torch.load with weights_only=True); if you trust the file, convert "
    "it once: python -c \"import torch; from safetensors.torch import save_file; "
    "sd = torch.load('ckpt.pt', weights_only=False); sd = sd.get('state_dict', sd); "
    "save_file({k: v.contiguous() for k, v in sd.items()}, 'weights.safetensors')\""
)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, without ANSI escapes."""
    text = _ANSI.sub("", str(exc)).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def check_finite_state(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Raise when a floating-point tensor of ``state`` holds NaN or infinity."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise XaisecError(
            f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values (e.g. {bad[0]}); the training that "
            "made them diverged: retrain with a smaller --lr"
        )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch checkpoint (``{"state_dict": ...}`` or bare),
    stripping a ``module.`` prefix left by DataParallel. Never unpickles arbitrary objects. Refuses weights
    holding NaN or infinity."""
    path = Path(path)
    if path.is_dir():
        raise XaisecError(f"{path} is a folder; --weights takes a weights file (.safetensors or a torch checkpoint)")
    if not path.is_file():
        raise XaisecError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise XaisecError(
                f"{path}: cannot read safetensors weights ({_first_line(exc)}); the file is corrupted or not "
                "safetensors"
            ) from exc
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for bad or unsafe files
            unsafe = "weights_only" in str(exc) or "Unsupported global" in str(exc)
            why = ("it holds pickled Python objects besides tensors" if unsafe
                   else f"not a torch checkpoint or corrupted: {type(exc).__name__}")
            raise XaisecError(f"{path}: cannot read weights ({why}). {CONVERT_HINT}") from exc
        if isinstance(obj, dict) and "state_dict" in obj:
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise XaisecError(f"{path}: expected a state dict of tensors")
        state = obj
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    check_finite_state(state, path)
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
