"""The HTML report of a universal perturbation: the perturbation amplified, training curves, fooling ratio /
L1 / IoU, and a grid of benign and perturbed images with their maps (reuses :mod:`xaisec.reports`)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from jinja2 import ChoiceLoader, DictLoader, Environment, PackageLoader, select_autoescape

import xaisec
from xaisec.reports.images import display_scale, heatmap_overlay, to_data_uri
from xaisec.reports.plots import PALETTE, histogram_uri
from xaisec.universal.evaluate import UniversalEvaluation
from xaisec.universal.result import UniversalPerturbation
from xaisec.utils.io import atomic_write_text

_TEMPLATE = """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block body %}
<h1>{{ title }}</h1>
<div class="meta">{% for k, v in meta.items() %}{{ k }}: <b>{{ v }}</b> &middot; {% endfor %}xaisec {{ version }},
torch {{ torch }}</div>
<h2>Result on {{ summary.n }} held-out images</h2>
<table><tr><th>fooling ratio</th><th>L1 to benign map</th><th>IoU top-20%</th><th>IoU threshold 0.5</th>
<th>clean accuracy</th><th>accuracy under the perturbation</th><th>L-inf</th><th>L2</th></tr>
<tr><td class="num">{{ fmt.fr }}</td><td class="num">{{ fmt.l1 }}</td><td class="num">{{ fmt.iou }}</td>
<td class="num">{{ fmt.iou_t }}</td><td class="num">{{ fmt.acc }}</td><td class="num">{{ fmt.acc_adv }}</td>
<td class="num">{{ fmt.linf }}</td><td class="num">{{ fmt.l2 }}</td></tr></table>
<p class="legend">Fooling: prediction changed against the clean prediction. Maps min-max normalised; the benign map
explains the clean prediction, the perturbed map the new prediction. L1: mean |difference| per pixel (lower =
closer); IoU of the top-20% pixels (chance about 0.11) and of the pixels above 0.5.</p>
<h2>The perturbation</h2>
<div class="grid"><div class="card"><img class="px" src="{{ pert }}" width="{{ big }}" height="{{ big }}">amplified
(mid-grey = 0)</div>{% if curves %}<div><img src="{{ curves }}"></div>{% endif %}</div>
<h2>Images</h2>
<p class="legend">Each card: benign image, benign map, perturbed image, perturbed map.
<span class="cbar"></span> low to high attribution.</p>
<div class="grid">{% for c in cards %}<div class="card">
<img class="px" src="{{ c.x }}" width="{{ size }}" height="{{ size }}">
<img class="px" src="{{ c.mb }}" width="{{ size }}" height="{{ size }}">
<img class="px" src="{{ c.xa }}" width="{{ size }}" height="{{ size }}">
<img class="px" src="{{ c.ma }}" width="{{ size }}" height="{{ size }}">
{{ c.pc }} &rarr; <span class="{{ 'ok' if c.fooled else 'bad' }}">{{ c.pa }}</span><br>
L1 {{ c.l1 }} &middot; IoU {{ c.iou }}</div>{% endfor %}</div>
{% if hists %}<h2>Distributions</h2>
<div class="grid">{% for h in hists %}<img src="{{ h }}">{% endfor %}</div>{% endif %}
{% endblock %}
"""

_ENV = Environment(loader=ChoiceLoader([DictLoader({"universal.html": _TEMPLATE}),
                                        PackageLoader("xaisec.reports", "templates")]),
                   autoescape=select_autoescape(["html"]))


def curves_uri(history: dict[str, list[float]]) -> str | None:
    """Training curves (loss terms and training fooling ratio against step or pass) as a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xkey = "step" if history.get("step") else "pass" if history.get("pass") else None
    if xkey is None:
        return None
    xs = history[xkey]
    series = [(k, history[k]) for k in ("loss", "cls_loss", "map_loss") if history.get(k)]
    series = [(k, v) for k, v in series if any(isinstance(a, (int, float)) and math.isfinite(a) for a in v if a)]
    fig, axes = plt.subplots(1, 2 if series else 1, figsize=(8.4 if series else 4.2, 2.8), dpi=110, squeeze=False)
    for i, (k, v) in enumerate(series):
        axes[0][0].plot(xs, [math.nan if a is None else a for a in v], label=k, color=PALETTE[i % len(PALETTE)])
    if series:
        axes[0][0].set_xlabel(xkey, fontsize=9)
        axes[0][0].legend(fontsize=8, frameon=False)
        axes[0][0].set_title("training losses", fontsize=10)
    ax = axes[0][-1]
    ax.plot(xs, history.get("fooling", []), color=PALETTE[2])
    ax.set_ylim(0, 1)
    ax.set_xlabel(xkey, fontsize=9)
    ax.set_title("training fooling ratio", fontsize=10)
    for a in axes[0]:
        a.tick_params(labelsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def universal_report(uap: UniversalPerturbation, ev: UniversalEvaluation, path: str | Path, *, title: str,
                     class_name: Callable[[int], str] = str, meta: dict[str, Any] | None = None,
                     max_cards: int = 24) -> Path:
    """Write the report (atomically). ``ev`` should hold images and maps in ``extras`` (evaluate(keep=...))."""
    s = ev.summary()
    p = uap.perturbation
    amp = (0.5 + 0.5 * p / p.abs().max().clamp_min(1e-12)).clamp(0, 1)
    side = p.shape[-1]
    scale = display_scale(side, 64)
    big = display_scale(side, 128) * side

    def pct(v: float | None) -> str:
        return "n/a" if v is None or not math.isfinite(v) else f"{v * 100:.1f}%"

    def num(v: float | None, digits: int = 3) -> str:
        return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"

    fmt = {"fr": pct(s["fooling_ratio"]), "l1": num(s["l1"]), "iou": num(s["iou"]), "iou_t": num(s["iou_threshold"]),
           "acc": pct(s.get("accuracy_clean")), "acc_adv": pct(s.get("accuracy_adv")),
           "linf": f"{float(p.abs().max()) * 255:.2f}/255", "l2": f"{float(p.norm()):.3f}"}
    cards = []
    ex = ev.extras
    for i in range(min(max_cards, ex["x"].shape[0] if "x" in ex else 0)):
        cards.append({"x": to_data_uri(ex["x"][i], scale),
                      "mb": to_data_uri(heatmap_overlay(ex["x"][i], ex["maps_benign"][i], 0.55), scale),
                      "xa": to_data_uri(ex["x_adv"][i], scale),
                      "ma": to_data_uri(heatmap_overlay(ex["x_adv"][i], ex["maps_adv"][i], 0.55), scale),
                      "pc": class_name(int(ev.pred_clean[i])), "pa": class_name(int(ev.pred_adv[i])),
                      "fooled": bool(ev.fooled[i]), "l1": num(float(ev.l1[i])), "iou": num(float(ev.iou[i]))})
    hists = []
    if torch.isfinite(ev.l1).all():
        hists = [histogram_uri({uap.method: ev.l1}, title="L1 distance to the benign map", xlabel="L1 (lower = closer)",
                               value_range=(0.0, 0.5)),
                 histogram_uri({uap.method: ev.iou}, title="IoU with the benign map (top 20%)", xlabel="IoU")]
    html = _ENV.get_template("universal.html").render(
        title=title, meta=meta or {}, summary=s, fmt=fmt, pert=to_data_uri(amp, big // side), big=big,
        curves=curves_uri(uap.history), cards=cards, size=side * scale, hists=hists, version=xaisec.__version__,
        torch=torch.__version__)
    return atomic_write_text(path, html)


__all__ = ["curves_uri", "universal_report"]
