"""A trained universal perturbation: the (C, H, W) tensor, the generator that made it, config and history.

``uap.save("dir/perturbation.safetensors")`` writes the tensors (``perturbation``, ``noise``, ``generator.*``)
with the config and history in the safetensors header, plus a human-readable JSON card next to it
(``perturbation.json``); :func:`load` reads the safetensors file alone (the card is for people).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xaisec.utils.checks import XaisecError, check_images
from xaisec.utils.io import atomic_write_bytes, atomic_write_json

FORMAT = "xaisec-universal-perturbation/1"


def _json_safe(obj: Any) -> Any:
    """Replace NaN/inf floats by None, recursively (JSON never holds NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


@dataclass
class UniversalPerturbation:
    """One image-agnostic perturbation.

    Attributes:
        perturbation: (C, H, W) float32 on the CPU, inside the budget (``config["norm"]``, ``config["eps"]``).
        method: ``"juap"``, ``"gap"`` or ``"uap"`` (or whatever made it).
        config: the training settings, for the record.
        history: training curves: lists keyed by ``step`` and the logged quantities.
        generator_state: the generator's state dict (None for UAP); noise: its fixed input (1, C, H, W) or None.
    """

    perturbation: torch.Tensor
    method: str
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    generator_state: dict[str, torch.Tensor] | None = None
    noise: torch.Tensor | None = None

    def __post_init__(self) -> None:
        p = self.perturbation
        if not isinstance(p, torch.Tensor) or p.dim() != 3 or not p.is_floating_point():
            raise XaisecError(f"a universal perturbation is a float (C, H, W) tensor, got "
                              f"{getattr(p, 'shape', type(p).__name__)}")
        if not torch.isfinite(p).all():
            raise XaisecError("the perturbation contains NaN or infinite values")
        self.perturbation = p.detach().float().cpu().contiguous()

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.perturbation.shape)  # type: ignore[return-value]

    def check_compatible(self, x: torch.Tensor, what: str = "images") -> None:
        """Raise an XaisecError when (N, C, H, W) ``x`` has another channel count or size."""
        if tuple(x.shape[1:]) != self.shape:
            raise XaisecError(
                f"the perturbation is {self.shape} (C, H, W) but the {what} are {tuple(x.shape[1:])}: it was "
                f"trained for {self.config.get('model', 'another model')}; train one for this image size"
            )

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """clamp(x + perturbation, 0, 1) for (N, C, H, W) images in [0, 1], on x's device."""
        check_images(x)
        self.check_compatible(x)
        return (x + self.perturbation.to(x.device, x.dtype)).clamp(0, 1)

    def card(self) -> dict[str, Any]:
        p = self.perturbation
        return _json_safe({"format": FORMAT, "method": self.method, "shape": list(self.shape),
                           "linf": float(p.abs().max()), "l2": float(p.norm()), "config": self.config,
                           "history": self.history})

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors, atomic) and the JSON card ``path`` with suffix ``.json``; returns path."""
        from safetensors.torch import save

        path = Path(path)
        tensors = {"perturbation": self.perturbation}
        if self.noise is not None:
            tensors["noise"] = self.noise.detach().float().cpu().contiguous()
        for k, v in (self.generator_state or {}).items():
            tensors[f"generator.{k}"] = v.detach().cpu().contiguous()
        card = self.card()
        meta = {"format": FORMAT, "method": self.method, "config": json.dumps(card["config"]),
                "history": json.dumps(card["history"])}
        atomic_write_bytes(path, save(tensors, metadata=meta))
        atomic_write_json(path.with_suffix(".json"), card)
        return path


def load(path: str | Path, *, shape: tuple[int, int, int] | None = None) -> UniversalPerturbation:
    """Read a perturbation written by :meth:`UniversalPerturbation.save`; ``shape`` (C, H, W) is checked
    when given. Raises XaisecError for a missing, corrupt or foreign file."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    path = Path(path)
    if not path.is_file():
        raise XaisecError(f"{path}: no such perturbation file (expected DIR/perturbation.safetensors)")
    data = path.read_bytes()
    try:
        tensors = load_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8: 8 + header_len]).get("__metadata__") or {}
        config = json.loads(meta.get("config", "{}"))
        history = json.loads(meta.get("history", "{}"))
    except (SafetensorError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise XaisecError(f"{path}: not a readable perturbation file ({exc}); re-create it with "
                          "`xaisec universal`") from exc
    if meta.get("format") != FORMAT or "perturbation" not in tensors:
        raise XaisecError(f"{path}: not an xaisec universal perturbation (format {meta.get('format')!r})")
    uap = UniversalPerturbation(
        perturbation=tensors["perturbation"], method=meta.get("method", "unknown"), config=config, history=history,
        generator_state={k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")} or None,
        noise=tensors.get("noise"),
    )
    if shape is not None and uap.shape != tuple(shape):
        raise XaisecError(f"{path}: the perturbation is {uap.shape} (C, H, W) but {tuple(shape)} is needed: it "
                          "was made for another image size or channel count")
    return uap


__all__ = ["FORMAT", "UniversalPerturbation", "load"]
