"""A page of sample images with their true and predicted labels (the pre-attack demo)."""

from __future__ import annotations

from pathlib import Path

import torch

import xaisec
from xaisec.data import samples
from xaisec.models import load
from xaisec.reports.html import render
from xaisec.reports.images import display_scale, to_data_uri
from xaisec.utils.io import atomic_write_json
from xaisec.utils.seed import seed_everything


def prediction_report(model_name: str, sample_set: str, out: str | Path, seed: int = 0) -> tuple[Path, float]:
    """Classify the bundled ``sample_set`` images with ``model_name``; write ``out/index.html`` and
    ``out/predictions.json``. Returns (report path, accuracy)."""
    seed_everything(seed)
    model = load(model_name)
    data = samples(sample_set)
    x = data.float_images(model.device)
    with torch.no_grad():
        probs = model(x).softmax(1)
    conf, pred = probs.max(1)
    correct = (pred.cpu() == data.labels)
    scale = display_scale(x.shape[-1])
    rows = [
        {"image": to_data_uri(x[i], scale), "true": model.class_name(int(data.labels[i])),
         "pred": model.class_name(int(pred[i])), "conf": float(conf[i]), "correct": bool(correct[i])}
        for i in range(len(data))
    ]
    acc = float(correct.float().mean())
    out = Path(out)
    atomic_write_json(out / "predictions.json", {
        "model": model_name, "data": data.name, "seed": seed, "accuracy": acc,
        "predictions": [{k: r[k] for k in ("true", "pred", "conf", "correct")} for r in rows],
    })
    path = render("predictions.html", out / "index.html", model=model_name, data=data.name, n=len(data),
                  accuracy=acc, seed=seed, rows=rows, version=xaisec.__version__, torch=torch.__version__)
    return path, acc
