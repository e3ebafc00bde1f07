"""The ensemble-of-interpreters detector (AdvEdge paper, section V-G, Tables IV-V), scaled to 32x32.

The maps of 2 or 3 interpreters of the same input (each min-max normalised per sample, for the class the
model predicts) are stacked as channels: variant ``"maps"`` (the maps) or ``"product"`` (the maps plus their
element-wise product). A small CNN is trained from scratch on benign (label 0) vs adversarial (label 1) stacks
(the paper's frozen ImageNet VGG-16 is not available offline), and a scikit-learn
``HistGradientBoostingClassifier`` on the CNN's pooled features makes the decision, as the paper's
gradient-boosting head. The benign and adversarial versions of one source image always fall on the same side
of the train / test split (:func:`split_by_source`).

    det = EnsembleDetector(model, ["grad", "cam"], variant="maps")
    report = det.fit(x_benign, x_adv)        # x_adv[i] made from x_benign[i]; 70/30 split by source
    det.predict_proba(x)                     # (N,) probability of "adversarial"
    det.save("dir");  det = EnsembleDetector.load("dir", model)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.defenses.defended import fingerprint
from xaisec.defenses.squeeze import threshold_at_fpr
from xaisec.utils.checks import XaisecError, check_images
from xaisec.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

VARIANTS = ("maps", "product")
FORMAT = "xaisec-ensemble-detector"


def split_by_source(groups: torch.Tensor, test_fraction: float = 0.3, seed: int = 0) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
    """Train / test indices (1-D long) such that no source id in ``groups`` (N,) appears on both sides;
    about ``test_fraction`` of the sources go to the test side (at least one source each side)."""
    if not 0 < test_fraction < 1:
        raise XaisecError(f"test_fraction must be in (0, 1), got {test_fraction}")
    groups = groups.flatten().cpu()
    sources = groups.unique()
    if sources.numel() < 2:
        raise XaisecError("a train / test split by source needs at least 2 source images")
    perm = sources[torch.randperm(sources.numel(), generator=torch.Generator().manual_seed(seed))]
    n_test = min(max(1, round(test_fraction * sources.numel())), sources.numel() - 1)
    is_test = torch.isin(groups, perm[:n_test])
    return (~is_test).nonzero().flatten(), is_test.nonzero().flatten()


def tpr_at_fpr(scores: torch.Tensor, labels: torch.Tensor, fpr: float = 0.05) -> float:
    """True-positive rate at the threshold that flags a share ``fpr`` of the benign (label 0) scores."""
    t = threshold_at_fpr(scores[labels == 0], fpr)
    return float((scores[labels == 1] > t).float().mean())


def detection_metrics(scores: torch.Tensor, labels: torch.Tensor, fpr: float = 0.05) -> dict[str, float]:
    """Accuracy at 0.5 (scores are probabilities), ROC AUC, TPR at ``fpr`` false positives."""
    from sklearn.metrics import roc_auc_score

    scores, labels = scores.detach().float().cpu(), labels.detach().long().cpu()
    acc = float(((scores > 0.5).long() == labels).float().mean())
    auc = float(roc_auc_score(labels.numpy(), scores.numpy())) if labels.unique().numel() == 2 else float("nan")
    return {"accuracy": acc, "auc": auc, "tpr_at_fpr": tpr_at_fpr(scores, labels, fpr), "fpr": fpr,
            "n": int(labels.numel())}


def stack_maps(maps: dict[str, torch.Tensor], interpreters: list[str], variant: str = "maps") -> torch.Tensor:
    """Maps name -> (N, H, W) in [0, 1] -> stacked (N, C, H, W): the maps, plus their product for "product"."""
    if variant not in VARIANTS:
        raise XaisecError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    missing = [n for n in interpreters if n not in maps]
    if missing:
        raise XaisecError(f"no maps for {missing}; have {list(maps)}")
    chans = [maps[n].float() for n in interpreters]
    if variant == "product":
        if len(chans) < 2:
            raise XaisecError("the product variant needs at least 2 interpreters")
        prod = chans[0]
        for c in chans[1:]:
            prod = prod * c
        chans.append(prod)
    return torch.stack(chans, 1)


class MapStack:
    """Stacked maps of ``interpreters`` for the model's predicted class: x (N, C, H, W) -> (N, C', H, W)."""

    def __init__(self, model: nn.Module, interpreters: list[str], variant: str = "maps", *,
                 batch_size: int = 100) -> None:
        from xaisec.interpreters import INTERPRETERS
        from xaisec.interpreters import get as get_interpreter

        if isinstance(interpreters, str):
            interpreters = [s for s in interpreters.split(",") if s]
        if not interpreters:
            raise XaisecError("name at least one interpreter, e.g. ['grad', 'cam']")
        unknown = [n for n in interpreters if n not in INTERPRETERS]
        if unknown:
            raise XaisecError(f"unknown interpreter {unknown[0]!r}; known: {', '.join(INTERPRETERS)}")
        if variant not in VARIANTS:
            raise XaisecError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        if variant == "product" and len(interpreters) < 2:
            raise XaisecError("the product variant needs at least 2 interpreters")
        self.model, self.names, self.variant, self.batch_size = model, list(interpreters), variant, batch_size
        self.interpreters = [get_interpreter(n, model) for n in self.names]

    @property
    def channels(self) -> int:
        return len(self.names) + (self.variant == "product")

    def maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Name -> (N, H, W) maps on the CPU, in batches."""
        check_images(x)
        out: dict[str, list[torch.Tensor]] = {n: [] for n in self.names}
        device = next(self.model.parameters()).device
        for start in range(0, x.shape[0], self.batch_size):
            xb = x[start:start + self.batch_size].to(device)
            with torch.no_grad():
                pred = self.model(xb).argmax(1)
            for name, g in zip(self.names, self.interpreters, strict=True):
                out[name].append(g(xb, pred).cpu())
        return {n: torch.cat(v) for n, v in out.items()}

    def __call__(self, x: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        if not create_graph:
            return stack_maps(self.maps(x), self.names, self.variant)
        from xaisec.interpreters.ensemble import GRADIENT_MAPS
        from xaisec.interpreters.surrogate import soft_relu

        with torch.no_grad():
            pred = self.model(x).argmax(1)
        maps = {}
        for name, g in zip(self.names, self.interpreters, strict=True):
            if name in GRADIENT_MAPS:
                with soft_relu(self.model):
                    maps[name] = g.explain(x, pred, create_graph=True)[0]
            else:
                maps[name] = g.explain(x, pred, create_graph=True)[0]
        return stack_maps(maps, self.names, self.variant)


class MapCNN(nn.Module):
    """Small CNN on (N, C, 32, 32)-like stacked maps: 3 conv blocks, global pooling -> ``features`` (N, 4w),
    ``forward`` -> 2 logits (benign, adversarial)."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, 2)

    def features(self, s: torch.Tensor) -> torch.Tensor:
        return self.body(s)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(s))


class EnsembleDetector:
    """Benign-vs-adversarial detector on the stacked maps of ``interpreters`` (see the module docstring).

    Args:
        head: ``"gbm"`` (gradient boosting on the CNN features; the paper's) or ``"cnn"`` (the CNN's own
            linear head).
        epochs, lr, batch_size, width: CNN training (Adam, cross-entropy).
        seed: seeds the CNN initialisation, batch order and the boosting.
    """

    def __init__(self, model: nn.Module, interpreters: list[str], variant: str = "maps", *, head: str = "gbm",
                 epochs: int = 30, lr: float = 1e-3, batch_size: int = 64, width: int = 32, seed: int = 0) -> None:
        if head not in ("gbm", "cnn"):
            raise XaisecError(f"unknown head {head!r}; choose 'gbm' (gradient boosting) or 'cnn'")
        if epochs < 1 or batch_size < 1:
            raise XaisecError("epochs and batch_size must be >= 1")
        self.model = model
        self.stack = MapStack(model, interpreters, variant)
        self.names, self.variant, self.head = self.stack.names, variant, head
        self.epochs, self.lr, self.batch_size, self.width, self.seed = epochs, lr, batch_size, width, seed
        self.cnn: MapCNN | None = None
        self.gbm: Any = None
        self._train: tuple[torch.Tensor, torch.Tensor] | None = None  # (features, labels), to refit the head
        self.report: dict[str, Any] = {}

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, x_benign: torch.Tensor, x_adv: torch.Tensor, *, groups: torch.Tensor | None = None,
            test_fraction: float = 0.3, fpr: float = 0.05) -> dict[str, Any]:
        """Train on ``x_benign`` (label 0) and ``x_adv`` (label 1), split by source image; returns the test
        metrics. ``groups``: (N_benign + N_adv,) source ids; default: x_adv[i] comes from x_benign[i]."""
        maps_b, maps_a = self.stack.maps(x_benign), self.stack.maps(x_adv)
        maps = {n: torch.cat([maps_b[n], maps_a[n]]) for n in self.names}
        labels = torch.cat([torch.zeros(x_benign.shape[0]), torch.ones(x_adv.shape[0])]).long()
        if groups is None:
            if x_benign.shape[0] != x_adv.shape[0]:
                raise XaisecError("without groups=, x_adv[i] must come from x_benign[i] (same number of images)")
            groups = torch.arange(x_benign.shape[0]).repeat(2)
        return self.fit_maps(maps, labels, groups, test_fraction=test_fraction, fpr=fpr)

    def fit_maps(self, maps: dict[str, torch.Tensor], labels: torch.Tensor, groups: torch.Tensor, *,
                 test_fraction: float = 0.3, fpr: float = 0.05) -> dict[str, Any]:
        """As :meth:`fit` from precomputed maps (name -> (N, H, W)), labels (N,) and source ids (N,)."""
        s = stack_maps(maps, self.names, self.variant)
        labels, groups = labels.long().cpu(), groups.long().cpu()
        if not (s.shape[0] == labels.shape[0] == groups.shape[0]):
            raise XaisecError("maps, labels and groups must have the same length")
        if labels.unique().numel() != 2:
            raise XaisecError("training needs both benign (0) and adversarial (1) examples")
        train, test = split_by_source(groups, test_fraction, self.seed)
        self._fit_cnn(s[train], labels[train])
        self._fit_head(s[train], labels[train])
        scores = self.proba_from_stack(s[test])
        cnn_scores = self._cnn_proba(s[test])
        self.report = {
            "interpreters": self.names, "variant": self.variant, "head": self.head,
            "n_train": int(train.numel()), "n_test": int(test.numel()),
            "sources_train": int(groups[train].unique().numel()), "sources_test": int(groups[test].unique().numel()),
            "shared_sources": int(torch.isin(groups[train].unique(), groups[test].unique()).sum()),
            "test": detection_metrics(scores, labels[test], fpr),
            "test_cnn_head": detection_metrics(cnn_scores, labels[test], fpr),
            "threshold_at_fpr": threshold_at_fpr(scores[labels[test] == 0], fpr), "fpr": fpr,
        }
        self._last_test = (scores, labels[test])
        return self.report

    def _fit_cnn(self, s: torch.Tensor, labels: torch.Tensor) -> None:
        g = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            cnn = MapCNN(s.shape[1], self.width)
        opt = torch.optim.Adam(cnn.parameters(), lr=self.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
        cnn.train()
        for _ in range(self.epochs):
            perm = torch.randperm(s.shape[0], generator=g)
            for start in range(0, s.shape[0], self.batch_size):
                idx = perm[start:start + self.batch_size]
                if idx.numel() < 2:
                    continue
                xb = s[idx]
                flip = torch.rand(idx.numel(), generator=g) < 0.5  # horizontal flips: maps are mirror-symmetric
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
                loss = F.cross_entropy(cnn(xb), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        self.cnn = cnn.eval()

    @torch.no_grad()
    def _features(self, s: torch.Tensor) -> torch.Tensor:
        assert self.cnn is not None
        return torch.cat([self.cnn.features(s[i:i + 512]) for i in range(0, s.shape[0], 512)])

    def _fit_head(self, s: torch.Tensor | None, labels: torch.Tensor | None) -> None:
        if s is not None:
            self._train = (self._features(s), labels)
        if self.head != "gbm":
            return
        from sklearn.ensemble import HistGradientBoostingClassifier

        feats, lab = self._train
        self.gbm = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=self.seed)
        self.gbm.fit(feats.numpy(), lab.numpy())

    @torch.no_grad()
    def _cnn_proba(self, s: torch.Tensor) -> torch.Tensor:
        assert self.cnn is not None
        return torch.cat([self.cnn(s[i:i + 512]).softmax(1)[:, 1] for i in range(0, s.shape[0], 512)])

    def proba_from_stack(self, s: torch.Tensor) -> torch.Tensor:
        """(N,) probability of "adversarial" for stacked maps (N, C, H, W)."""
        if self.cnn is None:
            raise XaisecError("the detector is not trained: call fit(x_benign, x_adv) first")
        if self.head == "cnn":
            return self._cnn_proba(s)
        return torch.from_numpy(self.gbm.predict_proba(self._features(s).numpy())[:, 1]).float()

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) probability that each image of x (N, C, H, W) in [0, 1] is adversarial."""
        return self.proba_from_stack(self.stack(x))

    def flag(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) bool: classified adversarial (probability > 0.5, the paper's decision)."""
        return self.predict_proba(x) > 0.5

    def adversarial_logit(self, x: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        """(N,) CNN logit margin adversarial - benign of x (on the model's device); with ``create_graph`` it is
        differentiable w.r.t. x through the maps (for the detector-aware attack). > 0 means "adversarial"."""
        if self.cnn is None:
            raise XaisecError("the detector is not trained: call fit(x_benign, x_adv) first")
        device = x.device
        cnn = self.cnn.to(device)
        if create_graph:
            z = cnn(self.stack(x, create_graph=True))
        else:
            with torch.no_grad():
                z = cnn(self.stack(x).to(device))
        return z[:, 1] - z[:, 0]

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``detector.json`` (settings, report, model fingerprint) and ``detector.safetensors`` (CNN weights
        and the training features the boosting head is refitted on when loading; no pickles)."""
        from safetensors.torch import save as st_save

        if self.cnn is None or self._train is None:
            raise XaisecError("the detector is not trained: call fit(x_benign, x_adv) first")
        folder = Path(folder)
        tensors = {f"cnn.{k}": v.detach().cpu().contiguous() for k, v in self.cnn.state_dict().items()}
        tensors["train.features"] = self._train[0].contiguous()
        tensors["train.labels"] = self._train[1].contiguous()
        atomic_write_bytes(folder / "detector.safetensors", st_save(tensors))
        meta = {"format": FORMAT, "version": 1, "model": getattr(self.model, "name", type(self.model).__name__),
                "model_fingerprint": fingerprint(self.model), "interpreters": self.names, "variant": self.variant,
                "head": self.head, "width": self.width, "seed": self.seed, "epochs": self.epochs,
                "report": _json_safe(self.report)}
        atomic_write_json(folder / "detector.json", meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path, model: nn.Module) -> EnsembleDetector:
        """Read a detector written by :meth:`save` for ``model``; refuses one trained for another model."""
        from safetensors.torch import load as st_load

        folder = Path(folder)
        try:
            meta = json.loads((folder / "detector.json").read_text())
            tensors = st_load((folder / "detector.safetensors").read_bytes())
        except (OSError, ValueError) as exc:
            raise XaisecError(f"cannot read an ensemble detector from {folder}: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise XaisecError(f"{folder} is not an xaisec ensemble detector")
        fp = fingerprint(model)
        if meta.get("model_fingerprint") != fp:
            raise XaisecError(
                f"{folder} was trained for model {meta.get('model')!r} (fingerprint {meta.get('model_fingerprint')}), "
                f"not this one ({getattr(model, 'name', '?')!r}, {fp}); train a detector for this model"
            )
        det = cls(model, meta["interpreters"], meta["variant"], head=meta["head"], width=meta["width"],
                  seed=meta["seed"], epochs=meta.get("epochs", 30))
        cnn = MapCNN(det.stack.channels, det.width)
        cnn.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("cnn.")})
        det.cnn = cnn.eval()
        det._train = (tensors["train.features"], tensors["train.labels"])
        det._fit_head(None, None)
        det.report = meta.get("report", {})
        return det


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
