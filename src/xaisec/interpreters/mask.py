"""MASK: meaningful perturbation (Fong & Vedaldi, ICCV 2017), batched, with a functional inner optimiser.

A low-resolution mask m (N, 1, h, w) in [0, 1] is upsampled bilinearly to the image; m = 1 keeps a pixel,
m = 0 replaces it by a blurred (optionally noisy) copy of the image:

    phi(x; m) = m * x + (1 - m) * (blur(x) + noise)

and m minimises, per sample,

    l1 * ||1 - m||_1 + tv * sum_u (|d_y m(u)|^p + |d_x m(u)|^p) + softmax(f(phi(x; m)) / T)_c

with both regularisers on the upsampled, image-resolution mask (the pixel lattice u, as in the paper;
ADV^2's CIFAR code applies them to the 8 x 8 grid, where the total variation dominates and the mask
tends to delete all or nothing), p = ``tv_power``, and Adam from m = ``init``, clamping the grid mask to
[0, 1] after each step. The saliency map is 1 - m: the region whose deletion destroys the class.

The optimiser is written functionally so attacks can differentiate through it (the bilevel ADV^2 attack):

    state = g.init_state(x)                              # m = init, Adam moments 0
    state = g.optimise(x, target, state, iterations=4)   # plain steps, no graph
    x.requires_grad_(True)
    for _ in range(4):
        state = g.step(state, x, target, create_graph=True)   # unrolled: the new mask is a function of x
    loss = ((g.map_from_state(state) - target_map) ** 2).sum()
    loss.backward()                                       # d loss / d x through the unrolled Adam steps

Every sample has its own loss term and Adam acts element-wise, so samples do not interact (the sum of the
per-sample losses is what is differentiated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.interpreters.base import Interpreter, normalize_maps, resize_maps
from xaisec.utils.checks import XaisecError, check_images, check_targets


@dataclass(frozen=True)
class MaskState:
    """The inner optimiser's state; tensors on the model's device.

    mask: (N, 1, h, w) in [0, 1], 1 = keep. exp_avg, exp_avg_sq: Adam's moment estimates, same shape.
    steps: Adam steps taken. generator: the random stream for noise and jitter (None when neither is used).
    """

    mask: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    steps: int
    generator: torch.Generator | None = None


def default_mask_size(height: int, width: int) -> tuple[int, int]:
    """The default mask grid. The paper's 28 x 28 grid for 224-pixel images is one cell per 8 pixels, which
    would leave a 4 x 4 grid on CIFAR images, too coarse to localise; xaisec uses one cell per 4 pixels,
    capped at 28: 8 x 8 for 32 x 32 inputs (as the ADV^2 CIFAR code), 28 x 28 for 224 x 224."""
    return (min(28, max(2, math.ceil(height / 4))), min(28, max(2, math.ceil(width / 4))))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect padding; kernel radius ceil(3 sigma), capped so
    the padding fits the image. Differentiable in x."""
    if sigma <= 0:
        return x
    radius = min(math.ceil(3 * sigma), x.shape[-2] - 1, x.shape[-1] - 1)
    if radius < 1:
        return x
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (offsets / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class MeaningfulPerturbation(Interpreter):
    """MASK interpreter (Fong & Vedaldi 2017).

    Args:
        model: a classifier on [0, 1] images.
        mask_size: the mask grid (h, w) or an int for a square grid; None: :func:`default_mask_size`
            (8 x 8 for 32 x 32 inputs, 28 x 28 for 224 x 224).
        iterations: Adam steps of :meth:`attribute` (paper: 300).
        lr: Adam learning rate (0.1). betas, eps: Adam's (0.9, 0.999) and 1e-8.
        l1: weight of ||1 - m||_1 summed over the image's pixels (1e-4). tv: weight of the total
            variation, also over pixels (1e-2).
        tv_power: exponent of the total variation (3, as in the paper).
        blur_sigma: the deletion blur's standard deviation in pixels; None: 10 (the paper's) scaled by
            the image size / 224, at least 5 (5 for 32 x 32, 10 for 224 x 224).
        noise_std: standard deviation of Gaussian noise added to the blurred copy, fresh at every step (0).
        jitter: the image (not the mask) is shifted by a random offset in [-jitter, jitter]^2 pixels at
            every step, replicate-padded (the paper's tau; 0 = off).
        init: the initial mask value (0.5, as the ADV^2 code; 1 = keep everything).
        temperature: the class score is softmax(logits / temperature)_target (4; the paper: 1).
        seed: seeds the noise and jitter stream; identical calls give identical maps.
        normalize: map normalisation after upsampling (``"minmax"`` default).

    Raw maps from :meth:`attribute`: 1 - m at grid resolution (N, h, w), in [0, 1]. Not differentiable as
    a plain call (``create_graph=True`` raises); unroll :meth:`step` instead (see the module docstring).
    Noise and jitter draws depend on the batch size, so with them on, a sample's map depends on the
    batch it is in (not on the other samples' content).

    Two deviations from the paper's settings, both because of small, over-confident CIFAR models, and both
    keyword arguments (``temperature=1, blur_sigma=10 * size / 224`` is the paper):

    - ``temperature`` (default 4): the class score is softmax(logits / T)_c. With T = 1 the probability
      of an over-confident sample is within ~1e-6 of 1, its gradient vanishes, the l1 term wins and the
      mask keeps the whole image: on the shipped ResNet-20 a quarter of the test images got a flat map.
      T = 4 gives every image a map and the best deletion / insertion AUCs
      (benchmarks/faithfulness.py).
    - ``blur_sigma`` default: the paper's 10 pixels at 224 px scaled by the image size, but at least 5
      pixels: the scaled 1.4 px blur of a 32 x 32 image leaves the class recognisable, so there is
      nothing for the mask to delete.
    """

    name: ClassVar[str] = "mask"
    differentiable: ClassVar[bool] = False

    def __init__(
        self,
        model: nn.Module,
        *,
        mask_size: int | tuple[int, int] | None = None,
        iterations: int = 300,
        lr: float = 0.1,
        l1: float = 1e-4,
        tv: float = 1e-2,
        tv_power: float = 3.0,
        blur_sigma: float | None = None,
        noise_std: float = 0.0,
        jitter: int = 0,
        init: float = 0.5,
        temperature: float = 4.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        seed: int = 0,
        normalize: str = "minmax",
    ) -> None:
        super().__init__(model, normalize=normalize)
        if isinstance(mask_size, int):
            mask_size = (mask_size, mask_size)
        if mask_size is not None and (len(mask_size) != 2 or min(mask_size) < 1):
            raise XaisecError(f"mask_size must be a positive int or (h, w), got {mask_size!r}")
        if iterations < 0:
            raise XaisecError(f"iterations must be >= 0, got {iterations}")
        if lr <= 0 or l1 < 0 or tv < 0 or tv_power <= 0 or noise_std < 0 or jitter < 0:
            raise XaisecError("lr and tv_power must be > 0; l1, tv, noise_std and jitter must be >= 0")
        if blur_sigma is not None and blur_sigma < 0:
            raise XaisecError(f"blur_sigma must be >= 0, got {blur_sigma}")
        if temperature <= 0:
            raise XaisecError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= init <= 1.0:
            raise XaisecError(f"init must be in [0, 1], got {init}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise XaisecError(f"betas must be in [0, 1), got {betas}")
        self.mask_size = None if mask_size is None else (int(mask_size[0]), int(mask_size[1]))
        self.iterations = int(iterations)
        self.lr, self.l1, self.tv, self.tv_power = float(lr), float(l1), float(tv), float(tv_power)
        self.blur_sigma, self.noise_std, self.jitter = blur_sigma, float(noise_std), int(jitter)
        self.init, self.betas, self.eps, self.seed = float(init), betas, float(eps), int(seed)
        self.temperature = float(temperature)

    # ----------------------------------------------------------------------------------------------
    # the pieces of the objective
    def sigma_for(self, x: torch.Tensor) -> float:
        if self.blur_sigma is not None:
            return float(self.blur_sigma)
        return max(5.0, 10.0 * min(x.shape[-2:]) / 224.0)

    def upsample(self, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, 1, h, w) -> (N, 1, H, W), bilinear, align_corners=False (as the base's map resizing)."""
        return F.interpolate(mask, size=size, mode="bilinear", align_corners=False)

    def perturb(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """phi(x; m) for x (N, C, H, W) and a grid mask (N, 1, h, w); jitter and noise from ``generator``."""
        return self._blend(x, self.upsample(mask, tuple(x.shape[-2:])), generator)

    def _blend(self, x: torch.Tensor, m: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.jitter > 0:
            j = self.jitter
            dy, dx = (torch.randint(0, 2 * j + 1, (2,), generator=generator, device=_gen_device(generator))
                      .tolist())
            h, w = x.shape[-2:]
            x = F.pad(x, (j, j, j, j), mode="replicate")[..., dy:dy + h, dx:dx + w]
        deleted = gaussian_blur(x, self.sigma_for(x))
        if self.noise_std > 0:
            noise = torch.randn(x.shape, generator=generator, device=_gen_device(generator), dtype=x.dtype)
            deleted = deleted + self.noise_std * noise.to(x.device)
        return m * x + (1 - m) * deleted

    def objective(
        self,
        mask: torch.Tensor,
        x: torch.Tensor,
        target: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-sample loss (N,) of a grid mask (N, 1, h, w): with m its upsampling to the image,
        l1 * sum_u |1 - m(u)| + tv * sum_u (|d_y m(u)|^p + |d_x m(u)|^p) + softmax(f(phi(x; m)) / T)_target."""
        m = self.upsample(mask, tuple(x.shape[-2:]))
        logits = self.model(self._blend(x, m, generator))
        prob = F.softmax(logits / self.temperature, dim=1).gather(1, target.view(-1, 1))[:, 0]
        l1 = (1 - m).abs().flatten(1).sum(1)
        p = self.tv_power
        tv = ((m[..., 1:, :] - m[..., :-1, :]).abs().pow(p).flatten(1).sum(1)
              + (m[..., :, 1:] - m[..., :, :-1]).abs().pow(p).flatten(1).sum(1))
        return self.l1 * l1 + self.tv * tv + prob

    # ----------------------------------------------------------------------------------------------
    # the functional optimiser
    def grid_size(self, x: torch.Tensor) -> tuple[int, int]:
        return self.mask_size or default_mask_size(x.shape[-2], x.shape[-1])

    def init_state(self, x: torch.Tensor, target: torch.Tensor | int | None = None) -> MaskState:
        """A fresh state for images x (N, C, H, W): m = ``init`` everywhere, zero moments, seeded stream.
        ``target`` is accepted for symmetry with :meth:`step` and only validated."""
        check_images(x)
        if target is not None:
            check_targets(target, x.shape[0], num_classes=self.num_classes)
        h, w = self.grid_size(x)
        mask = torch.full((x.shape[0], 1, h, w), self.init, device=self.device, dtype=x.dtype)
        generator = None
        if self.noise_std > 0 or self.jitter > 0:
            generator = torch.Generator(device=self.device).manual_seed(self.seed)
        return MaskState(mask, torch.zeros_like(mask), torch.zeros_like(mask), 0, generator)

    def step(
        self, state: MaskState, x: torch.Tensor, target: torch.Tensor | int, *, create_graph: bool = False,
        straight_through: bool = False,
    ) -> MaskState:
        """One Adam step on the mask; returns a new state (the input state is not modified).

        With ``create_graph=True`` the new mask and moments are differentiable functions of x (and of the
        incoming state), so a loss on masks after k unrolled steps backpropagates to x. Adam's denominator
        is sqrt(v_hat + eps^2) + eps (finite second derivatives where v = 0; otherwise as torch.optim.Adam).
        ``straight_through``: the clamp to [0, 1] passes gradients unchanged (forward values are the same),
        so cells stuck at 0 or 1 still tell x which way their Adam step points.
        """
        x = x.to(self.device)
        t = check_targets(target, x.shape[0], num_classes=self.num_classes, device=self.device)
        if state.mask.shape[0] != x.shape[0]:
            raise XaisecError(f"state is for {state.mask.shape[0]} images but x has {x.shape[0]}")
        return self._step(state, x, t, create_graph, straight_through)

    def _step(self, state: MaskState, x: torch.Tensor, t: torch.Tensor, create_graph: bool,
              straight_through: bool = False) -> MaskState:
        b1, b2 = self.betas
        with torch.enable_grad():
            mask = state.mask
            if not create_graph:
                x = x.detach()
            if not create_graph or not mask.requires_grad:
                mask = mask.detach().requires_grad_(True)
            loss = self.objective(mask, x, t, state.generator).sum()
            (grad,) = torch.autograd.grad(loss, mask, create_graph=create_graph)
        if not create_graph:
            mask = mask.detach()
        steps = state.steps + 1
        exp_avg = b1 * state.exp_avg + (1 - b1) * grad
        exp_avg_sq = b2 * state.exp_avg_sq + (1 - b2) * grad * grad
        m_hat = exp_avg / (1 - b1**steps)
        v_hat = exp_avg_sq / (1 - b2**steps)
        raw = mask - self.lr * m_hat / ((v_hat + self.eps**2).sqrt() + self.eps)
        new_mask = raw + (raw.clamp(0.0, 1.0) - raw).detach() if straight_through else raw.clamp(0.0, 1.0)
        return replace(state, mask=new_mask, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, steps=steps)

    def optimise(
        self,
        x: torch.Tensor,
        target: torch.Tensor | int,
        state: MaskState | None = None,
        *,
        iterations: int | None = None,
    ) -> MaskState:
        """Run ``iterations`` (default ``self.iterations``) plain Adam steps without a graph to x, from
        ``state`` (default a fresh :meth:`init_state`). Returns detached tensors."""
        x = check_images(x).to(self.device).detach()
        t = check_targets(target, x.shape[0], num_classes=self.num_classes, device=self.device)
        state = self.init_state(x) if state is None else replace(
            state, mask=state.mask.detach(), exp_avg=state.exp_avg.detach(),
            exp_avg_sq=state.exp_avg_sq.detach(),
        )
        for _ in range(self.iterations if iterations is None else iterations):
            state = self._step(state, x, t, create_graph=False)
        return state

    def mask_from_state(self, state: MaskState, size: tuple[int, int] | None = None) -> torch.Tensor:
        """The mask (N, h, w) in [0, 1] (1 = kept), bilinearly upsampled to ``size`` when given."""
        mask = state.mask if size is None else self.upsample(state.mask, size)
        return mask[:, 0]

    def map_from_state(self, state: MaskState, size: tuple[int, int] | None = None) -> torch.Tensor:
        """The saliency map (N, H, W) the interpreter would return for this state: 1 - m, resized to
        ``size`` and normalised as ``self.normalize``; differentiable."""
        maps = 1 - state.mask[:, 0]
        if size is not None:
            maps = resize_maps(maps, size)
        return normalize_maps(maps, self.normalize)

    def attribute(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        """1 - m (N, h, w) after ``self.iterations`` Adam steps."""
        return 1 - self.optimise(x, target).mask[:, 0]

    def __repr__(self) -> str:
        return (f"MeaningfulPerturbation(mask_size={self.mask_size}, iterations={self.iterations}, "
                f"lr={self.lr}, l1={self.l1}, tv={self.tv}, tv_power={self.tv_power}, "
                f"blur_sigma={self.blur_sigma}, temperature={self.temperature}, "
                f"noise_std={self.noise_std}, jitter={self.jitter}, "
                f"seed={self.seed}, normalize={self.normalize!r})")


def _gen_device(generator: torch.Generator | None) -> torch.device | None:
    return None if generator is None else generator.device
