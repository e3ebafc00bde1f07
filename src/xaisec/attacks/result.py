"""What an attack returns: adversarial images, success, the three maps, per-image metrics, cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class AttackResult:
    """Per-image tensors are on the CPU, batch-first.

    Attributes:
        x, x_adv: clean and adversarial images (N, C, H, W) in [0, 1].
        y: true labels (N,); pred_clean, pred_adv: the model's predictions (N,).
        target: target classes (N,), or None for an untargeted attack.
        success: (N,) bool: pred_adv == target (targeted) or != y (untargeted).
        maps_benign: g(x, pred_clean); maps_adv: g(x_adv, pred_adv); maps_target: the map the attack aimed for;
            all (N, H, W) in [0, 1].
        metrics: name -> (N,) float tensor (see :data:`xaisec.attacks.evaluate.METRIC_NOTES`).
        iterations: optimisation steps run; seconds: wall time of the whole batch.
        config: the attack's settings, for the record.
        history: every few steps, the batch means of the prediction loss, the map loss (NaN where there is
            none, e.g. in the warm start) and the success rate, keyed by ``step``, ``pred_loss``, ``map_loss``,
            ``success``.
        queries: black-box attacks only: model queries spent per image (N,) long (setup queries apart, in
            ``metrics["setup_queries"]``); queries_total: their sum. None for white-box attacks.
    """

    x: torch.Tensor
    x_adv: torch.Tensor
    y: torch.Tensor
    pred_clean: torch.Tensor
    pred_adv: torch.Tensor
    target: torch.Tensor | None
    success: torch.Tensor
    maps_benign: torch.Tensor
    maps_adv: torch.Tensor
    maps_target: torch.Tensor
    metrics: dict[str, torch.Tensor]
    iterations: int
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    queries: torch.Tensor | None = None
    queries_total: int | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def summary(self) -> dict[str, float]:
        """Mean of every metric over the images."""
        return {k: float(v.float().mean()) for k, v in self.metrics.items()}

    @staticmethod
    def concat(results: list[AttackResult]) -> AttackResult:
        """Join the results of several batches of the same attack."""
        if not results:
            raise ValueError("no results to join")
        if len(results) == 1:
            return results[0]

        def cat(name: str) -> torch.Tensor:
            return torch.cat([getattr(r, name) for r in results])

        first = results[0]
        return AttackResult(
            x=cat("x"), x_adv=cat("x_adv"), y=cat("y"), pred_clean=cat("pred_clean"), pred_adv=cat("pred_adv"),
            target=None if first.target is None else cat("target"), success=cat("success"),
            maps_benign=cat("maps_benign"), maps_adv=cat("maps_adv"), maps_target=cat("maps_target"),
            metrics={k: torch.cat([r.metrics[k] for r in results]) for k in first.metrics},
            iterations=max(r.iterations for r in results), seconds=sum(r.seconds for r in results),
            config=first.config, history=first.history,
            queries=None if any(r.queries is None for r in results) else cat("queries"),
            queries_total=None if any(r.queries_total is None for r in results)
            else sum(int(r.queries_total) for r in results),
        )

    def records(self, class_name: Any = str) -> list[dict[str, Any]]:
        """One JSON-ready dict per image: labels (with names) and metric values."""
        rows = []
        for i in range(len(self)):
            row: dict[str, Any] = {
                "index": i, "label": int(self.y[i]), "label_name": class_name(int(self.y[i])),
                "pred_clean": int(self.pred_clean[i]), "pred_adv": int(self.pred_adv[i]),
                "pred_adv_name": class_name(int(self.pred_adv[i])),
                "target": None if self.target is None else int(self.target[i]),
                "target_name": None if self.target is None else class_name(int(self.target[i])),
            }
            row.update({k: float(v[i]) for k, v in self.metrics.items()})
            rows.append(row)
        return rows
