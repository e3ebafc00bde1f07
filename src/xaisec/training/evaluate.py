"""Top-1 accuracy of a classifier, batched: on an :class:`ImageDataset` (with a progress bar), on image
tensors, and under an untargeted L-inf PGD attack."""

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


@torch.no_grad()
def tensor_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on images x (N, C, H, W) in [0, 1] with labels y (N,)."""
    correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size),
                                                                          strict=True))
    return correct / max(len(y), 1)


def pgd_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, seed: int = 0,
                 *, alpha: float | None = None, batch_size: int = 100) -> float:
    """Accuracy in [0, 1] under untargeted PGD-``steps`` in the L-inf ``eps`` ball, from a random start drawn
    with ``seed`` (one generator over the batches), step ``alpha`` (default 2.5 eps / steps); eps 0 is the
    clean accuracy."""
    from xaisec.training.adversarial import pgd_iterates

    if eps == 0:
        return tensor_accuracy(model, x, y, batch_size)
    g = torch.Generator().manual_seed(seed)
    step = 2.5 * eps / steps if alpha is None else alpha
    correct = 0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        (adv,) = pgd_iterates(model, xb, yb, eps=eps, alpha=step, record=[steps], random_start=True, generator=g)
        with torch.no_grad():
            correct += int((model(adv).argmax(1) == yb).sum())
    return correct / max(len(y), 1)
