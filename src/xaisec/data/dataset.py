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
            if not self.classes:
                raise XaisecError(f"{self.name}: the data set has labels but no class names")
            raise XaisecError(f"{self.name}: labels must be class indices 0..{len(self.classes) - 1} "
                              f"({len(self.classes)} classes); labels outside that range: "
                              f"{int(self.labels.min())}..{int(self.labels.max())}")

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

    def split(self, fraction: float, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """A seeded split stratified by class: (first part with ``fraction`` of each class, the rest).

        Each class with at least two images keeps at least one image on each side.
        """
        if not 0 < fraction < 1:
            raise XaisecError(f"a split fraction must be in (0, 1), e.g. 0.8, got {fraction}")
        g = torch.Generator().manual_seed(seed)
        first, second = [], []
        for c in range(self.num_classes):
            idx = torch.nonzero(self.labels == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            k = round(len(idx) * fraction)
            if len(idx) >= 2:
                k = min(max(k, 1), len(idx) - 1)
            first.append(idx[:k])
            second.append(idx[k:])
        a, b = torch.cat(first).sort().values, torch.cat(second).sort().values
        return self.subset(a), self.subset(b)

    def resized(self, image_size: int, resize_mode: str = "crop") -> ImageDataset:
        """All images resized to S x S in one batched call: shorter side to S and centre crop (``crop``),
        or longer side to S and black padding (``pad``). Returns self when already S x S."""
        import torch.nn.functional as F

        h, w = self.images.shape[-2:]
        if (h, w) == (image_size, image_size):
            return self
        scale = image_size / (min(h, w) if resize_mode == "crop" else max(h, w))
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        if resize_mode == "crop":
            nh, nw = max(nh, image_size), max(nw, image_size)
        x = F.interpolate(self.images.float(), size=(nh, nw), mode="bilinear", align_corners=False,
                          antialias=scale < 1)
        if resize_mode == "crop":
            top, left = (nh - image_size) // 2, (nw - image_size) // 2
            x = x[..., top:top + image_size, left:left + image_size]
        else:
            top, left = (image_size - nh) // 2, (image_size - nw) // 2
            x = F.pad(x, (left, image_size - nw - left, top, image_size - nh - top))
        images = x.round_().clamp_(0, 255).to(torch.uint8).contiguous()
        return ImageDataset(images, self.labels, self.classes, self.name, self.skipped, list(self.files))

    def with_channels(self, channels: int) -> ImageDataset:
        """Grey (1 channel) to RGB by repetition, or RGB to grey by ITU-R 601 luma; self when it already fits."""
        c = self.images.shape[1]
        if c == channels:
            return self
        if c == 1 and channels == 3:
            images = self.images.expand(-1, 3, -1, -1).contiguous()
        elif c == 3 and channels == 1:
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (self.images.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
        else:
            raise XaisecError(f"{self.name}: cannot convert {c}-channel images to {channels} channels")
        return ImageDataset(images, self.labels, self.classes, self.name, self.skipped, list(self.files))

    def batches(
        self, batch_size: int = 256, device: torch.device | str | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x float (B, C, H, W) in [0, 1], y (B,)) on ``device``, in order."""
        for i in range(0, len(self), batch_size):
            yield (
                self.images[i : i + batch_size].to(device).float().div_(255),
                self.labels[i : i + batch_size].to(device),
            )
