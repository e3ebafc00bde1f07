"""Seeded, resumable CPU training of a registered model, writing safetensors weights and a JSON card.

Each epoch ends with an atomic checkpoint (model, optimiser, schedule, epoch) in ``out``; running the
same command again resumes after the last finished epoch and gives the same weights as an
uninterrupted run (each epoch's shuffling, augmentation and dropout are seeded by (seed, epoch)).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import xaisec
from xaisec.data import load as load_data
from xaisec.data.labels import align_labels
from xaisec.models import build, load_into, save_safetensors, shipped_weights, spec
from xaisec.training.augment import random_crop_flip
from xaisec.training.defenses import BatchContext, BatchLoss
from xaisec.training.evaluate import accuracy
from xaisec.utils.checks import XaisecError, check_finite, resolve_device
from xaisec.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """What ``xaisec train`` trains, and how. Defaults suit the CIFAR-10 models on a 2-core CPU."""

    model: str = "cifar10_resnet20"
    data: str | None = None  # registered name or path; None: the model's data set
    out: str = "runs/train"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    crop_pad: int = 4
    flip: bool = True
    class_weights: bool = False  # weight the loss by inverse class frequency (imbalanced sets)
    amp: bool = True  # bfloat16 autocast (CPU with AVX512-BF16/AMX or CUDA); weights stay float32
    seed: int = 0
    limit: int | None = None  # train on a seeded random sample of N images only (tests, smoke runs)
    init_weights: str | None = None  # start from these weights (fine-tuning; "shipped": the zoo's) instead of random
    device: str | None = None
    name: str | None = None  # name of the written weights and card (default: model), e.g. "cifar10_resnet20_at"
    arch: str | None = None  # instead of `model`: an architecture (resnet20, ..., torchvision:NAME) sized to `data`
    image_size: int | None = None  # resize (and centre-crop or pad) every image to S x S
    resize_mode: str = "crop"  # "crop" or "pad"
    split: float = 0.8  # with `arch`: training fraction when the data has no test split (stratified, seed 0)


@dataclass
class TrainResult:
    weights: Path
    card: Path
    accuracy: float
    epochs: int


def _checkpoint_bytes(obj: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def train(cfg: TrainConfig, progress: bool = True, batch_loss: BatchLoss | None = None) -> TrainResult:
    """Train ``cfg.model`` and write ``<out>/<name>.safetensors`` and ``<out>/<name>.json``.

    ``batch_loss``: a per-batch objective (:class:`~xaisec.training.defenses.BatchLoss`, e.g. adversarial or
    interpretation-robust training) replacing the plain cross-entropy; its name and settings go into the
    resume check and the card (``"defense"``).
    """
    s = spec(cfg.model) if cfg.arch is None else None
    if s is not None and s.imagenet_arch is not None:
        raise XaisecError(f"{cfg.model}: ImageNet models are not trained by xaisec; use pretrained weights")
    if cfg.epochs < 1 or cfg.batch_size < 1 or not cfg.lr > 0:
        raise XaisecError("epochs and batch size must be >= 1 and lr > 0")
    check_finite(cfg.lr, "lr", low=0.0, low_open=True)
    check_finite(cfg.weight_decay, "weight_decay", low=0.0)
    check_finite(cfg.label_smoothing, "label_smoothing", low=0.0, high=1.0, high_open=True)
    check_finite(cfg.momentum, "momentum", low=0.0, high=1.0)
    init_path = cfg.init_weights
    if init_path == "shipped":
        init_path = shipped_weights(cfg.model)
        if init_path is None:
            raise XaisecError(f"fine-tuning {cfg.model} was requested but it has no shipped weights to start from: "
                              f"train it first (`xaisec train --model {cfg.model}`) or pass --init-weights PATH")
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if s is None:
        data_src, train_set, test_set = _arch_data(cfg, progress)
    else:
        data_src = cfg.data or s.dataset
        kw = {"image_size": cfg.image_size, "resize_mode": cfg.resize_mode, "progress": progress,
              "mode": "L" if s.input_size[0] == 1 else "RGB"}
        train_set = load_data(data_src, "train", **kw)
        test_set = load_data(data_src, "test", **kw)
    if cfg.limit is not None:
        train_set = train_set.sample(cfg.limit, seed=cfg.seed)
    if s is not None and train_set.images.shape[1:] != torch.Size(s.input_size):
        raise XaisecError(
            f"{data_src}: images {tuple(train_set.images.shape[1:])} but {cfg.model} takes {s.input_size}; "
            f"pass --image-size {s.input_size[-1]}"
        )
    if s is not None:  # folder class names mapped onto the model's (a subset keeps the model's label indices)
        train_set, test_set = align_labels(train_set, s.classes), align_labels(test_set, s.classes)

    torch.manual_seed(cfg.seed)
    model, arch_info = (build(cfg.model), None) if s is not None else _build_for_data(cfg, train_set)
    if init_path:
        load_into(model.net, init_path)
    model = model.to(device)
    model = model.to(memory_format=torch.channels_last)
    params_decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    params_other = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD(
        [{"params": params_decay, "weight_decay": cfg.weight_decay}, {"params": params_other, "weight_decay": 0.0}],
        lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
    )
    steps_per_epoch = (len(train_set) + cfg.batch_size - 1) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15, div_factor=10,
        final_div_factor=100,
    )
    weight = None
    if cfg.class_weights:
        counts = torch.bincount(train_set.labels, minlength=train_set.num_classes).float()
        weight = (counts.sum() / (counts.clamp(min=1) * len(counts))).to(device)

    ckpt_path = out / "checkpoint.pt"
    config_dict = dataclasses.asdict(cfg)
    if batch_loss is not None:
        config_dict["defense"] = {"name": batch_loss.name, **batch_loss.settings()}
        batch_loss.setup(model, total_steps=cfg.epochs * steps_per_epoch)
    start_epoch, elapsed, history = 0, 0.0, []
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        saved = {k: v for k, v in ck["config"].items() if k not in ("out", "device")}
        now = {k: v for k, v in config_dict.items() if k not in ("out", "device")}
        if saved != now:
            raise XaisecError(
                f"{ckpt_path} was written with different settings ({saved}); use another --out or delete it"
            )
        model.net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, elapsed, history = ck["epoch"], ck["elapsed"], list(ck["history"])
        log.info("resuming %s from epoch %d", cfg.model, start_epoch)

    use_amp = cfg.amp and (device.type == "cuda" or _cpu_has_bf16())
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(train_set), generator=g)
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False)
        for i in bar:
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = train_set.images[idx].to(device).float().div_(255)
            y = train_set.labels[idx].to(device)
            x = random_crop_flip(x, pad=cfg.crop_pad, flip=cfg.flip, generator=g)
            x = x.contiguous(memory_format=torch.channels_last)
            if batch_loss is not None:
                ctx = BatchContext(epoch, i, epoch * steps_per_epoch + i, g, use_amp, weight, cfg.label_smoothing)
                loss, logits = batch_loss(model, x, y, ctx)
            else:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = model(x)
                loss = F.cross_entropy(logits.float(), y, weight=weight, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        elapsed += time.time() - t0
        history.append({"epoch": epoch + 1, "loss": total_loss / seen, "train_accuracy": correct / seen})
        log.info("%s epoch %d/%d: loss %.4f, train acc %.4f", cfg.model, epoch + 1, cfg.epochs,
                 total_loss / seen, correct / seen)
        atomic_write_bytes(ckpt_path, _checkpoint_bytes({
            "model": model.net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "epoch": epoch + 1, "elapsed": elapsed, "history": history, "config": config_dict,
        }))

    model = model.to(memory_format=torch.contiguous_format).eval()
    acc = accuracy(model, test_set, progress=progress)
    name = cfg.name or (cfg.model if s is not None else Path(cfg.out).resolve().name)
    weights_path = save_safetensors(model.net, out / f"{'model' if s is None else name}.safetensors",
                                    metadata={"model": name, "xaisec": xaisec.__version__})
    card = {
        "model": name,
        "architecture": cfg.model if s is not None else cfg.arch,
        "description": s.description if s is not None else f"{cfg.arch} trained on {cfg.data}",
        "data": {"source": str(data_src), "train_images": len(train_set), "test_images": len(test_set),
                 "classes": train_set.classes},
        "test_accuracy": acc,
        "epochs": cfg.epochs,
        "augmentations": [f"random translation +-{cfg.crop_pad} px (zero pad, crop)"] * (cfg.crop_pad > 0)
        + ["horizontal flip"] * cfg.flip,
        "optimizer": f"SGD nesterov momentum {cfg.momentum}, weight decay {cfg.weight_decay}, "
        f"one-cycle lr max {cfg.lr}",
        "config": config_dict,
        "initialised_from": str(init_path) if init_path else "random initialisation",
        **({"defense": batch_loss.card()} if batch_loss is not None else {}),
        "history": history,
        "wall_time_seconds": round(elapsed, 1),
        "versions": {"xaisec": xaisec.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "device": str(device),
        "normalisation": {"mean": list(s.mean), "std": list(s.std)} if s is not None else {
            "mean": model.normalize.mean.flatten().tolist(), "std": model.normalize.std.flatten().tolist()},
        **(_wrapper_card(cfg, model, arch_info) if s is None else {}),
    }
    card_path = atomic_write_json(out / (f"{name}.json" if s is not None else "card.json"), card)
    log.info("%s: test accuracy %.4f; weights %s", cfg.model, acc, weights_path)
    return TrainResult(weights_path, card_path, acc, cfg.epochs)


# ---- training an architecture on a user's data (issue 19) -------------------------------------------------
def _arch_data(cfg: TrainConfig, progress: bool):
    """(source, train set, test set) for ``cfg.arch``: the data's train/test splits, or a seeded stratified
    ``cfg.split`` of it when it has no test split; images resized to ``cfg.image_size``."""
    if not cfg.data:
        raise XaisecError("--arch needs --data: an image folder <class>/<image> (or train/ and test/ above it)")
    mode = "RGB" if cfg.arch.startswith("torchvision:") else None
    kw = {"image_size": cfg.image_size, "resize_mode": cfg.resize_mode, "mode": mode, "progress": progress}
    path = Path(cfg.data)
    if path.is_dir() and not (path / "test").is_dir():
        full = load_data(cfg.data, "train" if (path / "train").is_dir() else "test", **kw)
        train_set, test_set = full.split(cfg.split, seed=0)
        log.info("%s has no test split: %d images for training, %d held out (stratified, seed 0)", cfg.data,
                 len(train_set), len(test_set))
    else:
        train_set = load_data(cfg.data, "train", **kw)
        test_set = load_data(cfg.data, "test", **kw).with_channels(train_set.images.shape[1])
        test_set = align_labels(test_set, train_set.classes)
    if test_set.images.shape[2:] != train_set.images.shape[2:]:
        raise XaisecError(f"{cfg.data}: train images are {tuple(train_set.images.shape[2:])} but test images "
                          f"{tuple(test_set.images.shape[2:])}; pass --image-size S")
    if len(test_set) == 0:
        raise XaisecError(f"{cfg.data}: no test images; add a test/ folder or more images per class")
    return str(cfg.data), train_set, test_set


def _channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), in [0, 1] units, computed in chunks."""
    c = images.shape[1]
    total, sq, count = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].double().div_(255)
        total += x.sum((0, 2, 3))
        sq += x.pow(2).sum((0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / max(count, 1)
    std = (sq / max(count, 1) - mean.pow(2)).clamp_min(0).sqrt().clamp_min(1e-3)
    return [round(v, 6) for v in mean.tolist()], [round(v, 6) for v in std.tolist()]


def _build_for_data(cfg: TrainConfig, train_set):
    """A fresh ``cfg.arch`` for the data's class count, channels and image size, normalised by the training
    set's per-channel mean and std; returns (Classifier, build info for the card)."""
    from xaisec.models import Classifier
    from xaisec.models.loading import build_arch

    c, h, w = (int(v) for v in train_set.images.shape[1:])
    net, info = build_arch(cfg.arch, num_classes=train_set.num_classes, in_channels=c, image_size=min(h, w))
    mean, std = _channel_stats(train_set.images)
    model = Classifier(net, mean=mean, std=std, cam_layer=info["cam_layer"], fc_layer=info["fc_layer"],
                       classes=train_set.classes, input_size=(c, h, w), name=Path(cfg.out).resolve().name)
    return model, info


def _wrapper_card(cfg: TrainConfig, model, info: dict) -> dict:
    """The model-card keys :func:`xaisec.models.loading.load_model_spec` rebuilds the model from."""
    from xaisec.models.card import CARD_FORMAT, tidy_floats

    return {"format": CARD_FORMAT, "arch": cfg.arch, "arch_options": info["arch_options"],
            "weights": "model.safetensors", "mean": tidy_floats(model.normalize.mean),
            "std": tidy_floats(model.normalize.std), "cam_layer": model.cam_layer, "fc_layer": model.fc_layer,
            "classes": list(model.classes), "input_size": list(model.input_size),
            "split": {"fraction": cfg.split, "seed": 0, "used": not (Path(cfg.data) / "test").is_dir()}}


def _cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 / AMX); elsewhere bf16 autocast is emulated
    and about 10x slower than float32 (measured on an AVX2 CPU), so training stays in float32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
