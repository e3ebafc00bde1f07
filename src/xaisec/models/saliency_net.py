"""The RTS masking network (Dabkowski & Gal 2017): class-conditional ResNet encoder + U-Net decoder.

It lives with the models because two layers use it: :mod:`xaisec.training.rts` trains it (the RTS objective
and AID) and :class:`xaisec.interpreters.rts.RTS` loads it to draw maps (and re-exports it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.models.weights import load_into, save_safetensors
from xaisec.utils.checks import XaisecError

_META_KEY = "xaisec_rts"


class _Block(nn.Module):
    """Basic residual block: conv3x3-BN-ReLU-conv3x3-BN plus a (projected when needed) shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Up(nn.Module):
    """U-Net step: bilinear upsampling to the skip's size, concatenation with the skip, two convs."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn_relu(cin + cskip, cout), _conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], 1))


class SaliencyNet(nn.Module):
    """Class-conditional masking network: ResNet encoder (3 scales + logits) and U-Net decoder.

    Args:
        in_channels: image channels (3 for CIFAR, 1 for PneumoniaMNIST).
        num_classes: K, the classifier's number of classes.
        mean, std: the classifier's per-channel normalisation, applied inside (inputs are [0, 1]).
        width: channels of the full-resolution scale; the 1/2 and 1/4 scales have 2x and 4x.
        blocks: residual blocks per encoder scale.

    ``forward(x, class_index)``: x float (N, C, H, W) in [0, 1] (any H, W >= 4), class_index (N,) int64
    -> (mask (N, 1, H, W) in [0, 1], encoder logits (N, K)). The class enters at the bottleneck: its
    learned embedding e_c scores every 1/4-scale feature vector, and ``sigmoid(<f, e_c> / sqrt(C))``
    gates the deepest features before decoding, so the mask follows the requested class.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        width: int = 16,
        blocks: Sequence[int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 2 or width < 1:
            raise XaisecError(f"SaliencyNet needs in_channels >= 1, num_classes >= 2 and width >= 1, got "
                              f"{in_channels}, {num_classes}, {width}")
        blocks = tuple(int(b) for b in blocks)
        if len(blocks) != 3 or min(blocks) < 1:
            raise XaisecError(f"blocks must be 3 positive counts (one per scale), got {blocks}")
        mean = tuple(float(v) for v in (mean if mean is not None else (0.0,) * in_channels))
        std = tuple(float(v) for v in (std if std is not None else (1.0,) * in_channels))
        if len(mean) != in_channels or len(std) != in_channels or min(std) <= 0:
            raise XaisecError(f"mean/std must have {in_channels} entries and std > 0, got {mean}, {std}")
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "mean": list(mean),
                       "std": list(std), "width": width, "blocks": list(blocks)}
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        w1, w2, w3 = width, 2 * width, 4 * width
        self.stem = _conv_bn_relu(in_channels, w1)
        self.scale1 = nn.Sequential(*[_Block(w1, w1) for _ in range(blocks[0])])
        self.scale2 = nn.Sequential(_Block(w1, w2, 2), *[_Block(w2, w2) for _ in range(blocks[1] - 1)])
        self.scale3 = nn.Sequential(_Block(w2, w3, 2), *[_Block(w3, w3) for _ in range(blocks[2] - 1)])
        self.classifier = nn.Linear(w3, num_classes)
        self.class_embedding = nn.Embedding(num_classes, w3)
        nn.init.normal_(self.class_embedding.weight, 0.0, 1.0 / math.sqrt(w3))
        self.bottleneck = _conv_bn_relu(w3, w3)
        self.up2 = _Up(w3, w2, w2)
        self.up1 = _Up(w2, w1, w1)
        self.to_mask = nn.Conv2d(w1, 1, 1)  # bias 0 at init: masks start near 0.5

    def encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Features at scales 1, 1/2, 1/4 and the encoder's logits (N, K) for [0, 1] input x."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise XaisecError(f"SaliencyNet expects (N, {self.in_channels}, H, W) images, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < 4:
            raise XaisecError(f"images must be at least 4x4 pixels, got {tuple(x.shape[-2:])}")
        s1 = self.scale1(self.stem((x - self.mean) / self.std))
        s2 = self.scale2(s1)
        s3 = self.scale3(s2)
        return [s1, s2, s3], self.classifier(s3.mean((2, 3)))

    def decode(
        self, feats: list[torch.Tensor], class_index: torch.Tensor, *, with_presence: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Mask (N, 1, H, W) in [0, 1] from :meth:`encode` features, for class_index (N,).

        ``with_presence=True`` also returns the gate's spatial mean score (N,), a logit for "the class is
        in the image" (trained against fake labels).
        """
        s1, s2, s3 = feats
        if class_index.dim() != 1 or class_index.shape[0] != s3.shape[0]:
            raise XaisecError(f"class_index must have shape ({s3.shape[0]},), got {tuple(class_index.shape)}")
        e = self.class_embedding(class_index).to(s3.dtype)[:, :, None, None]
        score = (s3 * e).sum(1, keepdim=True) / math.sqrt(s3.shape[1])
        h = self.bottleneck(s3 * torch.sigmoid(score))
        h = self.up1(self.up2(h, s2), s1)
        mask = torch.sigmoid(self.to_mask(h))
        return (mask, score.mean((1, 2, 3))) if with_presence else mask

    def forward(self, x: torch.Tensor, class_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, logits = self.encode(x)
        return self.decode(feats, class_index), logits

    @classmethod
    def from_file(cls, path: str | Path) -> SaliencyNet:
        """Build the network described by an ``rts_*.safetensors`` file's metadata and load its weights."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise XaisecError(f"{path}: no such RTS weights file")
        try:
            with safe_open(str(path), "pt") as fh:
                meta = fh.metadata() or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise XaisecError(f"{path}: cannot read safetensors ({exc}); the file may be corrupted") from exc
        if _META_KEY not in meta:
            raise XaisecError(f"{path}: not an xaisec RTS weights file (no {_META_KEY!r} metadata); "
                              "write one with `xaisec train-rts`")
        cfg = json.loads(meta[_META_KEY])
        net = cls(cfg["in_channels"], cfg["num_classes"], mean=cfg["mean"], std=cfg["std"], width=cfg["width"],
                  blocks=cfg["blocks"])
        load_into(net, path)
        return net

    def save(self, path: str | Path, classifier: str = "custom") -> Path:
        """Atomically write the weights with the architecture in the safetensors metadata."""
        meta = {_META_KEY: json.dumps(self.config), "classifier": classifier}
        return save_safetensors(self, path, metadata=meta)



__all__ = ["SaliencyNet"]
