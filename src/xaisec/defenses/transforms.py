"""Input transforms (squeezers) as ``nn.Module``s: median smoothing, bit-depth reduction, non-local means.

Every transform maps [0, 1] images (N, C, H, W) to [0, 1] images of the same shape, batched on the input's
device. ``bpda=True`` makes the backward pass the identity (straight-through, BPDA; Athalye et al. 2018)
while the forward pass stays the transform, so an adaptive attack can differentiate through it.

Conventions (chosen to match scipy / the Adversarial Robustness Toolbox, see ``benchmarks/defenses.py``):

* median k x k: the window of pixel i covers i - k//2 .. i + (k-1) - k//2 (for even k the centre sits at
  the lower right), borders are mirrored with the edge pixel repeated (scipy ``mode="reflect"``), and for
  even k*k the *upper* median (element k*k//2 of the sorted window) is taken, as scipy's median_filter.
* bits b: round(x * (2^b - 1)) / (2^b - 1) (Feature Squeezing).
* non-local means s-p-h: search window s x s, patch p x p, strength h on the 0-255 scale (OpenCV's
  convention, as in Feature Squeezing's "nlm 13-3-2"): weight exp(-d2 / h^2) with d2 the patch mean
  squared difference (over pixels and channels, 0-255 units); borders mirrored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.utils.checks import XaisecError

SQUEEZERS = ("median", "bits", "nlm")
CHUNK = 64  # images per block inside a transform


def _straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Forward ``y``, backward identity w.r.t. ``x``."""
    return x + (y - x).detach()


def _mirror_axis(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    n = x.shape[dim]
    if before > n or after > n:
        raise XaisecError(f"cannot mirror-pad an axis of {n} pixels by {max(before, after)}; use a smaller window")
    parts = []
    if before:
        parts.append(x.narrow(dim, 0, before).flip(dim))
    parts.append(x)
    if after:
        parts.append(x.narrow(dim, n - after, after).flip(dim))
    return torch.cat(parts, dim) if len(parts) > 1 else x


def mirror_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Symmetric padding (edge repeated, d c b a | a b c d, scipy ``reflect``) of (N, C, H, W); differentiable."""
    if max(top, bottom, left, right) <= 1:  # one pixel of symmetric padding is edge replication (fast kernel)
        return F.pad(x, (left, right, top, bottom), mode="replicate") if max(top, bottom, left, right) else x
    return _mirror_axis(_mirror_axis(x, -2, top, bottom), -1, left, right)


def _med3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def _sort3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    return torch.minimum(lo, c), _med3(a, b, c), torch.maximum(hi, c)


class Squeezer(nn.Module):
    """Base: ``forward(x)`` (N, C, H, W) in [0, 1] -> same shape in [0, 1]; ``spec`` is its "name:args" text."""

    name = "squeezer"

    def __init__(self, *, bpda: bool = False) -> None:
        super().__init__()
        self.bpda = bool(bpda)

    @property
    def spec(self) -> str:
        raise NotImplementedError

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise XaisecError(f"{self.name} expects images (N, C, H, W), got shape {tuple(x.shape)}")
        if self.bpda:
            with torch.no_grad():  # the backward pass is the identity: no graph through the transform
                y = self._chunked(x)
            return _straight_through(x, y)
        return self._chunked(x)

    def _chunked(self, x: torch.Tensor) -> torch.Tensor:
        # blocks of CHUNK images keep the temporaries small enough to be reused (3-4x faster on a CPU)
        if x.shape[0] <= CHUNK:
            return self.squeeze(x)
        return torch.cat([self.squeeze(x[i:i + CHUNK]) for i in range(0, x.shape[0], CHUNK)])

    def extra_repr(self) -> str:
        return f"{self.spec!r}, bpda={self.bpda}"


class MedianSmoothing(Squeezer):
    """k x k median filter per channel (k >= 1; even k allowed, see the module conventions).

    Without BPDA the backward pass routes the gradient to the selected (median) pixel of each window.
    """

    name = "median"

    def __init__(self, k: int = 2, *, bpda: bool = False) -> None:
        super().__init__(bpda=bpda)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise XaisecError(f"median filter size k must be an int >= 1, got {k!r}")
        self.k = k

    @property
    def spec(self) -> str:
        return f"median:{self.k}"

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k
        if k == 1:
            return x
        before, after = k // 2, k - 1 - k // 2
        p = mirror_pad(x, before, after, before, after)
        if k == 2:  # upper median of 4 = second largest, with 6 elementwise ops instead of a sort
            a, b = p[..., :-1, :-1], p[..., :-1, 1:]
            c, d = p[..., 1:, :-1], p[..., 1:, 1:]
            return torch.maximum(torch.minimum(torch.maximum(a, b), torch.maximum(c, d)),
                                 torch.maximum(torch.minimum(a, b), torch.minimum(c, d)))
        if k == 3:  # exact 3x3 median from sorted rows: med3(max of row minima, med3 of medians, min of maxima)
            lo, mid, hi = _sort3(p[..., :, :-2], p[..., :, 1:-1], p[..., :, 2:])
            rows = slice(0, -2), slice(1, -1), slice(2, None)
            lo_max = torch.maximum(torch.maximum(lo[..., rows[0], :], lo[..., rows[1], :]), lo[..., rows[2], :])
            hi_min = torch.minimum(torch.minimum(hi[..., rows[0], :], hi[..., rows[1], :]), hi[..., rows[2], :])
            mid_med = _med3(mid[..., rows[0], :], mid[..., rows[1], :], mid[..., rows[2], :])
            return _med3(lo_max, mid_med, hi_min)
        h, w = x.shape[-2:]
        windows = torch.stack([p[..., i:i + h, j:j + w] for i in range(k) for j in range(k)], dim=-1)
        return windows.kthvalue(k * k // 2 + 1, dim=-1).values


class BitDepth(Squeezer):
    """Reduce every value to ``bits`` bits (1-8): round(x * (2^bits - 1)) / (2^bits - 1). Idempotent."""

    name = "bits"

    def __init__(self, bits: int = 5, *, bpda: bool = False) -> None:
        super().__init__(bpda=bpda)
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
            raise XaisecError(f"bit depth must be an int in 1-8, got {bits!r}")
        self.bits = bits

    @property
    def levels(self) -> int:
        return 2**self.bits - 1

    @property
    def spec(self) -> str:
        return f"bits:{self.bits}"

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        m = float(self.levels)
        return x.mul(m).round_().div_(m)  # in place after the first op: round and /m save nothing for backward


class NonLocalMeans(Squeezer):
    """Non-local means denoising, batched: every pixel becomes the weighted mean of the pixels in its
    ``search`` x ``search`` window, weighted by exp(-d2 / strength^2) with d2 the mean squared difference
    of the ``patch`` x ``patch`` neighbourhoods (0-255 units, averaged over channels). One loop over the
    search offsets (search^2 batched steps), none over images. Differentiable (weights and values).
    """

    name = "nlm"

    def __init__(self, search: int = 13, patch: int = 3, strength: float = 2.0, *, bpda: bool = False) -> None:
        super().__init__(bpda=bpda)
        for label, v in (("search window", search), ("patch", patch)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % 2 == 0:
                raise XaisecError(f"non-local means {label} must be an odd int >= 1, got {v!r}")
        if not strength > 0:
            raise XaisecError(f"non-local means strength must be > 0, got {strength!r}")
        self.search, self.patch, self.strength = search, patch, float(strength)

    @property
    def spec(self) -> str:
        s = int(self.strength) if float(self.strength).is_integer() else self.strength
        return f"nlm:{self.search}-{self.patch}-{s}"

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        r, pr = self.search // 2, self.patch // 2
        xp = mirror_pad(x, r, r, r, r)
        scale = (255.0 / self.strength) ** 2
        inplace = not (torch.is_grad_enabled() and x.requires_grad)
        num = torch.zeros_like(x)
        den = torch.zeros_like(x[:, :1])
        for dy in range(self.search):
            for dx in range(self.search):
                shifted = xp[..., dy:dy + h, dx:dx + w]
                diff = x - shifted
                d2 = (diff * diff).mean(1, keepdim=True)
                if pr > 0:
                    d2 = F.avg_pool2d(mirror_pad(d2, pr, pr, pr, pr), self.patch, stride=1)
                wgt = torch.exp(d2 * -scale)
                if inplace:
                    num.addcmul_(wgt, shifted)
                    den.add_(wgt)
                else:
                    num = num + wgt * shifted
                    den = den + wgt
        return (num / den).clamp(0, 1)


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise XaisecError(f"{what} must be an integer, got {text!r}") from exc


def build(name: str, *, bpda: bool = False, **params: object) -> Squeezer:
    """A squeezer by name and keyword arguments: ``build("median", k=2)``, ``build("bits", bits=5)``,
    ``build("nlm", search=13, patch=3, strength=2)``."""
    classes = {"median": MedianSmoothing, "bits": BitDepth, "nlm": NonLocalMeans}
    if name not in classes:
        raise XaisecError(f"unknown squeezer {name!r}; choose from {', '.join(SQUEEZERS)} (e.g. 'median:2')")
    try:
        return classes[name](bpda=bpda, **params)  # type: ignore[arg-type]
    except TypeError as exc:
        raise XaisecError(f"bad parameters for squeezer {name!r}: {exc}") from exc


def parse(spec: str | Squeezer, *, bpda: bool = False) -> Squeezer:
    """``"median:2"``, ``"bits:5"``, ``"nlm:13-3-2"`` (search-patch-strength) or a Squeezer -> a Squeezer."""
    if isinstance(spec, Squeezer):
        return spec
    if not isinstance(spec, str):
        raise XaisecError(f"a squeezer is a text like 'median:2', 'bits:5' or 'nlm:13-3-2', got {spec!r}")
    name, _, arg = spec.strip().partition(":")
    if name not in SQUEEZERS:
        raise XaisecError(f"unknown squeezer {spec!r}; use median:K, bits:B or nlm:S-P-H (e.g. nlm:13-3-2)")
    if name == "median":
        return MedianSmoothing(_int(arg or "2", "median size"), bpda=bpda)
    if name == "bits":
        return BitDepth(_int(arg or "5", "bit depth"), bpda=bpda)
    parts = (arg or "13-3-2").split("-")
    if len(parts) != 3:
        raise XaisecError(f"non-local means is nlm:SEARCH-PATCH-STRENGTH (e.g. nlm:13-3-2), got {spec!r}")
    try:
        strength = float(parts[2])
    except ValueError as exc:
        raise XaisecError(f"non-local means strength must be a number, got {parts[2]!r}") from exc
    return NonLocalMeans(_int(parts[0], "search window"), _int(parts[1], "patch size"), strength, bpda=bpda)
