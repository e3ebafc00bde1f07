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
from xaisec.models import build, load_into, save_safetensors, spec
from xaisec.training.augment import random_crop_flip
from xaisec.training.evaluate import accuracy
from xaisec.utils.checks import XaisecError, resolve_device
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
    init_weights: str | None = None  # start from these weights (fine-tuning) instead of a fresh initialisation
    device: str | None = None


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


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Train ``cfg.model`` and write ``<out>/<model>.safetensors`` and ``<out>/<model>.json``."""
    s = spec(cfg.model)
    if s.imagenet_arch is not None:
        raise XaisecError(f"{cfg.model}: ImageNet models are not trained by xaisec; use pretrained weights")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise XaisecError("epochs and batch size must be >= 1 and lr > 0")
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data_src = cfg.data or s.dataset
    train_set = load_data(data_src, "train")
    if cfg.limit is not None:
        train_set = train_set.sample(cfg.limit, seed=cfg.seed)
    test_set = load_data(data_src, "test")
    if train_set.images.shape[1:] != torch.Size(s.input_size):
        raise XaisecError(
            f"{data_src}: images {tuple(train_set.images.shape[1:])} but {cfg.model} takes {s.input_size}"
        )

    torch.manual_seed(cfg.seed)
    model = build(cfg.model)
    if cfg.init_weights:
        load_into(model.net, cfg.init_weights)
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

    use_amp = cfg.amp and (device.type == "cuda" or torch.backends.mkldnn.is_available())
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
    weights_path = save_safetensors(model.net, out / f"{cfg.model}.safetensors",
                                    metadata={"model": cfg.model, "xaisec": xaisec.__version__})
    card = {
        "model": cfg.model,
        "description": s.description,
        "data": {"source": str(data_src), "train_images": len(train_set), "test_images": len(test_set),
                 "classes": train_set.classes},
        "test_accuracy": acc,
        "epochs": cfg.epochs,
        "augmentations": [f"random translation +-{cfg.crop_pad} px (zero pad, crop)"] * (cfg.crop_pad > 0)
        + ["horizontal flip"] * cfg.flip,
        "optimizer": f"SGD nesterov momentum {cfg.momentum}, weight decay {cfg.weight_decay}, "
        f"one-cycle lr max {cfg.lr}",
        "config": config_dict,
        "initialised_from": cfg.init_weights or "random initialisation",
        "history": history,
        "wall_time_seconds": round(elapsed, 1),
        "versions": {"xaisec": xaisec.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "device": str(device),
        "normalisation": {"mean": list(s.mean), "std": list(s.std)},
    }
    card_path = atomic_write_json(out / f"{cfg.model}.json", card)
    log.info("%s: test accuracy %.4f; weights %s", cfg.model, acc, weights_path)
    return TrainResult(weights_path, card_path, acc, cfg.epochs)
