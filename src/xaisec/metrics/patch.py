"""Metrics of adversarial patches against CAM-type explanations, batched, one value per image (N,).

Maps are the raw (un-normalised) class maps at the CAM layer's own resolution (N, h, w), e.g.
``GradCAM.raw_maps(x, target)``; they are ReLU'd here. Masks are binary pixel masks (N, H, W) of the patch.
Targeted success is in the attack result (``success``).

- :func:`patch_mass_ratio`: share of the ReLU'd map mass inside the patch, in [0, 1]. At the map's own
  resolution each cell counts with the share of it the patch covers; ``upsample=True`` first resizes the
  map bilinearly (align_corners=False) to the mask's resolution. No min-max (it would distort the ratio).
  A map with no positive mass gives 0.
- :func:`area_share`: the patch's share of the image, the ratio a map spread evenly would give.
- :func:`off_patch_fidelity`: Pearson correlation between two maps (adversarial vs benign) over the cells
  the patch does not touch, in [-1, 1]; 0 when either map is constant there (undefined correlation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xaisec.utils.checks import XaisecError


def _check(maps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps.squeeze(1)
    if mask.dim() == 4 and mask.shape[1] == 1:
        mask = mask.squeeze(1)
    if maps.dim() != 3 or mask.dim() != 3:
        raise XaisecError(f"maps and mask must be (N, h, w) and (N, H, W), got {tuple(maps.shape)} and "
                          f"{tuple(mask.shape)}")
    if mask.shape[0] != maps.shape[0]:
        if mask.shape[0] != 1:
            raise XaisecError(f"mask batch {mask.shape[0]} does not match maps batch {maps.shape[0]}")
        mask = mask.expand(maps.shape[0], -1, -1)
    return maps.float(), mask.float().to(maps.device)


def coverage(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Share of each of the h x w map cells (N, h, w) the pixel mask (N, H, W) covers."""
    return F.adaptive_avg_pool2d(mask.float().unsqueeze(1), hw).squeeze(1)


def patch_mass_ratio(maps: torch.Tensor, mask: torch.Tensor, *, upsample: bool = False) -> torch.Tensor:
    """sum(ReLU(G) inside the patch) / sum(ReLU(G)), (N,) in [0, 1].

    maps (N, h, w) raw class maps; mask (N, H, W) (or (1, H, W)) binary patch mask.
    """
    maps, mask = _check(maps, mask)
    g = F.relu(maps)
    if upsample:
        g = F.interpolate(g.unsqueeze(1), size=tuple(mask.shape[-2:]), mode="bilinear",
                          align_corners=False).squeeze(1).clamp_min(0)
        c = mask
    else:
        c = coverage(mask, tuple(g.shape[-2:]))
    total = g.flatten(1).sum(1)
    inside = (g * c).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-30), torch.zeros_like(total))


def area_share(mask: torch.Tensor) -> torch.Tensor:
    """Patch area / image area (N,) of a binary mask (N, H, W)."""
    if mask.dim() == 4 and mask.shape[1] == 1:
        mask = mask.squeeze(1)
    if mask.dim() != 3:
        raise XaisecError(f"mask must be (N, H, W), got {tuple(mask.shape)}")
    return mask.float().flatten(1).mean(1)


def off_patch_fidelity(maps_adv: torch.Tensor, maps_benign: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pearson r between two (N, h, w) maps over the cells the patch (mask (N, H, W)) does not touch, (N,).

    The maps are ReLU'd first (Grad-CAM's own ReLU; a no-op for Grad-CAM maps). 0 where a map is constant
    off the patch.
    """
    a, mask = _check(maps_adv, mask)
    b, _ = _check(maps_benign, mask)
    if a.shape != b.shape:
        raise XaisecError(f"the two maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = F.relu(a), F.relu(b)
    keep = (coverage(mask, tuple(a.shape[-2:])) == 0).float().flatten(1)
    a, b = a.flatten(1), b.flatten(1)
    cnt = keep.sum(1).clamp_min(1)
    am = (a * keep).sum(1, keepdim=True) / cnt.unsqueeze(1)
    bm = (b * keep).sum(1, keepdim=True) / cnt.unsqueeze(1)
    da, db = (a - am) * keep, (b - bm) * keep
    num = (da * db).sum(1)
    den = (da.pow(2).sum(1) * db.pow(2).sum(1)).sqrt()
    return torch.where(den > 1e-20, num / den.clamp_min(1e-20), torch.zeros_like(num)).clamp(-1, 1)


def patch_metrics(maps_adv: torch.Tensor, maps_clean: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """All patch metrics (name -> (N,)): ``patch_mass`` (map resolution), ``patch_mass_up`` (upsampled),
    ``patch_mass_clean`` (the clean map's mass in the same box), ``area_share`` and ``fidelity_off_patch``.

    maps_adv: raw target-class maps of the adversarial images; maps_clean: raw true-class maps of the clean
    images; both (N, h, w). mask (N, H, W).
    """
    return {
        "patch_mass": patch_mass_ratio(maps_adv, mask),
        "patch_mass_up": patch_mass_ratio(maps_adv, mask, upsample=True),
        "patch_mass_clean": patch_mass_ratio(maps_clean, mask),
        "area_share": area_share(mask).to(maps_adv.device),
        "fidelity_off_patch": off_patch_fidelity(maps_adv, maps_clean, mask),
    }
