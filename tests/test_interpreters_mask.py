"""MASK (meaningful perturbation): finds the evidence, beats random deletion, seeded, batched, and its
functional inner optimiser (hand-written Adam) unrolls so a loss on masks backpropagates to x."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xaisec.interpreters import get
from xaisec.interpreters.mask import MeaningfulPerturbation, default_mask_size, gaussian_blur
from xaisec.models import wrap
from xaisec.utils.checks import XaisecError


class TopLeftTexture(nn.Module):
    """Two classes on 16x16 images; class 0's logit grows with the high-frequency energy (Laplacian
    squared) in the top-left 8x8 quadrant, so blurring that quadrant, and only that, removes the evidence.
    On uniform noise p(class 0) is about 0.88; with the quadrant blurred about 0.1. Smooth in x."""

    def __init__(self) -> None:
        super().__init__()
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.register_buffer("kernel", lap.view(1, 1, 3, 3).repeat(1, 3, 1, 1) / 3)
        region = torch.zeros(16, 16)
        region[:8, :8] = 1
        self.register_buffer("region", region)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = F.conv2d(x, self.kernel, padding=1)[:, 0].pow(2)
        texture = (energy * self.region).sum((1, 2)) / self.region.sum() / (20 / 12 / 3)
        logit0 = 4 * texture - 2
        return torch.stack([logit0, torch.zeros_like(logit0)], 1)


@pytest.fixture
def texture_model() -> nn.Module:
    return wrap(TopLeftTexture(), mean=(0.0,) * 3, std=(1.0,) * 3, classes=["texture", "other"]).eval()


@pytest.fixture
def noise_images() -> torch.Tensor:
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def target_prob(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).softmax(1).gather(1, t.view(-1, 1))[:, 0]


def permuted(mask: torch.Tensor, seed: int) -> torch.Tensor:
    """The same grid values in a random order per sample: the same deleted area, random placement."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(mask[0].numel(), generator=g) for _ in range(mask.shape[0])])
    return mask.flatten(1).gather(1, perm).view_as(mask)


def test_mask_finds_the_evidence_and_beats_random_deletion(texture_model, noise_images):
    x, t = noise_images, torch.zeros(4, dtype=torch.long)
    g = MeaningfulPerturbation(texture_model, iterations=40)
    assert g.grid_size(x) == (4, 4)
    state = g.optimise(x, t)
    saliency = 1 - state.mask[:, 0]  # (4, 4, 4): cells of 4x4 pixels; top-left quadrant = cells [:2, :2]
    inside = saliency[:, :2, :2].mean((1, 2))
    outside = (saliency.sum((1, 2)) - saliency[:, :2, :2].sum((1, 2))) / 12
    assert (inside > outside + 0.3).all()
    p0 = target_prob(texture_model, x, t)
    p_opt = target_prob(texture_model, g.perturb(x, state.mask), t)
    p_rnd = target_prob(texture_model, g.perturb(x, permuted(state.mask, 0)), t)
    assert (p0 > 0.8).all()
    assert (p_opt < p_rnd).all() and p_opt.mean() < 0.5 * p_rnd.mean()
    # the interpreter's call: the same map, upsampled to the input and min-max normalised
    maps = g(x, t)
    assert maps.shape == (4, 16, 16)
    assert torch.allclose(maps, g.map_from_state(state, (16, 16)), atol=1e-6)
    assert maps[:, :8, :8].mean() > maps[:, 8:, 8:].mean()


def test_mask_beats_random_deletion_on_trained_resnet20(resnet20_trained):
    pytest.importorskip("foolbox")
    from xaisec.data.samples import samples

    data = samples("cifar10", n=4)
    x, y = data.float_images(), data.labels
    g = MeaningfulPerturbation(resnet20_trained, iterations=30)
    assert g.grid_size(x) == (8, 8)
    mask = g.optimise(x, y).mask
    p_opt = target_prob(resnet20_trained, g.perturb(x, mask), y)
    p_rnd = torch.stack([target_prob(resnet20_trained, g.perturb(x, permuted(mask, s)), y) for s in range(3)])
    assert p_opt.mean() < p_rnd.mean(0).mean() - 0.1


class Overconfident(nn.Module):
    """The texture model with logits x 100: p(class 0) ~ 1 on noise images, ~ 0 once half blurred."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TopLeftTexture()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 100 * self.inner(x)


def test_temperature_keeps_maps_of_overconfident_samples(noise_images):
    model = wrap(Overconfident(), mean=(0.0,) * 3, std=(1.0,) * 3).eval()
    x, t = noise_images, torch.zeros(4, dtype=torch.long)
    assert (target_prob(model, x, t) > 1 - 1e-5).all()
    paper = MeaningfulPerturbation(model, iterations=40, temperature=1.0, normalize="none")(x, t)
    ours = MeaningfulPerturbation(model, iterations=40, normalize="none")(x, t)
    # T = 1: the probability saturates, its gradient vanishes and the l1 term keeps the whole image
    assert paper.amax((1, 2)).max() < 0.05
    # T = 4 (default): the map finds the top-left evidence
    assert (ours[:, :8, :8].mean((1, 2)) > ours[:, 8:, 8:].mean((1, 2)) + 0.3).all()


def test_seeded_noise_and_jitter_reproducible(texture_model, noise_images):
    x, t = noise_images, 0
    opts = {"iterations": 5, "noise_std": 0.1, "jitter": 1}
    a = get("mask", texture_model, seed=3, **opts)(x, t)
    b = get("mask", texture_model, seed=3, **opts)(x, t)
    c = get("mask", texture_model, seed=4, **opts)(x, t)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_batch_equals_one_at_a_time(texture_model, noise_images):
    x, t = noise_images, torch.tensor([0, 1, 0, 1])
    g = MeaningfulPerturbation(texture_model, iterations=8, normalize="none")
    batched = g(x, t)
    single = torch.cat([g(x[i:i + 1], t[i:i + 1]) for i in range(4)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_hand_written_adam_matches_torch_adam(texture_model, noise_images):
    x, t = noise_images, torch.zeros(4, dtype=torch.long)
    g = MeaningfulPerturbation(texture_model, lr=0.05)
    ours = g.optimise(x, t, iterations=6).mask
    mask = torch.full_like(ours, 0.5).requires_grad_(True)
    opt = torch.optim.Adam([mask], lr=0.05)
    for _ in range(6):
        opt.zero_grad()
        g.objective(mask, x, t).sum().backward()
        opt.step()
        with torch.no_grad():
            mask.clamp_(0, 1)
    assert torch.allclose(ours, mask.detach(), atol=1e-5)
    assert (ours - 0.5).abs().max() > 0.1  # it moved


def test_unrolled_steps_backpropagate_to_x(texture_model, noise_images):
    x, t = noise_images.clone(), torch.zeros(4, dtype=torch.long)
    g = MeaningfulPerturbation(texture_model)
    state = g.optimise(x, t, iterations=3)  # plain warm-up steps
    x.requires_grad_(True)
    for _ in range(3):
        state = g.step(state, x, t, create_graph=True)
    target_map = torch.zeros(4, 16, 16)
    target_map[:, 8:, 8:] = 1
    loss = ((g.map_from_state(state, (16, 16)) - target_map) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all()
    assert (grad.flatten(1).abs().sum(1) > 0).all()


def test_unrolled_gradient_matches_finite_differences(texture_model, noise_images):
    model = texture_model.double()
    x, t = noise_images.double(), torch.zeros(4, dtype=torch.long)
    g = MeaningfulPerturbation(model, normalize="none")
    start = g.optimise(x, t, iterations=2)
    weights = torch.rand(4, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def unrolled_loss(z: torch.Tensor, create_graph: bool) -> torch.Tensor:
        state = start
        for _ in range(3):
            state = g.step(state, z, t, create_graph=create_graph)
        return (g.mask_from_state(state) * weights).sum()

    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(unrolled_loss(xg, True), xg)
    d = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.01
    h = 1e-5
    fd = (unrolled_loss(x + h * d, False) - unrolled_loss(x - h * d, False)) / (2 * h)
    assert abs(float(fd)) > 1e-6
    assert float((grad * d).sum()) == pytest.approx(float(fd), rel=1e-3)


def test_straight_through_clamp_keeps_gradients_of_saturated_cells(texture_model, noise_images):
    # from m = 1 the l1 term pushes the evidence-free cells further up: the clamp holds them at 1 and
    # blocks their gradient to x; the straight-through clamp gives the same masks and a non-zero gradient
    x, t = noise_images.clone().requires_grad_(True), torch.zeros(4, dtype=torch.long)
    g = MeaningfulPerturbation(texture_model, init=1.0)
    start = g.optimise(x, t, iterations=3)  # Adam's very first step is a sign step: no gradient to x
    clamped = g.step(start, x, t, create_graph=True)
    passed = g.step(start, x, t, create_graph=True, straight_through=True)
    assert torch.equal(clamped.mask, passed.mask)
    held = (clamped.mask == 1).detach()
    assert (held.flatten(1).sum(1) >= 3).all()
    (g_clamped,) = torch.autograd.grad((clamped.mask * held).sum(), x, allow_unused=True)
    (g_passed,) = torch.autograd.grad((passed.mask * held).sum(), x)
    assert g_clamped is None or float(g_clamped.abs().max()) == 0.0
    assert float(g_passed.abs().sum()) > 0  # (cells far from the evidence have no x-dependence at all)


def test_step_does_not_modify_its_input_state(texture_model, noise_images):
    g = MeaningfulPerturbation(texture_model)
    state = g.init_state(noise_images)
    before = state.mask.clone()
    new = g.step(state, noise_images, 0)
    assert torch.equal(state.mask, before) and state.steps == 0
    assert new.steps == 1 and not torch.equal(new.mask, before)
    assert not state.mask.requires_grad


def test_default_mask_sizes_and_blur():
    assert default_mask_size(32, 32) == (8, 8)
    assert default_mask_size(224, 224) == (28, 28)
    assert default_mask_size(16, 16) == (4, 4)
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[0, 0, 7, 7] = 1
    blurred = gaussian_blur(impulse, 1.5)
    assert blurred.sum() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(blurred, blurred.flip(-1)) and torch.allclose(blurred, blurred.transpose(-1, -2))
    assert blurred.max() < 0.2
    flat = torch.full((2, 3, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat)


def test_bad_inputs_and_options(texture_model, noise_images):
    g = MeaningfulPerturbation(texture_model, iterations=1)
    with pytest.raises(XaisecError, match="differentiable"):
        g(noise_images, 0, create_graph=True)
    with pytest.raises(XaisecError, match=r"\[0, 1\]"):
        g(noise_images * 2, 0)
    with pytest.raises(XaisecError, match="target"):
        g(noise_images, torch.tensor([0, 1]))
    with pytest.raises(XaisecError, match="mask_size"):
        MeaningfulPerturbation(texture_model, mask_size=0)
    with pytest.raises(XaisecError, match="iterations"):
        MeaningfulPerturbation(texture_model, iterations=-1)
    with pytest.raises(XaisecError, match="temperature"):
        MeaningfulPerturbation(texture_model, temperature=0)
    with pytest.raises(XaisecError, match="bad options"):
        get("mask", texture_model, no_such_option=1)
    state = g.init_state(noise_images)
    with pytest.raises(XaisecError, match="state is for 4 images"):
        g.step(state, noise_images[:2], 0)
