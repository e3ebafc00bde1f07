"""Perturbation generators: a ResNet generator (Johnson et al.) and a 5-level U-Net, both with a tanh output.

A generator maps a fixed noise image n ~ U(0, 1) of shape (1, G*C, H, W) to a raw perturbation of the same
shape in (-1, 1) (before the budget scaling of :mod:`xaisec.universal.budget`). ``groups=G`` builds G
independent generators in one module (every convolution is grouped, every normalisation per channel), so the
per-image generators of JAP run as one batched computation; ``groups=1`` is the universal generator.

Normalisation: ``BatchNorm2d(track_running_stats=False)``. The generator always sees one noise image, so the
statistics are over the spatial positions of each channel (as GAP's batch-1 BatchNorm in training mode), and
train and eval modes give the same output: the saved perturbation is exactly the trained one.
Weights are drawn from N(0, 0.02) (GAP's init), seeded.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from xaisec.utils.checks import XaisecError

GENERATORS = ("resnet", "unet")


def _norm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, affine=True, track_running_stats=False)


def group_cat(tensors: list[torch.Tensor], groups: int) -> torch.Tensor:
    """Concatenate channel-stacked (1, G*c_i, H, W) tensors group by group -> (1, G*sum(c_i), H, W)."""
    parts = [t.reshape(t.shape[0], groups, -1, *t.shape[2:]) for t in tensors]
    out = torch.cat(parts, 2)
    return out.reshape(out.shape[0], -1, *out.shape[3:])


class _ResBlock(nn.Module):
    def __init__(self, ch: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(groups * ch, groups * ch, 3, groups=groups, bias=False),
            _norm(groups * ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(groups * ch, groups * ch, 3, groups=groups, bias=False),
            _norm(groups * ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, two stride-2 downsamplings (2ngf, 4ngf), ``blocks`` residual blocks, two transposed-conv
    upsamplings, c7s1-C, tanh (GAP's ``ResnetGenerator``). Input and output (1, G*C, H, W), H and W divisible
    by 4."""

    def __init__(self, channels: int = 3, *, ngf: int = 32, blocks: int = 6, groups: int = 1) -> None:
        super().__init__()
        g, c = groups, channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(g * c, g * ngf, 7, groups=g, bias=False),
                                   _norm(g * ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(g * ngf * mult, g * ngf * mult * 2, 3, stride=2, padding=1, groups=g, bias=False),
                       _norm(g * ngf * mult * 2), nn.ReLU(True)]
        layers += [_ResBlock(ngf * 4, g) for _ in range(blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(g * ngf * mult, g * ngf * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1, groups=g, bias=False),
                       _norm(g * ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(g * ngf, g * c, 7, groups=g), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.channels, self.groups, self.multiple = channels, groups, 4

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(noise)


class UNetGenerator(nn.Module):
    """``levels`` stride-2 4x4 convolutions (LeakyReLU 0.2, BatchNorm except on the outermost and the
    innermost), as many transposed convolutions (ReLU, BatchNorm) on the concatenated skips, tanh. Input and
    output (1, G*C, H, W), H and W divisible by 2**levels (32 for the default 5 levels)."""

    def __init__(self, channels: int = 3, *, ngf: int = 32, levels: int = 5, groups: int = 1) -> None:
        super().__init__()
        g = groups
        widths = [ngf * min(2**i, 8) for i in range(levels)]  # encoder output widths
        self.down = nn.ModuleList()
        cin = channels
        for i, w in enumerate(widths):
            mods: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, True)]
            mods.append(nn.Conv2d(g * cin, g * w, 4, stride=2, padding=1, groups=g, bias=False))
            if 0 < i < levels - 1:
                mods.append(_norm(g * w))
            self.down.append(nn.Sequential(*mods))
            cin = w
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            cin = widths[i] if i == levels - 1 else 2 * widths[i]
            cout = channels if i == 0 else widths[i - 1]
            mods = [nn.ReLU(True), nn.ConvTranspose2d(g * cin, g * cout, 4, stride=2, padding=1, groups=g,
                                                      bias=i == 0)]
            mods.append(nn.Tanh() if i == 0 else _norm(g * cout))
            self.up.append(nn.Sequential(*mods))
        self.channels, self.groups, self.multiple = channels, groups, 2**levels

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        skips = []
        h = noise
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.up[0](skips[-1])
        for layer, skip in zip(self.up[1:], reversed(skips[:-1]), strict=True):
            h = layer(group_cat([h, skip], self.groups))
        return h


def init_weights(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """GAP's init, seeded: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + torch.randn(m.weight.shape, generator=generator) * 0.02)
                m.bias.zero_()
    return module


def build_generator(name: str, channels: int, size: tuple[int, int], *, ngf: int = 32, blocks: int = 6,
                    levels: int = 5, groups: int = 1, seed: int = 0) -> nn.Module:
    """A seeded generator for (C, H, W) = (channels, *size) perturbations; ``groups`` independent copies.

    The U-Net uses min(levels, log2(min(H, W))) levels, so small images work (16 px: 4 levels).
    """
    if name not in GENERATORS:
        raise XaisecError(f"unknown generator {name!r}; choose from {', '.join(GENERATORS)}")
    for what, v in (("ngf", ngf), ("groups", groups), ("channels", channels)):
        if not isinstance(v, int) or v < 1:
            raise XaisecError(f"generator {what} must be a positive int, got {v!r}")
    h, w = size
    if name == "resnet":
        net: nn.Module = ResnetGenerator(channels, ngf=ngf, blocks=blocks, groups=groups)
    else:
        levels = max(1, min(levels, int(math.log2(min(h, w)))))
        net = UNetGenerator(channels, ngf=ngf, levels=levels, groups=groups)
    m = net.multiple
    if h % m or w % m:
        raise XaisecError(f"the {name} generator needs image sides divisible by {m}, got {h}x{w}: pick the other "
                          "generator or resize the images")
    return init_weights(net, torch.Generator().manual_seed(seed))


__all__ = ["GENERATORS", "ResnetGenerator", "UNetGenerator", "build_generator", "group_cat", "init_weights"]
