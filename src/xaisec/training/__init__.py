"""Training the zoo's small models on the CPU: ``train(TrainConfig(...))`` or ``xaisec train``."""

from xaisec.training.augment import random_crop_flip
from xaisec.training.evaluate import accuracy
from xaisec.training.trainer import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "accuracy", "random_crop_flip", "train"]
