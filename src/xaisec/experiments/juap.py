"""Reproduction of JUAP (Ning et al. 2024) on CIFAR-10: ``xaisec bench reproduce --paper juap``.

Cells (engine tasks, :mod:`xaisec.experiments.engine`: one JSON record each under ``out/cells``, written
atomically by the driver and skipped when present, so a run resumes; each universal perturbation next to its
record as ``<key>.safetensors`` with its card ``<key>.card.json``):

* ``universal``: UAP and GAP (evaluated with every interpreter), R-JUAP and U-JUAP per interpreter (CAM,
  Grad-CAM, RTS) on the shipped ResNet-20 for L-inf 10/255 and L2 1.12, each for ``seeds`` noise seeds;
  in the full setting also R-JUAP and both baselines (L-inf) on the other shipped CIFAR-10 models with the
  interpreters they support (VGG-11 has no CAM);
* ``ablation``: R-JUAP with lambda = 0 (the chosen lambda is the main cell) for CAM and Grad-CAM;
* ``jap``: JAP vs PGD (untargeted, the same L-inf budget) on Grad-CAM.

Tables (``tables.json`` / ``tables.md``): the analogues of the paper's Table II (fooling ratio), Table V
(fooling ratio / L1 / IoU per norm), Table IV (JAP vs PGD), the lambda ablation and the other models; means
over seeds. ``quick=True`` is a small setting (few images and steps) that runs in minutes.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from xaisec.experiments.engine import Task, execute, write_outputs
from xaisec.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

LINF = 10 / 255
L2 = 2000 / 7 / 255  # the paper's 2000 at 224 px on the 0-255 scale, per pixel at 32 px: 1.1204
MAIN_MODEL = "cifar10_resnet20"
OTHER_MODELS = {"cifar10_densenet40": ("cam", "gradcam"), "cifar10_mobilenetv2": ("cam", "gradcam"),
                "cifar10_vgg11_bn": ("gradcam",)}


@dataclass(frozen=True)
class Setting:
    n_train: int
    n_test: int
    steps: int
    ngf: int
    seeds: int
    interpreters: tuple[str, ...]
    uap_passes: int
    jap_images: int
    jap_steps: int
    pgd_steps_scale: float
    other_models: bool
    lam: float
    per_sample: bool = False  # the delta clamp per image instead of on the batch mean (JUAP cells)


FULL = Setting(n_train=5000, n_test=2000, steps=1000, ngf=32, seeds=3, interpreters=("cam", "gradcam", "rts"),
               uap_passes=5, jap_images=100, jap_steps=100, pgd_steps_scale=0.1, other_models=True, lam=0.1)
QUICK = Setting(n_train=120, n_test=60, steps=12, ngf=8, seeds=1, interpreters=("cam", "gradcam"), uap_passes=1,
                jap_images=8, jap_steps=5, pgd_steps_scale=0.005, other_models=False, lam=0.1)


@dataclass(frozen=True)
class Cell:
    kind: str  # "universal" or "jap"
    model: str
    method: str  # uap, gap, juap (universal); jap, pgd (jap)
    interpreter: str | None  # the attacked interpreter (None for the baselines)
    generator: str | None
    norm: str
    eps: float
    lam: float | None
    seed: int
    evaluate_with: tuple[str, ...]

    @property
    def key(self) -> str:
        parts = [self.kind, self.model, self.method, self.generator or "-", self.interpreter or "-", self.norm,
                 f"lam{self.lam:g}" if self.lam is not None else "-", f"s{self.seed}"]
        return "__".join(parts)


def build_cells(setting: Setting, seed: int = 0) -> list[Cell]:
    """Every cell of the grid (see the module docstring)."""
    cells: list[Cell] = []
    seeds = [seed + i for i in range(setting.seeds)]
    interps = setting.interpreters
    for s in seeds:
        for norm, eps in (("linf", LINF), ("l2", L2)):
            for method in ("uap", "gap"):
                cells.append(Cell("universal", MAIN_MODEL, method, None, None if method == "uap" else "resnet", norm,
                                  eps, None, s, interps))
            for gen in ("resnet", "unet"):
                for it in interps:
                    cells.append(Cell("universal", MAIN_MODEL, "juap", it, gen, norm, eps, setting.lam, s, (it,)))
        for it in interps:
            if it in ("cam", "gradcam"):
                cells.append(Cell("universal", MAIN_MODEL, "juap", it, "resnet", "linf", LINF, 0.0, s, (it,)))
        if setting.other_models:
            for model, its in OTHER_MODELS.items():
                for method in ("uap", "gap"):
                    cells.append(Cell("universal", model, method, None, None if method == "uap" else "resnet", "linf",
                                      LINF, None, s, its))
                for it in its:
                    cells.append(Cell("universal", model, "juap", it, "resnet", "linf", LINF, setting.lam, s, (it,)))
    cells.append(Cell("jap", MAIN_MODEL, "jap", "gradcam", "resnet", "linf", LINF, setting.lam, seed, ("gradcam",)))
    cells.append(Cell("jap", MAIN_MODEL, "pgd", "gradcam", None, "linf", LINF, None, seed, ("gradcam",)))
    return cells


@functools.lru_cache(maxsize=2)
def _data(n_train: int, n_test: int, seed: int) -> dict[str, torch.Tensor]:
    """The seeded training and test images (uint8) and labels (drawn once per process)."""
    from xaisec.data import load as load_data

    train = load_data("cifar10", "train").sample(n_train, seed=seed)
    test = load_data("cifar10", "test").sample(n_test, seed=seed + 1)
    return {"x_train": train.images, "y_train": train.labels, "x_test": test.images, "y_test": test.labels}


def cell_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.key}.json"


def compute_cell(cell: Cell, setting: Setting, data_seed: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run one cell; returns its record and, for a universal cell, its perturbation (safetensors and JSON card
    bytes). Writes nothing: the engine's driver does."""
    from xaisec.models import load
    from xaisec.universal import evaluate, train

    data = _data(setting.n_train, setting.n_test, data_seed)
    model = load(cell.model)
    x_tr, y_tr = data["x_train"].float() / 255, data["y_train"]
    x_te, y_te = data["x_test"].float() / 255, data["y_test"]
    t0 = time.time()
    record: dict[str, Any] = {"cell": asdict(cell), "key": cell.key, "setting": asdict(setting)}
    blobs: dict[str, bytes] = {}
    if cell.kind == "universal":
        extra = {"max_passes": setting.uap_passes} if cell.method == "uap" else {
            "generator": cell.generator, "steps": setting.steps, "ngf": setting.ngf}
        if cell.method == "juap":
            extra.update(lam=cell.lam, per_sample=setting.per_sample)
        uap = train(cell.method, model, cell.interpreter, x_tr, labels=y_tr, norm=cell.norm, eps=cell.eps,
                    seed=cell.seed, **extra)
        record["train"] = {"config": uap.config, "history": uap.history}
        record["norm_value"] = float(uap.perturbation.abs().max() if cell.norm == "linf" else uap.perturbation.norm())
        record["eval"] = {it: evaluate(uap, model, it, x_te, labels=y_te).summary() for it in cell.evaluate_with}
        from xaisec.experiments.papers import saved_files
        from xaisec.universal.result import UniversalPerturbation

        blobs = saved_files(UniversalPerturbation(uap.perturbation, uap.method, uap.config))
    else:
        from xaisec.attacks import get

        x, y = x_te[: setting.jap_images], y_te[: setting.jap_images]
        if cell.method == "jap":
            atk = get("jap", model, cell.interpreter, eps=cell.eps, steps=setting.jap_steps, lam=cell.lam,
                      seed=cell.seed)
        else:
            atk = get("pgd", model, cell.interpreter, eps=cell.eps, target_class="untargeted",
                      steps_scale=setting.pgd_steps_scale, seed=cell.seed)
        res = atk(x, y)
        fooled = (res.pred_adv != res.pred_clean).float()
        from xaisec.universal.evaluate import threshold_iou

        record["eval"] = {cell.interpreter: {
            "n": len(res), "fooling_ratio": float(fooled.mean()), "l1": float(res.metrics["l1"].mean()),
            "iou": float(res.metrics["iou"].mean()),
            "iou_threshold": float(threshold_iou(res.maps_adv, res.maps_benign).mean()),
            "linf": float(res.metrics["linf"].max()), "iterations": res.iterations}}
        record["norm_value"] = float(res.metrics["linf"].max())
    record["wall_seconds"] = time.time() - t0
    return record, blobs


def cell_task(cell: Cell, setting: Setting, data_seed: int) -> Task:
    """The engine task that computes ``cell`` (one CPU)."""
    return Task(cell.key, "xaisec.experiments.juap:compute_cell",
                (("cell", cell), ("setting", setting), ("data_seed", data_seed)))


def run_cell(cell: Cell, out: Path, setting: Setting, data_seed: int, threads: int | None = None) -> dict[str, Any]:
    """Compute one cell here and write its record (and perturbation) into ``out/cells``; returns the record."""
    task = cell_task(cell, setting, data_seed)
    record, blobs, _ = execute(task, threads)
    write_outputs(Path(out) / "cells", task, record, blobs)
    return record


def _label(c: dict[str, Any]) -> str:
    if c["method"] == "juap":
        return f"{'R' if c['generator'] == 'resnet' else 'U'}-JUAP-{c['interpreter']}"
    return {"uap": "UAP", "gap": "GAP", "jap": "JAP", "pgd": "PGD"}[c["method"]]


def _mean(vals: list[float]) -> float | None:
    vals = [v for v in vals if v is not None]
    return statistics.fmean(vals) if vals else None


def tables(records: list[dict[str, Any]], lam: float) -> dict[str, Any]:
    """Aggregate cell records (means over seeds) into the paper's table analogues."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        c = r["cell"]
        for it, s in r["eval"].items():
            groups.setdefault((c["kind"], c["model"], _label(c), c["norm"], c["lam"], it), []).append(
                {**s, "norm_value": r.get("norm_value"), "eps": c["eps"]})

    def agg(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"fooling_ratio": _mean([x["fooling_ratio"] for x in rows]), "l1": _mean([x["l1"] for x in rows]),
                "iou": _mean([x["iou"] for x in rows]), "iou_threshold": _mean([x["iou_threshold"] for x in rows]),
                "seeds": len(rows), "budget_holds": all(x["norm_value"] <= x["eps"] for x in rows)}

    main = [(k, agg(v)) for k, v in groups.items() if k[0] == "universal" and k[1] == MAIN_MODEL and k[4] != 0.0]
    table_v = [{"method": k[2], "norm": k[3], "interpreter": k[5], **v} for k, v in main]
    table_ii = {}
    for k, v in main:  # fooling ratio does not depend on the measuring interpreter: one row per method
        table_ii.setdefault((k[2], k[3]), v["fooling_ratio"])
    ablation = [{"interpreter": k[5], "lam": k[4], **agg(v)} for k, v in groups.items()
                if k[0] == "universal" and k[1] == MAIN_MODEL and k[2].startswith("R-JUAP") and k[3] == "linf"
                and k[5] in ("cam", "gradcam")]
    others = [{"model": k[1], "method": k[2], "interpreter": k[5], **agg(v)} for k, v in groups.items()
              if k[0] == "universal" and k[1] != MAIN_MODEL]
    jap = [{"method": k[2], "interpreter": k[5], **agg(v)} for k, v in groups.items() if k[0] == "jap"]
    return {"table_ii_fooling": [{"method": m, "norm": n, "fooling_ratio": fr} for (m, n), fr in table_ii.items()],
            "table_v": table_v, "table_iv_jap_vs_pgd": jap, "lambda_ablation": ablation, "other_models": others,
            "lam": lam}


def _f(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v * 100:.1f}" if pct else f"{v:.3f}"


def markdown(t: dict[str, Any], command: str) -> str:
    lines = [f"# JUAP reproduction on CIFAR-10 (ResNet-20 unless stated)\n\nCommand: `{command}`\n",
             "## Table II analogue: fooling ratio (%)\n", "| method | L-inf 10/255 | L2 1.12 |", "|---|---|---|"]
    frs: dict[str, dict[str, float]] = {}
    for row in t["table_ii_fooling"]:
        frs.setdefault(row["method"], {})[row["norm"]] = row["fooling_ratio"]
    for m, d in sorted(frs.items()):
        lines.append(f"| {m} | {_f(d.get('linf'), True)} | {_f(d.get('l2'), True)} |")
    lines += ["\n## Table V analogue: fooling ratio (%) / L1 / IoU top-20% / IoU >= 0.5, per measuring interpreter\n",
              "| method | norm | interpreter | FR | L1 | IoU | IoU@0.5 | seeds | budget holds |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(t["table_v"], key=lambda r: (r["interpreter"], r["norm"], r["method"])):
        lines.append(f"| {r['method']} | {r['norm']} | {r['interpreter']} | {_f(r['fooling_ratio'], True)} | "
                     f"{_f(r['l1'])} | {_f(r['iou'])} | {_f(r['iou_threshold'])} | {r['seeds']} | "
                     f"{r['budget_holds']} |")
    lines += ["\n## Table IV analogue: JAP vs PGD on Grad-CAM (L-inf 10/255)\n",
              "| method | FR | L1 | IoU | IoU@0.5 |", "|---|---|---|---|---|"]
    for r in t["table_iv_jap_vs_pgd"]:
        lines.append(f"| {r['method']} | {_f(r['fooling_ratio'], True)} | {_f(r['l1'])} | {_f(r['iou'])} | "
                     f"{_f(r['iou_threshold'])} |")
    lines += [f"\n## Lambda ablation (R-JUAP, L-inf): lambda = 0 vs {t['lam']:g}\n",
              "| interpreter | lambda | FR | L1 | IoU |", "|---|---|---|---|---|"]
    for r in sorted(t["lambda_ablation"], key=lambda r: (r["interpreter"], r["lam"])):
        lines.append(f"| {r['interpreter']} | {r['lam']:g} | {_f(r['fooling_ratio'], True)} | {_f(r['l1'])} | "
                     f"{_f(r['iou'])} |")
    if t["other_models"]:
        lines += ["\n## Other shipped models (L-inf 10/255)\n", "| model | method | interpreter | FR | L1 | IoU |",
                  "|---|---|---|---|---|---|"]
        for r in sorted(t["other_models"], key=lambda r: (r["model"], r["interpreter"], r["method"])):
            lines.append(f"| {r['model']} | {r['method']} | {r['interpreter']} | {_f(r['fooling_ratio'], True)} | "
                         f"{_f(r['l1'])} | {_f(r['iou'])} |")
    return "\n".join(lines) + "\n"


def reproduce(out: str | Path, *, quick: bool = False, seed: int = 0, workers: int = 1, progress: bool = True,
              backend: str = "local", address: str | None = None, setting: Setting | None = None) -> dict[str, Any]:
    """Run (or resume) every cell under ``out`` on ``backend`` (``workers`` cells at once, see
    :func:`xaisec.experiments.engine.run_tasks`); write ``tables.json`` and ``tables.md``; return the tables."""
    from xaisec.experiments.papers import run_cells

    out = Path(out)
    setting = setting or (QUICK if quick else FULL)
    cells = build_cells(setting, seed)
    found = run_cells([cell_task(c, setting, seed) for c in cells], out, backend=backend, workers=workers,
                      address=address, progress=progress, desc="juap cells")
    records = [found[c.key] for c in cells]
    t = tables(records, setting.lam)
    t["setting"] = asdict(setting)
    atomic_write_json(out / "tables.json", t)
    command = f"xaisec bench reproduce --paper juap{' --quick' if quick else ''} --seed {seed} --out {out}"
    atomic_write_text(out / "tables.md", markdown(t, command))
    return t


__all__ = ["FULL", "QUICK", "Cell", "Setting", "build_cells", "cell_task", "compute_cell", "markdown", "reproduce",
           "run_cell", "tables"]
