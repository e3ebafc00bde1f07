"""Real-time saliency (RTS, Dabkowski & Gal 2017): a trained masking network predicts the map in one pass.

A :class:`SaliencyNet` has its own small ResNet encoder (multi-scale features and class logits of its own)
and a U-Net decoder conditioned on the requested class; it maps [0, 1] images and a class index to a mask
m in [0, 1] at input resolution (1 = salient). It is trained against a frozen classifier f with the RTS
objective (per image x, class c, alternative image a)::

    L(m) = l1 * TV(m) + l2 * AV(m) - log f_c(phi(x; m)) + l3 * f_c(phi(x; 1 - m)) ** l4
    phi(x; m) = x * m + (1 - m) * a

where ``a`` is, per sample and at random (seeded), either a Gaussian-blurred copy of x or a random flat
colour with Gaussian noise; TV is the mean squared difference of neighbouring mask pixels and AV the mean
of ``(m + 5e-4) ** area_power``. A fraction of the samples get a fake (random wrong) class, for which only
TV and AV apply, so the mask for a class absent from the image is (near) empty; a binary cross-entropy on
the class gate's mean score (real vs fake class) helps the gate learn that early. The encoder is trained
jointly with a cross-entropy on the true labels, so :meth:`RTS.encoder_logits` are real class logits
(ADV^2 adds a cross-entropy on them toward its target class).

``train_rts`` (or ``xaisec train-rts``) trains a network for a classifier, seeded and resumable per
epoch, writing ``rts_<model>.safetensors`` and a JSON card; ``get("rts", model)`` loads the shipped one.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from xaisec.data.dataset import ImageDataset
from xaisec.interpreters.base import Interpreter
from xaisec.models.weights import WEIGHTS_DIR, load_into, save_safetensors
from xaisec.utils.checks import XaisecError, check_images
from xaisec.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

_META_KEY = "xaisec_rts"
_AREA_EPS = 5e-4  # keeps the gradient of m ** 0.3 finite at m = 0


# ----------------------------------------------------------------------------------------------------------
# the masking network
# ----------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------
# the objective
# ----------------------------------------------------------------------------------------------------------
@dataclass
class RTSObjective:
    """Weights of the RTS objective and of the deletion operator phi, adapted to 32x32 images.

    The authors' code (pytorch-saliency) weights a CW-margin version of the loss; we keep the paper's
    -log / power form and chose the weights so that, with a frozen CIFAR classifier, an empty mask
    (cost ~ l2 * 0.1 + 2..5 + l3) and a full mask (~ l2 + l3 * f_c(a) ** l4) both lose to a tight mask
    over the object. ``area_power`` 0.3 (mask values pushed toward 0 or 1), fake-label fraction 0.3,
    blur-vs-colour probability 0.5 follow the authors' code; TV is a per-pixel mean here (theirs is a
    sum), hence a larger ``tv``.
    """

    tv: float = 2.0  # lambda1, total variation (mean squared neighbour difference)
    area: float = 5.0  # lambda2, mean of (m + 5e-4) ** area_power
    area_power: float = 0.3
    destroy: float = 5.0  # lambda3, weight of f_c(phi(x; 1 - m)) ** destroy_power
    destroy_power: float = 0.3  # lambda4
    encoder: float = 1.0  # cross-entropy of the encoder's logits on the true labels (joint training)
    presence: float = 1.0  # BCE of the class gate's mean score: real vs fake class (as the authors' code)
    fake_prob: float = 0.3  # fraction of samples given a random wrong class (mask should be empty)
    blur_prob: float = 0.5  # alternative image: blurred copy with this probability, else colour + noise
    blur_sigma: float = 0.1  # Gaussian blur sigma as a fraction of the image side (3.2 px at 32x32)
    color_range: float = 0.3  # flat colour 0.5 +- color_range / 2 per channel ...
    noise_std: float = 0.03  # ... plus Gaussian noise of this std, clamped to [0, 1]

    def __post_init__(self) -> None:
        for name in ("tv", "area", "area_power", "destroy", "destroy_power", "encoder", "presence", "blur_sigma",
                     "color_range", "noise_std"):
            if getattr(self, name) < 0:
                raise XaisecError(f"RTS objective: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("fake_prob", "blur_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise XaisecError(f"RTS objective: {name} must be in [0, 1], got {getattr(self, name)}")


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared difference between neighbouring pixels, both directions: (N, 1, H, W) -> (N,)."""
    dy = (mask[:, :, 1:, :] - mask[:, :, :-1, :]).pow(2).flatten(1).mean(1)
    dx = (mask[:, :, :, 1:] - mask[:, :, :, :-1]).pow(2).flatten(1).mean(1)
    return dx + dy


def mean_area(mask: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Per-sample mean of ``mask`` (power 1) or of ``(mask + 5e-4) ** power``: (N, 1, H, W) -> (N,)."""
    m = mask.flatten(1)
    return (m if power == 1 else (m + _AREA_EPS).pow(power)).mean(1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with replicate padding (differentiable); sigma in pixels."""
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    k = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(k**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def make_alternatives(x: torch.Tensor, obj: RTSObjective, generator: torch.Generator | None = None) -> torch.Tensor:
    """The deletion target a (N, C, H, W) in [0, 1]: per sample a blurred copy of x (probability
    ``obj.blur_prob``) or a random flat colour plus Gaussian noise. Randomness from ``generator`` (CPU)."""
    n, c, h, w = x.shape
    blurred = gaussian_blur(x, obj.blur_sigma * min(h, w))
    colour = 0.5 + (torch.rand(n, c, 1, 1, generator=generator) - 0.5) * obj.color_range
    noise = torch.randn(n, c, h, w, generator=generator) * obj.noise_std
    flat = (colour + noise).clamp_(0, 1).to(device=x.device, dtype=x.dtype)
    use_blur = (torch.rand(n, generator=generator) < obj.blur_prob).to(x.device)[:, None, None, None]
    return torch.where(use_blur, blurred, flat)


def apply_mask(x: torch.Tensor, mask: torch.Tensor, alternative: torch.Tensor) -> torch.Tensor:
    """phi(x; m) = x * m + (1 - m) * alternative, for mask (N, 1, H, W) in [0, 1]."""
    return x * mask + (1 - mask) * alternative


def rts_objective(
    classifier: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    alternative: torch.Tensor,
    obj: RTSObjective | None = None,
    real: torch.Tensor | None = None,
    amp: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The RTS objective for masks (N, 1, H, W) of images x (N, C, H, W) in [0, 1] and classes target (N,).

    ``real`` (N,) bool marks samples whose class is genuine (default all); fake-label samples get only the
    TV and area terms. Returns (scalar mean loss, per-sample (N,) terms ``tv``, ``area``, ``preserve``
    (-log f_c(phi(x; m))), ``destroy`` (f_c(phi(x; 1 - m)) ** l4), unweighted). Differentiable in mask.
    """
    obj = obj or RTSObjective()
    mask = mask.float()
    n = x.shape[0]
    both = torch.cat([apply_mask(x, mask, alternative), apply_mask(x, 1 - mask, alternative)])
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = classifier(both)
    logp = F.log_softmax(logits.float(), 1)
    logp_c = logp.gather(1, torch.cat([target, target])[:, None]).squeeze(1)
    preserve = -logp_c[:n]
    destroy = torch.exp(obj.destroy_power * logp_c[n:])  # f_c ** l4 with a finite gradient at f_c = 0
    tv = total_variation(mask)
    area = mean_area(mask, obj.area_power)
    per_sample = obj.tv * tv + obj.area * area
    cls_terms = preserve + obj.destroy * destroy
    per_sample = per_sample + (cls_terms if real is None else torch.where(real, cls_terms, 0.0))
    return per_sample.mean(), {"tv": tv, "area": area, "preserve": preserve, "destroy": destroy}


# ----------------------------------------------------------------------------------------------------------
# the interpreter
# ----------------------------------------------------------------------------------------------------------
def rts_weights_path(model_name: str) -> Path:
    """Where the package ships the RTS network trained for the zoo model ``model_name``."""
    return WEIGHTS_DIR / f"rts_{model_name}.safetensors"


class RTS(Interpreter):
    """Real-time saliency: the map is the class-conditional mask of a trained :class:`SaliencyNet`.

    Args:
        model: the classifier the network was trained for (an xaisec ``Classifier``).
        weights: path to an ``rts_*.safetensors`` file; default: the shipped
            ``models/weights/rts_<model.name>.safetensors``.
        saliency_net: an already built :class:`SaliencyNet` (takes precedence over ``weights``).
        normalize: default ``"none"``: the mask is already in [0, 1] and an empty mask (class absent)
            stays empty; ``"minmax"`` rescales each map.

    Maps: (N, H, W) in [0, 1], 1 = salient (kept). ``create_graph=True`` keeps the graph to x.
    :meth:`encoder_logits` gives the network's own class logits (N, K), differentiable in x.
    The network is put in eval mode; its weights are frozen when loaded from a file.
    """

    name = "rts"
    differentiable = True

    def __init__(
        self,
        model: nn.Module,
        *,
        weights: str | Path | None = None,
        saliency_net: SaliencyNet | None = None,
        normalize: str = "none",
    ) -> None:
        super().__init__(model, normalize=normalize)
        if saliency_net is not None:
            if not isinstance(saliency_net, SaliencyNet):
                raise XaisecError(f"saliency_net must be a SaliencyNet, got {type(saliency_net).__name__}")
            net = saliency_net
        else:
            if weights is None:
                name = getattr(model, "name", None)
                path = rts_weights_path(name) if name else None
                if path is None or not path.is_file():
                    raise XaisecError(
                        f"no RTS weights shipped for model {name or type(model).__name__!r}: train them with "
                        f"`xaisec train-rts --model {name or 'NAME'}` (add --install to ship them), "
                        "or pass weights=PATH or saliency_net=SaliencyNet(...)"
                    )
                weights = path
            net = SaliencyNet.from_file(weights)
            net.requires_grad_(False)
        k = self.num_classes
        if k is not None and net.num_classes != k:
            raise XaisecError(f"the RTS network has {net.num_classes} classes but the model has {k}: "
                              "train one for this model with `xaisec train-rts`")
        self.saliency_net = net.to(self.device).eval()

    def _check_channels(self, x: torch.Tensor) -> None:
        if x.shape[1] != self.saliency_net.in_channels:
            raise XaisecError(f"x has {x.shape[1]} channels but the RTS network takes "
                              f"{self.saliency_net.in_channels}")

    def prepare(self, x: torch.Tensor, target: torch.Tensor | int | None) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            self._check_channels(x)
        return super().prepare(x, target)

    def attribute(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        self._check_channels(x)
        self.saliency_net.eval()
        with torch.set_grad_enabled(create_graph):
            mask, _ = self.saliency_net(x, target)
        return mask[:, 0]

    def mask_and_logits(
        self, x: torch.Tensor, target: torch.Tensor | int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask (N, H, W) in [0, 1] (not normalised) and encoder logits (N, K) in one pass, with graph."""
        x, t = self.prepare(x, target)
        self.saliency_net.eval()
        mask, logits = self.saliency_net(x, t)
        return mask[:, 0], logits

    def encoder_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The RTS encoder's own class logits (N, K) for [0, 1] images x, differentiable in x."""
        check_images(x, channels=self.saliency_net.in_channels)
        self.saliency_net.eval()
        return self.saliency_net.encode(x.to(self.device))[1]

    def __repr__(self) -> str:
        return f"RTS(normalize={self.normalize!r}, net={self.saliency_net.config})"


# ----------------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------------
@dataclass
class RTSTrainResult:
    weights: Path
    card: Path
    metrics: dict[str, float]
    epochs: int


def _checkpoint_bytes(obj: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@torch.no_grad()
def evaluate_rts(
    net: SaliencyNet,
    classifier: nn.Module,
    data: ImageDataset,
    obj: RTSObjective | None = None,
    *,
    batch_size: int = 500,
    seed: int = 0,
    amp: bool = False,
    progress: bool = False,
) -> dict[str, float]:
    """Mask quality on held-out images (true labels; alternatives drawn with ``seed``).

    Returns mean mask ``area`` (plain mean of m), ``area_fake_class`` (mask area for a random wrong class),
    classifier accuracy on ``clean`` x, on ``preserved`` phi(x; m), on ``destroyed`` phi(x; 1 - m), on the
    ``alternative`` alone, the mean ``objective`` and the encoder's own accuracy.
    """
    obj = obj or RTSObjective()
    modes = (net.training, classifier.training)
    net.eval()
    classifier.eval()
    device = next(net.parameters()).device
    g = torch.Generator().manual_seed(seed)
    k = net.num_classes
    sums = dict.fromkeys(("area", "area_fake_class", "clean", "preserved", "destroyed", "alternative",
                          "objective", "encoder_accuracy"), 0.0)
    steps = (len(data) + batch_size - 1) // batch_size
    for x, y in tqdm(data.batches(batch_size, device), total=steps, desc="evaluating RTS", disable=not progress,
                     leave=False):
        alt = make_alternatives(x, obj, g)
        fake = (y + torch.randint(1, k, y.shape, generator=g).to(device)) % k
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            feats, enc_logits = net.encode(x)
            mask = net.decode(feats, y).float()
            mask_fake = net.decode(feats, fake).float()
            preds = classifier(torch.cat([x, apply_mask(x, mask, alt), apply_mask(x, 1 - mask, alt), alt]))
        loss, _ = rts_objective(classifier, x, y, mask, alt, obj, amp=amp)
        correct = (preds.argmax(1) == y.repeat(4)).float().view(4, -1).sum(1)
        sums["area"] += float(mask.sum() / mask[0].numel())
        sums["area_fake_class"] += float(mask_fake.sum() / mask[0].numel())
        for name, c in zip(("clean", "preserved", "destroyed", "alternative"), correct.tolist(), strict=True):
            sums[name] += c
        sums["objective"] += float(loss) * len(y)
        sums["encoder_accuracy"] += float((enc_logits.argmax(1) == y).sum())
    net.train(modes[0])
    classifier.train(modes[1])
    n = max(len(data), 1)
    return {
        "area": sums["area"] / n, "area_fake_class": sums["area_fake_class"] / n,
        "accuracy_clean": sums["clean"] / n, "accuracy_preserved": sums["preserved"] / n,
        "accuracy_destroyed": sums["destroyed"] / n, "accuracy_alternative": sums["alternative"] / n,
        "objective": sums["objective"] / n, "encoder_accuracy": sums["encoder_accuracy"] / n,
    }


def train_rts(
    classifier: nn.Module,
    data: str | Path | ImageDataset,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    out: str | Path = "runs/train-rts",
    progress: bool = True,
    objective: RTSObjective | None = None,
    test_data: str | Path | ImageDataset | None = None,
    limit: int | None = None,
    width: int = 16,
    blocks: Sequence[int] = (1, 1, 1),
    crop_pad: int | None = None,
    weight_decay: float = 1e-4,
    amp: bool = True,
    name: str | None = None,
    classifier_weights: str | None = None,
) -> RTSTrainResult:
    """Train a :class:`SaliencyNet` for the frozen ``classifier`` with the RTS objective.

    Args:
        classifier: [0, 1]-input classifier (not modified; its parameters are frozen during training).
        data: training images: a data-set name / path for ``xaisec.data.load(data, "train")`` or an
            :class:`ImageDataset`.
        test_data: held-out images for the card's mask-quality numbers; default ``load(data, "test")`` when
            ``data`` is a name or path, none (no metrics) for an ImageDataset.
        epochs, batch_size, lr, weight_decay: Adam with a cosine decay to lr / 100 over all steps.
        seed: seeds init, shuffling, augmentation, fake labels and alternatives (per epoch, so resuming
            gives the same weights as an uninterrupted run).
        out: output folder; ``checkpoint.pt`` is written atomically after each epoch and a rerun with the
            same settings resumes after the last finished epoch.
        objective: the RTS objective weights (:class:`RTSObjective`).
        limit: train on a seeded random subset of ``limit`` images only.
        width, blocks: :class:`SaliencyNet` size.
        crop_pad: random translation in pixels (default side / 8); flips are always on.
        amp: bfloat16 autocast on CPU with mkldnn, or CUDA.
        name: model name for the file names (default ``classifier.name`` or ``"custom"``).
        classifier_weights: where the classifier's weights came from, recorded in the card.

    Writes ``<out>/rts_<name>.safetensors`` and ``<out>/rts_<name>.json`` (data, epochs, losses, wall time,
    versions, held-out mask quality). Returns :class:`RTSTrainResult`.
    """
    from xaisec import __version__
    from xaisec.data import load as load_data

    obj = objective or RTSObjective()
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise XaisecError(f"epochs and batch size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    if not isinstance(classifier, nn.Module):
        raise XaisecError(f"classifier must be an nn.Module, got {type(classifier).__name__}")
    name = name or getattr(classifier, "name", None) or "custom"
    train_set = data if isinstance(data, ImageDataset) else load_data(data, "train")
    if limit is not None:  # a seeded random subset: image folders are stored sorted by class
        train_set = train_set.sample(limit, seed=seed)
    if test_data is None and not isinstance(data, ImageDataset):
        test_data = load_data(data, "test")
    test_set = load_data(test_data, "test") if isinstance(test_data, (str, Path)) else test_data
    if len(train_set) == 0:
        raise XaisecError("no training images")
    k = getattr(classifier, "num_classes", None) or train_set.num_classes
    if k != train_set.num_classes:
        raise XaisecError(f"the classifier has {k} classes but the data set has {train_set.num_classes}")
    c, h, w = train_set.images.shape[1:]
    device = next(iter(classifier.parameters())).device
    norm = getattr(classifier, "normalize", None)
    mean = norm.mean.flatten().tolist() if norm is not None else None
    std = norm.std.flatten().tolist() if norm is not None else None
    pad = crop_pad if crop_pad is not None else max(1, min(h, w) // 8)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = SaliencyNet(c, k, mean=mean, std=std, width=width, blocks=blocks).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(train_set) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch, eta_min=lr / 100)
    use_amp = amp and (device.type == "cuda" or torch.backends.mkldnn.is_available())

    config = {"classifier": name, "data": str(data) if not isinstance(data, ImageDataset) else data.name,
              "train_images": len(train_set), "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "seed": seed, "width": width, "blocks": list(blocks),
              "crop_pad": pad, "amp": use_amp, "objective": dataclasses.asdict(obj)}
    ckpt_path = out / "checkpoint.pt"
    start_epoch, elapsed, history = 0, 0.0, []
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ck["config"] != config:
            raise XaisecError(f"{ckpt_path} was written with different settings ({ck['config']}); "
                              "use another --out or delete it")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, elapsed, history = ck["epoch"], ck["elapsed"], list(ck["history"])
        log.info("resuming RTS training for %s from epoch %d", name, start_epoch)

    from xaisec.training.augment import random_crop_flip

    flags = [p.requires_grad for p in classifier.parameters()]
    was_training = classifier.training
    classifier.eval().requires_grad_(False)
    try:
        with torch.no_grad():
            probe = classifier(train_set.images[:2].to(device).float() / 255)
        if probe.dim() != 2 or probe.shape[1] != k:
            raise XaisecError(f"classifier output {tuple(probe.shape)} does not match {k} classes")
        for epoch in range(start_epoch, epochs):
            t0 = time.time()
            g = torch.Generator().manual_seed(seed * 100_003 + epoch)
            torch.manual_seed(seed * 100_003 + epoch)
            order = torch.randperm(len(train_set), generator=g)
            net.train()
            sums = dict.fromkeys(("loss", "tv", "area", "preserve", "destroy", "encoder_ce", "encoder_acc",
                                  "presence_bce"), 0.0)
            seen = 0
            bar = tqdm(range(steps_per_epoch), desc=f"rts {name} epoch {epoch + 1}/{epochs}",
                       disable=not progress, leave=False)
            for i in bar:
                idx = order[i * batch_size : (i + 1) * batch_size]
                x = train_set.images[idx].to(device).float().div_(255)
                y = train_set.labels[idx].to(device)
                x = random_crop_flip(x, pad=pad, flip=True, generator=g)
                n = len(y)
                real = (torch.rand(n, generator=g) >= obj.fake_prob).to(device)
                shift = torch.randint(1, k, (n,), generator=g).to(device)
                target = torch.where(real, y, (y + shift) % k)
                alt = make_alternatives(x, obj, g)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    feats, enc_logits = net.encode(x)
                    mask, presence = net.decode(feats, target, with_presence=True)
                loss, parts = rts_objective(classifier, x, target, mask, alt, obj, real=real, amp=use_amp)
                enc_ce = F.cross_entropy(enc_logits.float(), y)
                presence_bce = F.binary_cross_entropy_with_logits(presence.float(), real.float())
                total = loss + obj.encoder * enc_ce + obj.presence * presence_bce
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                sched.step()
                seen += n
                sums["loss"] += float(loss.detach()) * n
                sums["encoder_ce"] += float(enc_ce.detach()) * n
                sums["presence_bce"] += float(presence_bce.detach()) * n
                sums["encoder_acc"] += float((enc_logits.argmax(1) == y).sum())
                for key in ("tv", "area"):
                    sums[key] += float(parts[key].detach().sum())
                r = real.float()
                for key in ("preserve", "destroy"):
                    sums[key] += float((parts[key].detach() * r).sum()) * n / max(float(r.sum()), 1.0)
                if i % 20 == 0:
                    bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}", enc_acc=f"{sums['encoder_acc'] / seen:.3f}")
            elapsed += time.time() - t0
            row = {"epoch": epoch + 1, **{key: v / seen for key, v in sums.items()}}
            history.append(row)
            log.info("rts %s epoch %d/%d: objective %.4f (tv %.4f, area %.3f, -log f_c %.3f, f_c^l4 %.3f), "
                     "encoder acc %.3f", name, epoch + 1, epochs, row["loss"], row["tv"], row["area"],
                     row["preserve"], row["destroy"], row["encoder_acc"])
            atomic_write_bytes(ckpt_path, _checkpoint_bytes({
                "model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": epoch + 1, "elapsed": elapsed, "history": history, "config": config,
            }))
        net.eval()
        metrics: dict[str, float] = {}
        if test_set is not None and len(test_set):
            metrics = evaluate_rts(net, classifier, test_set, obj, seed=seed + 1, amp=use_amp, progress=progress)
    finally:
        classifier.train(was_training)
        for p, f in zip(classifier.parameters(), flags, strict=True):
            p.requires_grad_(f)

    weights_path = net.save(out / f"rts_{name}.safetensors", classifier=name)
    card = {
        "interpreter": "rts",
        "description": "real-time saliency masking network (Dabkowski & Gal 2017) for this classifier",
        "classifier": name,
        "classifier_weights": classifier_weights or "shipped",
        "data": {"source": config["data"], "train_images": len(train_set),
                 "test_images": len(test_set) if test_set is not None else 0, "classes": train_set.classes},
        "epochs": epochs,
        "test": metrics,
        "test_notes": "area = mean mask value for the true class (1 = whole image kept); area_fake_class for a "
                      "random wrong class; accuracy_* = classifier top-1 on x, phi(x; m), phi(x; 1 - m), the "
                      "alternative alone; encoder_accuracy = the RTS encoder's own top-1",
        "architecture": net.config,
        "objective": dataclasses.asdict(obj),
        "optimizer": f"Adam lr {lr} weight decay {weight_decay}, cosine to lr/100, batch {batch_size}",
        "config": config,
        "history": history,
        "wall_time_seconds": round(elapsed, 1),
        "versions": {"xaisec": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "device": str(device),
    }
    card_path = atomic_write_json(out / f"rts_{name}.json", card)
    log.info("rts %s: %s; weights %s", name, metrics, weights_path)
    return RTSTrainResult(weights_path, card_path, metrics, epochs)


__all__ = [
    "RTS", "RTSObjective", "RTSTrainResult", "SaliencyNet", "apply_mask", "evaluate_rts", "gaussian_blur",
    "make_alternatives", "mean_area", "rts_objective", "rts_weights_path", "total_variation", "train_rts",
]
