"""Tensors to PNG: images, heat maps and overlays, for reports and ``xaisec explain``."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image


def _to_uint8_hwc(img: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (H, W) float in [0, 1] -> uint8 (H, W, 3)."""
    img = img.detach().float().cpu().clamp(0, 1)
    if img.dim() == 2:
        img = img.unsqueeze(0)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def colorize(m: torch.Tensor, cmap: str = "jet") -> torch.Tensor:
    """(H, W) map in [0, 1] -> (3, H, W) RGB through a matplotlib colour map."""
    from matplotlib import colormaps

    rgba = colormaps[cmap](m.detach().float().cpu().clamp(0, 1).numpy())
    return torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).float()


def heatmap_overlay(img: torch.Tensor, m: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> torch.Tensor:
    """Blend an (H, W) map in [0, 1] over a (C, H, W) image in [0, 1]; returns (3, H, W)."""
    base = img.detach().float().cpu()
    base = base.expand(3, -1, -1) if base.shape[0] == 1 else base
    return ((1 - alpha) * base + alpha * colorize(m, cmap)).clamp(0, 1)


def to_png_bytes(img: torch.Tensor, scale: int = 1) -> bytes:
    """(C, H, W) or (H, W) in [0, 1] -> PNG bytes, enlarged ``scale`` times with nearest-neighbour pixels."""
    im = Image.fromarray(_to_uint8_hwc(img))
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def to_data_uri(img: torch.Tensor, scale: int = 1) -> str:
    """A ``data:image/png;base64,...`` URI so an HTML report is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(to_png_bytes(img, scale)).decode("ascii")


def display_scale(size: int, target: int = 128) -> int:
    """How much to enlarge a ``size``-pixel image so it shows at about ``target`` pixels."""
    return max(1, round(target / size))


def outline_mask(img: torch.Tensor, mask: torch.Tensor, color: tuple[float, float, float] = (1.0, 1.0, 0.0)
                 ) -> torch.Tensor:
    """Draw the 1-px ring just outside a binary (H, W) mask (e.g. an adversarial patch) on a (C, H, W) image in
    [0, 1]; returns (3, H, W). The pixels of the mask itself are left as they are."""
    import torch.nn.functional as F

    base = img.detach().float().cpu()
    base = base.expand(3, -1, -1).clone() if base.shape[0] == 1 else base.clone()
    m = (mask.detach().float().cpu() > 0.5).float().view(1, 1, *mask.shape[-2:])
    ring = (F.max_pool2d(m, 3, stride=1, padding=1) - m).view(mask.shape[-2:]).bool()
    for c, v in enumerate(color):
        base[c][ring] = v
    return base
