"""The feature-squeezing detector (Xu et al., NDSS 2018; ADV^2 paper section 4).

score_s(x) = || softmax f(x) - softmax f(psi_s(x)) ||_1 for each squeezer psi_s, and the joint score is the
maximum over the squeezers. A threshold per squeezer (and one for the joint score) is calibrated on held-out
benign images so that a chosen share of them (the false-positive rate, default 5%) scores above it.

    det = squeeze_detector(model, ["median:2", "bits:5", "nlm:13-3-2"])
    det.calibrate(x_benign, fpr=0.05)
    det.score(x)  # (N,) joint score;  det.flag(x)  # (N,) bool;  det.scores(x)  # name -> (N,)
    det.save("det.json");  det = SqueezeDetector.load("det.json", model)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xaisec.defenses.defended import fingerprint
from xaisec.defenses.transforms import Squeezer, parse
from xaisec.utils.checks import XaisecError, check_images, module_device
from xaisec.utils.io import atomic_write_json

FS_CIFAR = ("median:2", "bits:5", "nlm:13-3-2")  # Feature Squeezing's CIFAR-10 configuration
JOINT = "joint"
FORMAT = "xaisec-squeeze-detector"


def check_fpr(fpr: float) -> float:
    if not isinstance(fpr, (int, float)) or not 0 < float(fpr) < 1:
        raise XaisecError(f"the false-positive rate must be in (0, 1), e.g. 0.05; got {fpr!r}")
    return float(fpr)


def threshold_at_fpr(benign_scores: torch.Tensor, fpr: float) -> float:
    """The threshold T with ``floor(fpr * n)`` of the n benign scores strictly above it (ties aside): the
    ``m``-th largest score, m = floor(fpr * n) (0-based), so ``(scores > T).mean() <= fpr`` within 1/n."""
    fpr = check_fpr(fpr)
    s = benign_scores.detach().flatten().float().cpu()
    if s.numel() == 0:
        raise XaisecError("cannot calibrate on an empty set: pass at least one benign image (ideally >= 1/fpr)")
    if not torch.isfinite(s).all():
        raise XaisecError("benign scores contain NaN or infinite values")
    m = min(math.floor(fpr * s.numel()), s.numel() - 1)
    return float(s.sort(descending=True).values[m])


class SqueezeDetector:
    """Feature-squeezing detector for ``model`` with ``squeezers`` (specs like ``"median:2"`` or Squeezers).

    Thresholds (``thresholds``: squeezer spec or ``"joint"`` -> float) exist after :meth:`calibrate`.
    """

    def __init__(self, model: nn.Module, squeezers: list[str | Squeezer] | tuple[str | Squeezer, ...] = FS_CIFAR,
                 *, batch_size: int = 256) -> None:
        if isinstance(squeezers, (str, Squeezer)):
            squeezers = [squeezers]
        if not squeezers:
            raise XaisecError("a squeeze detector needs at least one squeezer, e.g. ['median:2', 'bits:5']")
        if batch_size < 1:
            raise XaisecError(f"batch size must be >= 1, got {batch_size}")
        self.model = model
        self.squeezers = [parse(s) for s in squeezers]
        self.names = [s.spec for s in self.squeezers]
        if len(set(self.names)) != len(self.names):
            raise XaisecError(f"squeezers repeat: {self.names}")
        self.batch_size = batch_size
        self.thresholds: dict[str, float] = {}
        self.fpr: float | None = None
        self.n_calibration = 0

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    # -- scores -------------------------------------------------------------------------------------------
    def score_parts(self, x: torch.Tensor, *, grad: bool = False) -> torch.Tensor:
        """Per-squeezer scores (N, S) in [0, 2]. ``grad=True`` keeps the graph (for adaptive attacks; one batch)."""
        if grad:
            probs = self.model(x).softmax(1)
            return torch.stack([(probs - self.model(s(x)).softmax(1)).abs().sum(1) for s in self.squeezers], 1)
        check_images(x)
        out = []
        with torch.no_grad():
            for start in range(0, x.shape[0], self.batch_size):
                xb = x[start:start + self.batch_size].to(self.device)
                out.append(self.score_parts(xb, grad=True).cpu())
        return torch.cat(out)

    def scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Squeezer spec -> (N,) score, plus ``"joint"`` (the maximum over the squeezers)."""
        parts = self.score_parts(x)
        out = {name: parts[:, i] for i, name in enumerate(self.names)}
        out[JOINT] = parts.amax(1)
        return out

    def score(self, x: torch.Tensor, squeezer: str = JOINT) -> torch.Tensor:
        """(N,) score of one squeezer (its spec) or the joint score (default)."""
        self._check_name(squeezer)
        return self.scores(x)[squeezer]

    # -- calibration and decisions ------------------------------------------------------------------------
    def calibrate(self, x_benign: torch.Tensor, fpr: float = 0.05) -> dict[str, float]:
        """Set every threshold so that a share ``fpr`` of ``x_benign`` (N, C, H, W) would be flagged."""
        fpr = check_fpr(fpr)
        if not isinstance(x_benign, torch.Tensor) or x_benign.dim() != 4 or x_benign.shape[0] == 0:
            shape = tuple(x_benign.shape) if isinstance(x_benign, torch.Tensor) else type(x_benign).__name__
            raise XaisecError(f"cannot calibrate on an empty set: x_benign must be (N>=1, C, H, W), got {shape}")
        scores = self.scores(x_benign)
        self.thresholds = {name: threshold_at_fpr(s, fpr) for name, s in scores.items()}
        self.fpr, self.n_calibration = fpr, int(x_benign.shape[0])
        return dict(self.thresholds)

    def _check_name(self, squeezer: str) -> None:
        if squeezer != JOINT and squeezer not in self.names:
            raise XaisecError(f"unknown squeezer {squeezer!r} for this detector; it has {[*self.names, JOINT]}")

    def _threshold(self, squeezer: str) -> float:
        self._check_name(squeezer)
        if not self.thresholds:
            raise XaisecError("the detector is not calibrated: call det.calibrate(x_benign, fpr=0.05) first")
        return self.thresholds[squeezer]

    def flag(self, x: torch.Tensor, squeezer: str = JOINT) -> torch.Tensor:
        """(N,) bool: score above the calibrated threshold (adversarial)."""
        return self.score(x, squeezer) > self._threshold(squeezer)

    def flags(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Squeezer spec (and ``"joint"``) -> (N,) bool flags."""
        if not self.thresholds:
            raise XaisecError("the detector is not calibrated: call det.calibrate(x_benign, fpr=0.05) first")
        return {k: v > self.thresholds[k] for k, v in self.scores(x).items()}

    def detection_rates(self, x_adv: torch.Tensor, success: torch.Tensor | None = None) -> dict[str, float]:
        """Share of the (successful, when ``success`` (N,) bool is given) adversarial inputs flagged."""
        if success is not None:
            x_adv = x_adv[success.bool().cpu()]
        if x_adv.shape[0] == 0:
            return {k: float("nan") for k in [*self.names, JOINT]}
        return {k: float(v.float().mean()) for k, v in self.flags(x_adv).items()}

    # -- persistence --------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": 1, "model": getattr(self.model, "name", type(self.model).__name__),
                "model_fingerprint": fingerprint(self.model), "squeezers": self.names,
                "thresholds": self.thresholds, "fpr": self.fpr, "n_calibration": self.n_calibration}

    def save(self, path: str | Path) -> Path:
        """Write the detector (squeezers, thresholds, the model's fingerprint) as JSON."""
        return atomic_write_json(path, self.state())

    @classmethod
    def load(cls, path: str | Path, model: nn.Module) -> SqueezeDetector:
        """Read a detector saved by :meth:`save` for ``model``; refuses one calibrated for another model."""
        try:
            state = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise XaisecError(f"cannot read a squeeze detector from {path}: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise XaisecError(f"{path} is not an xaisec squeeze detector (format {FORMAT!r})")
        fp = fingerprint(model)
        if state.get("model_fingerprint") != fp:
            raise XaisecError(
                f"{path} was calibrated for model {state.get('model')!r} (fingerprint {state.get('model_fingerprint')})"
                f", not this one ({getattr(model, 'name', '?')!r}, {fp}); calibrate a new detector for this model"
            )
        det = cls(model, state["squeezers"])
        det.thresholds = {k: float(v) for k, v in state.get("thresholds", {}).items()}
        det.fpr, det.n_calibration = state.get("fpr"), int(state.get("n_calibration", 0))
        return det


def squeeze_detector(model: nn.Module, squeezers: list[str | Squeezer] | tuple[str | Squeezer, ...] = FS_CIFAR,
                     **options: Any) -> SqueezeDetector:
    """``SqueezeDetector(model, squeezers)``: see :class:`SqueezeDetector`."""
    return SqueezeDetector(model, squeezers, **options)
