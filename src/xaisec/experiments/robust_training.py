"""Training-time defenses ([AE] V-G and VI-B Table VI, [A2] section 5 AID) on CIFAR-10 with the ResNet-20.

``xaisec bench reproduce --paper robust-training``: for the normal model and each robust zoo model that has
shipped weights (``cifar10_resnet20_at``, ``cifar10_resnet20_introbust``) it measures

- clean accuracy on ``n_clean`` test images;
- PGD accuracy (PGD-k, random start, step 2.5 eps / k) and the mean Kendall tau between the benign and the
  attacked true-class CAM (Boopathy et al.'s top-k mass attack, :mod:`xaisec.attacks.interp_attack`, at CAM's
  native 8x8, over the images whose prediction stayed) at eps in {0, 2, 4, 6, 8, 10}/255 on ``n`` images;
- the success of white-box AdvEdge and ADV^2 (pgd framework, Grad-CAM, eps 8/255) on ``n_attack`` correctly
  classified test images;
- for AID (``cifar10_resnet20_aid``, the same classifier with the AID-trained RTS): the L1 between benign and
  ADV^2 maps on the AID RTS and on the normal RTS, the L1 of a plain PGD attack's maps on the normal RTS,
  and the L1 between the two networks' benign maps.

Each measurement is one cell, an engine task (:mod:`xaisec.experiments.engine`, ``--backend local|ray``) whose
record ``cells/<name>.json`` the driver writes atomically; it is skipped when present (resume).
Tables: ``tables.json`` and ``tables.md``. ``quick``: fewer images and steps (stated in the tables).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from xaisec.experiments.engine import Task
from xaisec.training.evaluate import pgd_accuracy, tensor_accuracy
from xaisec.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

NORMAL = "cifar10_resnet20"
ROBUST = ("cifar10_resnet20_at", "cifar10_resnet20_introbust")
AID = "cifar10_resnet20_aid"
EPS = (0, 2, 4, 6, 8, 10)  # /255


def settings(quick: bool) -> dict[str, Any]:
    """Image counts and step counts of a run."""
    if quick:
        return {"n": 50, "n_clean": 1000, "n_attack": 20, "pgd_steps": 10, "tau_steps": 20, "steps_scale": 0.1,
                "eps": list(EPS)}
    return {"n": 200, "n_clean": 10000, "n_attack": 100, "pgd_steps": 20, "tau_steps": 50, "steps_scale": 0.25,
            "eps": list(EPS)}


def _finite(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


@functools.lru_cache(maxsize=2)
def _test_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded CIFAR-10 test images (float (n, 3, 32, 32) in [0, 1]) and labels (drawn once per process)."""
    from xaisec.data import load as load_data

    ds = load_data("cifar10", "test")
    ds = ds.sample(min(n, len(ds)), seed=seed) if n < len(ds) else ds
    return ds.float_images(), ds.labels


def _correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        ok = torch.cat([model(xb).argmax(1) == yb for xb, yb in zip(x.split(500), y.split(500), strict=True)])
    idx = ok.nonzero().flatten()[:n]
    return x[idx], y[idx]


def clean_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return tensor_accuracy(model, x, y, batch_size=500)


def mean_tau(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
             seed: int = 0) -> dict[str, Any]:
    """Mean Kendall tau between benign and attacked true-class CAMs (8x8) where the prediction stayed."""
    from xaisec.attacks.interp_attack import topk_interpretation_attack
    from xaisec.interpreters import get as get_interpreter

    g = get_interpreter("cam", model)
    taus, found, mass_drop = [], 0, []
    for xb, yb in zip(x.split(100), y.split(100), strict=True):
        res = topk_interpretation_attack(model, g, xb, yb, eps=eps, steps=steps, seed=seed)
        ok = res.found & torch.isfinite(res.tau)
        taus.append(res.tau[ok])
        mass_drop.append((res.mass_benign - res.mass_adv)[ok])
        found += int(ok.sum())
    tau = torch.cat(taus)
    return {"tau": _finite(float(tau.mean())) if len(tau) else None, "images": len(y), "found": found,
            "topk_mass_drop": _finite(float(torch.cat(mass_drop).mean())) if found else None}


def attack_success(model: torch.nn.Module, attack: str, x: torch.Tensor, y: torch.Tensor, steps_scale: float,
                   seed: int = 0) -> dict[str, Any]:
    """Success rate and map L1 of a white-box joint attack (pgd framework, Grad-CAM, eps 8/255)."""
    from xaisec.attacks import get as get_attack

    atk = get_attack(attack, model, "gradcam", framework="pgd", eps=8 / 255, steps_scale=steps_scale, seed=seed,
                     progress=False)
    res = atk(x, y)
    return {"success": float(res.success.float().mean()), "l1": float(res.metrics["l1"].mean()),
            "images": len(y)}


def aid_cells(x: torch.Tensor, y: torch.Tensor, steps_scale: float, seed: int = 0) -> dict[str, Any]:
    """ADV^2 on the AID RTS vs on the normal RTS; a PGD attack's map change on the normal RTS; benign gap."""
    from xaisec.attacks import get as get_attack
    from xaisec.interpreters.rts import RTS, rts_weights_path
    from xaisec.metrics.maps import map_l1
    from xaisec.models import load

    model = load(NORMAL)
    normal = RTS(model, weights=rts_weights_path(NORMAL))
    aid = RTS(model, weights=rts_weights_path(AID))
    row: dict[str, Any] = {"images": len(y)}
    for tag, g in (("normal_rts", normal), ("aid_rts", aid)):
        res = get_attack("adv2", model, g, framework="pgd", eps=8 / 255, steps_scale=steps_scale, seed=seed,
                         progress=False)(x, y)
        row[f"adv2_l1_{tag}"] = float(res.metrics["l1"].mean())
        row[f"adv2_success_{tag}"] = float(res.success.float().mean())
    res = get_attack("pgd", model, normal, framework="pgd", eps=8 / 255, steps_scale=steps_scale, seed=seed,
                     progress=False)(x, y)
    row["pgd_l1_normal_rts"] = float(res.metrics["l1"].mean())
    with torch.no_grad():
        row["benign_l1_aid_vs_normal"] = float(map_l1(aid(x, y), normal(x, y)).mean())
    return row


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def cell_task(name: str, kind: str, model_name: str, *, seed: int, n_all: int, **params: Any) -> Task:
    """The engine task of one measurement (``kind``: clean, pgd, tau, attack or aid; see :func:`compute_cell`)."""
    return Task(name, "xaisec.experiments.robust_training:compute_cell", (
        ("kind", kind), ("model_name", model_name), ("seed", seed), ("n_all", n_all), *sorted(params.items())))


def compute_cell(kind: str, model_name: str, seed: int, n_all: int, **p: Any) -> dict[str, Any]:
    """One measurement on the first images of ``n_all`` seeded test images; returns its record.

    clean: accuracy on ``n_clean`` images; pgd / tau: PGD accuracy / mean Kendall tau at ``eps``/255 with ``steps``
    on ``n`` images; attack: success of ``attack`` (steps x ``steps_scale``) on the first ``n_attack`` correctly
    classified images; aid: :func:`aid_cells` on those of the normal model."""
    from xaisec.models import load

    t0 = time.time()
    x_all, y_all = _test_images(n_all, seed)
    model = load(model_name)
    model.requires_grad_(False)
    if kind == "clean":
        row = {"accuracy": clean_accuracy(model, x_all[: p["n_clean"]], y_all[: p["n_clean"]]),
               "images": min(p["n_clean"], len(y_all))}
    elif kind in ("pgd", "tau"):
        x, y = x_all[: p["n"]], y_all[: p["n"]]
        if kind == "pgd":
            row = {"accuracy": pgd_accuracy(model, x, y, p["eps"] / 255, p["steps"], seed), "images": len(y)}
        else:
            row = mean_tau(model, x, y, p["eps"] / 255, p["steps"], seed)
    elif kind == "attack":
        xa, ya = _correct(model, x_all, y_all, p["n_attack"])
        row = attack_success(model, p["attack"], xa, ya, p["steps_scale"], seed)
    elif kind == "aid":
        xa, ya = _correct(model, x_all, y_all, p["n_attack"])
        row = aid_cells(xa, ya, p["steps_scale"], seed)
    else:
        raise ValueError(f"unknown robust-training cell kind {kind!r}")
    row["seconds"] = round(time.time() - t0, 1)
    log.info("robust-training cell %s %s: %s", model_name, kind, row)
    return row


def reproduce(out: str | Path, *, quick: bool = False, seed: int = 0, workers: int = 1, progress: bool = True,
              backend: str = "local", address: str | None = None) -> dict[str, Any]:
    """Run (or resume) every cell into ``out`` on ``backend`` (``workers`` cells at once, see
    :func:`xaisec.experiments.engine.run_tasks`); returns the tables (also ``tables.json`` / ``tables.md``)."""
    from xaisec.experiments.papers import run_cells
    from xaisec.interpreters.rts import rts_weights_path
    from xaisec.models import shipped_weights
    from xaisec.models.weights import model_card

    out = Path(out)
    cfg = settings(quick)
    models = [NORMAL] + [m for m in ROBUST if shipped_weights(m) is not None]
    missing = [m for m in ROBUST if m not in models]
    common = {"seed": seed, "n_all": max(cfg["n_clean"], cfg["n"], 4 * cfg["n_attack"])}
    tasks = []
    for name in models:
        tasks.append(cell_task(f"{name}_clean", "clean", name, n_clean=cfg["n_clean"], **common))
        for e in cfg["eps"]:
            tasks.append(cell_task(f"{name}_pgd_eps{e}", "pgd", name, n=cfg["n"], eps=e, steps=cfg["pgd_steps"],
                                   **common))
            if e > 0:
                tasks.append(cell_task(f"{name}_tau_eps{e}", "tau", name, n=cfg["n"], eps=e, steps=cfg["tau_steps"],
                                       **common))
        for attack in ("advedge", "adv2"):
            tasks.append(cell_task(f"{name}_{attack}", "attack", name, attack=attack, n_attack=cfg["n_attack"],
                                   steps_scale=cfg["steps_scale"], **common))
    aid = rts_weights_path(AID).is_file()
    if aid:
        tasks.append(cell_task("aid_rts", "aid", NORMAL, n_attack=cfg["n_attack"], steps_scale=cfg["steps_scale"],
                               **common))
    rec = run_cells(tasks, out, backend=backend, workers=workers, address=address, progress=progress,
                    desc="robust-training cells")
    tables: dict[str, Any] = {"settings": cfg, "seed": seed, "models": models, "missing": missing, "rows": {}}
    for name in models:
        row: dict[str, Any] = {"card_defense": (model_card(name) or {}).get("defense"),
                               "clean": rec[f"{name}_clean"]["accuracy"]}
        for e in cfg["eps"]:
            row[f"pgd_{e}"] = rec[f"{name}_pgd_eps{e}"]["accuracy"]
            row[f"tau_{e}"] = rec[f"{name}_tau_eps{e}"]["tau"] if e > 0 else None
        for attack in ("advedge", "adv2"):
            row[attack] = rec[f"{name}_{attack}"]["success"]
        tables["rows"][name] = row
    tables["aid"] = rec["aid_rts"] if aid else None
    atomic_write_json(out / "tables.json", tables)
    atomic_write_text(out / "tables.md", render(tables))
    return tables


def render(tables: dict[str, Any]) -> str:
    """Markdown for ``tables.json``."""
    cfg = tables["settings"]
    eps = cfg["eps"]
    parts = [f"# Training-time defenses (CIFAR-10, ResNet-20)\n\nsettings: {cfg}; seed {tables['seed']}"]
    if tables["missing"]:
        parts.append(f"not measured (no shipped weights): {', '.join(tables['missing'])}")
    rows = tables["rows"]
    parts.append(f"## PGD accuracy (PGD-{cfg['pgd_steps']}, {cfg['n']} test images)\n\n" + _md_table(
        ["model", *[f"{e}/255" for e in eps]], [[m, *[r[f"pgd_{e}"] for e in eps]] for m, r in rows.items()]))
    parts.append(f"## Kendall tau, benign vs attacked CAM ({cfg['tau_steps']} steps, top-8 mass attack)\n\n"
                 + _md_table(["model", *[f"{e}/255" for e in eps[1:]]],
                             [[m, *[r[f"tau_{e}"] for e in eps[1:]]] for m, r in rows.items()]))
    parts.append(f"## Clean accuracy ({cfg['n_clean']} test images) and white-box attack success (Grad-CAM, "
                 f"eps 8/255, {cfg['n_attack']} images, steps x {cfg['steps_scale']})\n\n"
                 + _md_table(["model", "clean", "AdvEdge", "ADV^2"],
                             [[m, r["clean"], r["advedge"], r["adv2"]] for m, r in rows.items()]))
    aid = tables.get("aid")
    if aid:
        parts.append("## AID (RTS maps, L1 per pixel)\n\n" + _md_table(
            ["ADV^2 on AID RTS", "ADV^2 on normal RTS", "PGD on normal RTS", "benign AID vs normal"],
            [[aid["adv2_l1_aid_rts"], aid["adv2_l1_normal_rts"], aid["pgd_l1_normal_rts"],
              aid["benign_l1_aid_vs_normal"]]]))
    return "\n\n".join(parts) + "\n"


__all__ = ["cell_task", "compute_cell", "render", "reproduce", "settings"]
