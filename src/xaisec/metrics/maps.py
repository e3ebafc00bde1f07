"""Similarity of attribution maps (adversarial vs benign, or vs a target map).

Inputs are two batches of maps of the same shape, (N, H, W) or (N, 1, H, W), any real values; each
function returns a float tensor (N,) on ``a``'s device (``aggregate`` gives the mean).

- ``map_l1``, ``map_l2``, ``map_mse``: distances between maps min-max normalised per sample to
  [0, 1] (as ADV^2 and AdvEdge do), divided by the number of pixels so that they lie in [0, 1].
  Lower means more similar. A constant map normalises to all zeros.
- ``map_iou``: Jaccard index of the top-k% pixels of each map, in [0, 1]. Higher is more similar.
- ``kendall_tau`` (tau-b) and ``spearman`` (average ranks): rank correlations over all H*W pixels,
  as ``scipy.stats.kendalltau`` / ``spearmanr`` compute them, in [-1, 1]; NaN when a map is
  constant (the correlation is undefined, as in scipy). Higher is more similar. Rank-based, so
  any per-sample normalisation that preserves order leaves them unchanged.

Everything is batched: sorting, tie counting and inversion counting run over the whole batch at once.
"""

from __future__ import annotations

import torch

from xaisec.metrics._validate import map_pair
from xaisec.utils.checks import XaisecError

MAP_NORMALISATIONS = ("minmax", "none")


def minmax_normalize(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-sample min-max normalisation of (N, ...) to [0, 1]; a constant map becomes all zeros."""
    flat = maps.flatten(1)
    lo = flat.min(1, keepdim=True).values
    hi = flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(eps)).view_as(maps)


def _normalised_pair(a: torch.Tensor, b: torch.Tensor, normalize: str) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = map_pair(a, b)
    if normalize == "minmax":
        return minmax_normalize(a), minmax_normalize(b)
    if normalize == "none":
        return a, b
    raise XaisecError(f"unknown map normalisation {normalize!r}; choose from {MAP_NORMALISATIONS}")


def map_l1(a: torch.Tensor, b: torch.Tensor, *, normalize: str = "minmax") -> torch.Tensor:
    """L1 distance ``sum |a - b| / (H * W)`` after per-sample min-max normalisation, (N,) in [0, 1].

    Lower is more similar. Exact property: the result is 0 if and only if the normalised maps are
    equal, i.e. ``a = s * b + c`` with ``s > 0`` (or both maps constant), up to float rounding.
    Symmetric in ``a`` and ``b``. ``normalize="none"`` skips the normalisation (then the range is
    that of the inputs). The sum is accumulated in float64.
    """
    a, b = _normalised_pair(a, b, normalize)
    d = (a - b).abs().flatten(1)
    return (d.sum(1, dtype=torch.float64) / d.shape[1]).to(a.dtype)


def map_l2(a: torch.Tensor, b: torch.Tensor, *, normalize: str = "minmax") -> torch.Tensor:
    """L2 distance ``sqrt(sum (a - b)^2) / sqrt(H * W)`` (the RMS difference) after min-max, (N,) in [0, 1].

    Lower is more similar; symmetric; 0 exactly when the normalised maps are equal.
    """
    a, b = _normalised_pair(a, b, normalize)
    d = (a - b).flatten(1)
    return (d.pow(2).sum(1, dtype=torch.float64) / d.shape[1]).sqrt().to(a.dtype)


def map_mse(a: torch.Tensor, b: torch.Tensor, *, normalize: str = "minmax") -> torch.Tensor:
    """Mean squared difference ``sum (a - b)^2 / (H * W)`` after min-max, (N,) in [0, 1]; lower is more similar."""
    a, b = _normalised_pair(a, b, normalize)
    d = (a - b).flatten(1)
    return (d.pow(2).sum(1, dtype=torch.float64) / d.shape[1]).to(a.dtype)


def top_k_count(num_pixels: int, k: float) -> int:
    """Number of pixels kept by ``binarize_top_k``: ``round(k / 100 * H * W)``, at least 1."""
    if not 0 < k <= 100:
        raise XaisecError(f"k is a percentage of pixels and must be in (0, 100], got {k}")
    return max(1, min(num_pixels, round(k / 100 * num_pixels)))


def binarize_top_k(maps: torch.Tensor, k: float = 20.0) -> torch.Tensor:
    """Bool masks (N, H, W) marking the top ``k`` percent pixels of each map.

    Exactly ``top_k_count(H * W, k)`` pixels are set per map. Ties at the threshold are broken
    deterministically: among equal values the pixel with the lower row-major index is kept first
    (a stable descending sort), so a constant map keeps its first pixels in row-major order.
    """
    if maps.dim() != 3:
        raise XaisecError(f"maps must have shape (N, H, W), got {tuple(maps.shape)}")
    flat = maps.flatten(1)
    n_keep = top_k_count(flat.shape[1], k)
    order = flat.argsort(dim=1, descending=True, stable=True)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask.scatter_(1, order[:, :n_keep], True)
    return mask.view_as(maps)


def map_iou(a: torch.Tensor, b: torch.Tensor, *, k: float = 20.0) -> torch.Tensor:
    """Intersection over union of the top-``k``% pixel masks of ``a`` and ``b``, (N,) in [0, 1].

    Each map is binarised on its own by :func:`binarize_top_k` (``round(k/100 * H*W)`` pixels, ties
    broken by lower row-major index); IoU = |A & B| / |A | B|. The papers binarise by a threshold
    they do not publish; top-k makes IoU comparable across interpreters whose maps have different
    value distributions. Higher is more similar; symmetric; 1 for identical maps. Invariant to any
    per-sample strictly increasing transform of the maps (e.g. min-max normalisation).
    """
    a, b = map_pair(a, b)
    ma, mb = binarize_top_k(a, k).flatten(1), binarize_top_k(b, k).flatten(1)
    inter = (ma & mb).sum(1)
    union = (ma | mb).sum(1)  # >= the number of kept pixels >= 1
    return (inter.double() / union.double()).to(a.dtype)


# ---------------------------------------------------------------------------------------------
# rank correlations
# ---------------------------------------------------------------------------------------------


def _group_start(sorted_vals: torch.Tensor) -> torch.Tensor:
    """For rows sorted along dim 1, the index where each element's run of equal values starts."""
    n, p = sorted_vals.shape
    pos = torch.arange(p, device=sorted_vals.device).expand(n, p)
    new = torch.ones_like(sorted_vals, dtype=torch.bool)
    new[:, 1:] = sorted_vals[:, 1:] != sorted_vals[:, :-1]
    return torch.where(new, pos, torch.zeros_like(pos)).cummax(1).values


def _tied_pairs(sorted_vals: torch.Tensor) -> torch.Tensor:
    """Number of pairs with equal values per row (sum over runs of t*(t-1)/2), int64 (N,)."""
    p = sorted_vals.shape[1]
    pos = torch.arange(p, device=sorted_vals.device)
    return (pos - _group_start(sorted_vals)).sum(1)


def _dense_rank(v: torch.Tensor) -> torch.Tensor:
    """Dense integer ranks (0, 1, ...; equal values share a rank) per row, int64 (N, P)."""
    s, idx = v.sort(dim=1, stable=True)
    new = torch.ones_like(s, dtype=torch.long)
    new[:, 1:] = (s[:, 1:] != s[:, :-1]).long()
    return torch.empty_like(idx).scatter_(1, idx, new.cumsum(1) - 1)


def _count_inversions(y: torch.Tensor) -> torch.Tensor:
    """Pairs i < j with y[i] > y[j] per row of an int64 (N, P) tensor of values in [0, P), int64 (N,).

    Bottom-up merge sort over the whole batch: at block size s, every element of a right block
    counts the elements of its left block that are strictly greater (a batched searchsorted), then
    the block pairs are merged by sorting. O(P log^2 P) work, log2(P) vectorised steps.
    """
    n, p = y.shape
    length = 1 << max(0, (p - 1).bit_length())
    cur = torch.cat([y, y.new_full((n, length - p), p)], 1)  # padding p > every value: no inversions
    total = torch.zeros(n, dtype=torch.long, device=y.device)
    s = 1
    while s < length:
        blocks = cur.view(n, length // (2 * s), 2, s)
        left, right = blocks[:, :, 0].contiguous(), blocks[:, :, 1].contiguous()
        total += (s - torch.searchsorted(left, right, right=True)).sum((1, 2))
        cur = blocks.reshape(n, length // (2 * s), 2 * s).sort(dim=2).values.reshape(n, length)
        s *= 2
    return total


def kendall_tau(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Kendall's tau-b between the pixel values of ``a`` and ``b``, (N,) in [-1, 1].

    tau_b = (concordant - discordant) / sqrt((n0 - n1) (n0 - n2)) with n0 = P(P-1)/2 pixel pairs and
    n1, n2 the pairs tied in ``a``, in ``b`` (the default of ``scipy.stats.kendalltau``). NaN when a
    map is constant. Higher is more similar; 1 for maps with the same pixel order. Counting is exact
    (int64); O(P log^2 P) per map, batched.
    """
    a, b = map_pair(a, b)
    fa, fb = a.flatten(1), b.flatten(1)
    p = fa.shape[1]
    ra, rb = _dense_rank(fa), _dense_rank(fb)
    key = ra * p + rb  # lexicographic (a, b) order
    key_sorted, order = key.sort(dim=1)
    n1 = _tied_pairs(ra.sort(dim=1).values)
    n2 = _tied_pairs(rb.sort(dim=1).values)
    n3 = _tied_pairs(key_sorted)
    discordant = _count_inversions(rb.gather(1, order))
    n0 = p * (p - 1) // 2
    con_minus_dis = (n0 - n1 - n2 + n3 - 2 * discordant).double()
    denom = ((n0 - n1).double() * (n0 - n2).double()).sqrt()
    return (con_minus_dis / denom).clamp(-1.0, 1.0).to(a.dtype)


def _average_rank(v: torch.Tensor) -> torch.Tensor:
    """Ranks with ties given the mean of their positions (scipy's ``rankdata`` default), float64 (N, P)."""
    s, idx = v.sort(dim=1, stable=True)
    p = s.shape[1]
    start = _group_start(s)
    end = (p - 1) - _group_start(s.flip(1)).flip(1)  # last index of each run
    avg = (start + end).double() / 2
    return torch.empty_like(avg).scatter_(1, idx, avg)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation between the pixel values of ``a`` and ``b``, (N,) in [-1, 1].

    Pearson correlation of the average ranks (ties share the mean rank), as ``scipy.stats.spearmanr``.
    NaN when a map is constant. Higher is more similar; 1 for maps with the same pixel order.
    """
    a, b = map_pair(a, b)
    ra, rb = _average_rank(a.flatten(1)), _average_rank(b.flatten(1))
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    rho = (ra * rb).sum(1) / ((ra * ra).sum(1) * (rb * rb).sum(1)).sqrt()
    return rho.clamp(-1.0, 1.0).to(a.dtype)
