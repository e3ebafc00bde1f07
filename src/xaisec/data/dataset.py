"""An in-memory labelled image set: uint8 images (N, C, H, W), labels (N,), class names."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from xaisec.utils.checks import XaisecError


@dataclass
class ImageDataset:
    """Images kept as uint8 (N, C, H, W) to save memory; ``batches`` yields float [0, 1] on a device.

    Attributes:
        images: uint8 tensor (N, C, H, W).
        labels: int64 tensor (N,).
        classes: class names, index = label.
        name: where it came from, for reports.
        skipped: how many unreadable files were skipped while loading (0 for array formats).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str = "dataset"
    skipped: int = 0
    files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise XaisecError(
                f"{self.name}: images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dim() != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise XaisecError(
                f"{self.name}: {self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}"
            )
        self.labels = self.labels.long()
        if len(self) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise XaisecError(f"{self.name}: labels outside [0, {len(self.classes) - 1}]")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def float_images(self, device: torch.device | str | None = None) -> torch.Tensor:
        """All images as float (N, C, H, W) in [0, 1]."""
        return self.images.to(device).float().div_(255)

    def subset(self, index: torch.Tensor | list[int]) -> ImageDataset:
        index = torch.as_tensor(index, dtype=torch.long)
        files = [self.files[i] for i in index.tolist()] if self.files else []
        return ImageDataset(self.images[index], self.labels[index], self.classes, self.name, 0, files)

    def head(self, n: int | None) -> ImageDataset:
        """The first ``n`` items (all when ``n`` is None)."""
        return self if n is None or n >= len(self) else self.subset(torch.arange(n))

    def sample(self, n: int, seed: int = 0) -> ImageDataset:
        """``n`` items drawn without replacement with a seeded generator."""
        g = torch.Generator().manual_seed(seed)
        return self.subset(torch.randperm(len(self), generator=g)[: min(n, len(self))])

    def batches(
        self, batch_size: int = 256, device: torch.device | str | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x float (B, C, H, W) in [0, 1], y (B,)) on ``device``, in order."""
        for i in range(0, len(self), batch_size):
            yield (
                self.images[i : i + batch_size].to(device).float().div_(255),
                self.labels[i : i + batch_size].to(device),
            )
