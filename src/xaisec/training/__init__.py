"""Training the zoo's small models on the CPU: ``train(TrainConfig(...))`` or ``xaisec train``.

Training-time defenses plug into the same trainer as per-batch objectives:
``train(cfg, batch_loss=build_defense("adversarial", steps=(5, 10, 15)))`` or
``build_defense("interpretation-robust", interpreter=lambda m: xaisec.interpreters.get("cam", m), gamma=0.01)``.
The RTS masking network is trained by :func:`train_rts` (``aid=AIDSettings()`` for AID).
"""

from xaisec.training.adversarial import AdversarialTraining
from xaisec.training.augment import random_crop_flip
from xaisec.training.defenses import DEFENSES, BatchContext, BatchLoss, build_defense
from xaisec.training.evaluate import accuracy
from xaisec.training.interp_robust import InterpretationRobustTraining
from xaisec.training.rts import AIDSettings, RTSObjective, train_rts
from xaisec.training.trainer import TrainConfig, TrainResult, train

__all__ = [
    "DEFENSES", "AIDSettings", "AdversarialTraining", "BatchContext", "BatchLoss", "InterpretationRobustTraining",
    "RTSObjective", "TrainConfig", "TrainResult", "accuracy", "build_defense", "random_crop_flip", "train",
    "train_rts",
]
