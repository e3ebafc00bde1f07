"""Top-1 accuracy of a classifier on an :class:`ImageDataset`, batched, with a progress bar."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from xaisec.data.dataset import ImageDataset


@torch.no_grad()
def predict(model: torch.nn.Module, data: ImageDataset, batch_size: int = 500, progress: bool = False) -> torch.Tensor:
    """Predicted labels (N,) for every image of ``data`` (model in eval mode, on its device)."""
    device = next(model.parameters()).device
    preds = []
    steps = (len(data) + batch_size - 1) // batch_size
    for x, _ in tqdm(data.batches(batch_size, device), total=steps, desc="evaluating", disable=not progress,
                     leave=False):
        preds.append(model(x).argmax(1).cpu())
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def accuracy(model: torch.nn.Module, data: ImageDataset, batch_size: int = 500, progress: bool = False) -> float:
    """Top-1 accuracy in [0, 1]."""
    was_training = model.training
    model.eval()
    try:
        return float((predict(model, data, batch_size, progress) == data.labels).float().mean())
    finally:
        model.train(was_training)
