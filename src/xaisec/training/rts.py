"""Training the real-time saliency (RTS) masking network: its objective, evaluation and resumable loop.

A :class:`~xaisec.models.saliency_net.SaliencyNet` is trained against a frozen classifier f with the RTS
objective (per image x, class c, alternative image a)::

    L(m) = l1 * TV(m) + l2 * AV(m) - log f_c(phi(x; m)) + l3 * f_c(phi(x; 1 - m)) ** l4
    phi(x; m) = x * m + (1 - m) * a

where ``a`` is, per sample and at random (seeded), either a Gaussian-blurred copy of x or a random flat
colour with Gaussian noise; TV is the mean squared difference of neighbouring mask pixels and AV the mean
of ``(m + 5e-4) ** area_power``. A fraction of the samples get a fake (random wrong) class, for which only
TV and AV apply, so the mask for a class absent from the image is (near) empty; a binary cross-entropy on
the class gate's mean score (real vs fake class) helps the gate learn that early. The encoder is trained
jointly with a cross-entropy on the true labels, so the network's encoder logits are real class logits
(ADV^2 adds a cross-entropy on them toward its target class).

``train_rts`` (or ``xaisec train-rts``) trains a network for a classifier, seeded and resumable per
epoch, writing ``rts_<model>.safetensors`` and a JSON card; the interpreter
(:class:`xaisec.interpreters.rts.RTS`, ``get("rts", model)``) loads the shipped one.
"""

from __future__ import annotations

import dataclasses
import io
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
from xaisec.models.saliency_net import SaliencyNet
from xaisec.utils.checks import XaisecError
from xaisec.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

_AREA_EPS = 5e-4  # keeps the gradient of m ** 0.3 finite at m = 0


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
# training
# ----------------------------------------------------------------------------------------------------------
@dataclass
class AIDSettings:
    """Adversarial interpretation distillation ([A2] section 5): alternate the RTS loss and -||g(x) - g(A(x))||_1.

    A is a short ADV^2 against the current network: ``steps`` signed PGD steps of ``alpha`` in the L-inf ball
    of ``eps``, minimising CE(f(x'), t) + CE(encoder(x'), t) + ``lam`` * mean (g(x'; t) - g(x; y))^2 toward
    a random other class t (seeded), as ADV^2-RTS does. Every ``every``-th batch (2: strict alternation)
    takes one optimiser step on -``weight`` * L1 (mean over pixels) between g(x; y) and g(A(x); f(A(x))).
    """

    steps: int = 5
    eps: float = 8 / 255
    alpha: float = 2 / 255
    lam: float = 10.0
    every: int = 2
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.every < 1:
            raise XaisecError(f"AID needs steps >= 1 and every >= 1, got {self.steps}, {self.every}")
        if not 0 < self.eps <= 1 or not 0 < self.alpha <= 1 or self.lam < 0 or self.weight < 0:
            raise XaisecError(f"AID: eps and alpha in (0, 1], lam and weight >= 0; got {self}")


def aid_examples(
    net: nn.Module, classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, aid: AIDSettings,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ADV^2 against the current masking network: (x_adv (N, C, H, W) within aid.eps of x, f's labels (N,))."""
    was_training = net.training
    net.eval()
    try:
        k = net.num_classes
        t = (y + torch.randint(1, k, y.shape, generator=generator).to(y.device)) % k
        with torch.no_grad():
            benign = net(x, y)[0]
        x_adv = x.detach().clone()
        for _ in range(aid.steps):
            x_adv.requires_grad_(True)
            mask, enc_logits = net(x_adv, t)
            loss = (F.cross_entropy(classifier(x_adv), t) + F.cross_entropy(enc_logits, t)
                    + aid.lam * (mask - benign).pow(2).mean())
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = torch.min(torch.max(x_adv - aid.alpha * grad.sign(), x - aid.eps), x + aid.eps).clamp_(0, 1)
        with torch.no_grad():
            pred = classifier(x_adv).argmax(1)
        return x_adv.detach(), pred
    finally:
        net.train(was_training)


def aid_distance(net: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
                 t_adv: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel L1 between the benign masks g(x; y) and the adversarial ones g(x_adv; t_adv) (scalar)."""
    masks = net(torch.cat([x, x_adv]), torch.cat([y, t_adv]))[0]
    n = x.shape[0]
    return (masks[:n] - masks[n:]).abs().mean()


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
    init: str | Path | None = None,
    aid: AIDSettings | None = None,
) -> RTSTrainResult:
    """Train a :class:`SaliencyNet` for the frozen ``classifier`` with the RTS objective (or AID).

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
        init: start from this ``rts_*.safetensors`` network (fine-tuning; its width/blocks replace ``width``
            and ``blocks``) instead of a fresh one.
        aid: :class:`AIDSettings` to train with adversarial interpretation distillation ([A2] section 5):
            every ``aid.every``-th batch minimises -||g(x) - g(ADV^2(x))||_1 instead of the RTS objective,
            with ADV^2 run against the current network.

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
    if init is not None:
        net = SaliencyNet.from_file(init).to(device)
        if net.num_classes != k or net.in_channels != c:
            raise XaisecError(f"{init}: an RTS network for {net.num_classes} classes / {net.in_channels} channels, "
                              f"but the classifier has {k} classes and the data {c} channels")
        net.requires_grad_(True)
        width, blocks = net.config["width"], tuple(net.config["blocks"])
    else:
        net = SaliencyNet(c, k, mean=mean, std=std, width=width, blocks=blocks).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(train_set) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch, eta_min=lr / 100)
    use_amp = amp and (device.type == "cuda" or torch.backends.mkldnn.is_available())

    config = {"classifier": name, "data": str(data) if not isinstance(data, ImageDataset) else data.name,
              "train_images": len(train_set), "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "seed": seed, "width": width, "blocks": list(blocks),
              "crop_pad": pad, "amp": use_amp, "objective": dataclasses.asdict(obj)}
    if init is not None or aid is not None:
        config["init"] = str(init) if init is not None else None
        config["defense"] = {"name": "aid", **dataclasses.asdict(aid)} if aid is not None else None
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
                                  "presence_bce", "aid_l1"), 0.0)
            seen, aid_seen = 0, 0
            bar = tqdm(range(steps_per_epoch), desc=f"rts {name} epoch {epoch + 1}/{epochs}",
                       disable=not progress, leave=False)
            for i in bar:
                idx = order[i * batch_size : (i + 1) * batch_size]
                x = train_set.images[idx].to(device).float().div_(255)
                y = train_set.labels[idx].to(device)
                x = random_crop_flip(x, pad=pad, flip=True, generator=g)
                n = len(y)
                if aid is not None and i % aid.every == aid.every - 1:
                    # AID step: push the maps of ADV^2 examples (against the current net) away from benign maps
                    x_adv, t_adv = aid_examples(net, classifier, x, y, aid, g)
                    net.train()
                    aid_l1 = aid_distance(net, x, y, x_adv, t_adv)
                    opt.zero_grad(set_to_none=True)
                    (-aid.weight * aid_l1).backward()
                    opt.step()
                    sched.step()
                    sums["aid_l1"] += float(aid_l1.detach()) * n
                    aid_seen += n
                    continue
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
            aid_l1_sum = sums.pop("aid_l1")
            row = {"epoch": epoch + 1, **{key: v / max(seen, 1) for key, v in sums.items()}}
            if aid is not None:
                row["aid_l1"] = aid_l1_sum / max(aid_seen, 1)
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
        **({"defense": {"name": "aid", "settings": dataclasses.asdict(aid), "description": AIDSettings.__doc__
                        .split("\n")[0]}} if aid is not None else {}),
        "initialised_from": str(init) if init is not None else "random initialisation",
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
    "AIDSettings",
    "RTSObjective",
    "RTSTrainResult",
    "aid_distance",
    "aid_examples",
    "apply_mask",
    "evaluate_rts",
    "gaussian_blur",
    "make_alternatives",
    "mean_area",
    "rts_objective",
    "total_variation",
    "train_rts",
]
