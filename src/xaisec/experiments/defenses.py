"""Reproduction of the defense tables: feature squeezing vs PGD / ADV^2 / adaptive ADV^2 (ADV^2 paper, Tables
4-5), median smoothing and bit squeezing vs AdvEdge (AdvEdge paper V-G), the ensemble-of-interpreters detector
(Tables IV-V) and the ensemble attack, on the shipped ResNet-20 and CIFAR-10 test images, eps 8/255.

``reproduce(out, quick=..., seed=...)`` runs (or resumes) the cells as engine tasks
(:mod:`xaisec.experiments.engine`, ``--backend local|ray``) in four stages, each after the records of the one
before exist: (1) the squeeze-detector calibration, median / bit squeezing and the ensemble's attack sets;
(2) the feature-squeezing attacks (given the calibrated thresholds) and the ensemble's map stacks; (3) the
ensemble detectors; (4) the ensemble attack (given the grad + cam detector). One JSON record per finished cell
under ``out/cells`` (adversarial images and maps next to them as safetensors), written by the driver, which
also publishes the detectors as ``out/squeeze_detector.json`` and ``out/ensemble_detector_<target>/``; then
``out/tables.json`` and ``out/tables.md``. A later stage's task names its inputs' settings hashes, so it re-runs
when they were re-made. ``quick`` is a smoke-test setting (minutes); :data:`REDUCED` (``setting=REDUCED``) is the
reduced run whose tables docs/defenses.md shows (about an hour here); the full run uses the issue's sizes.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from xaisec.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

MODEL = "cifar10_resnet20"
EPS = 8 / 255
ALL_SQUEEZERS = ("median:2", "bits:5", "nlm:13-3-2", "bits:2", "bits:3", "median:3", "nlm:11-3-4")
FS3 = ("median:2", "bits:5", "nlm:13-3-2")
TRANSFORMS = ("median:2", "median:3", "bits:3", "bits:4", "bits:5")


# the reduced run of docs/defenses.md's tables, sized for a shared 2-core CPU (about an hour); non-local means
# is measured, not attacked
REDUCED: dict[str, Any] = {
    "n_cal": 300, "n_eval": 64, "fs_interpreters": ("gradcam", "cam"), "steps_scale": 0.25,
    "adaptive_sets": {"median2_bits5": ("median:2", "bits:5")}, "n_clean": 1000, "n_ms": 64,
    "bpda": ("median:2", "bits:4"), "n_ens": 96, "ens_targets": ("cam",), "n_ens_attack": 16, "batch": 32, "epochs": 20}


def settings(quick: bool) -> dict[str, Any]:
    """The sizes of a run: ``quick``, a smoke test of every table in minutes (16 images per attack cell, Grad-CAM
    only, a tenth of the steps: ``xaisec bench reproduce --paper all --quick``); else the full run."""
    if quick:
        return {**REDUCED, "n_cal": 200, "n_eval": 16, "fs_interpreters": ("gradcam",), "steps_scale": 0.1,
                "n_clean": 500, "n_ms": 16, "n_ens": 32, "n_ens_attack": 8, "batch": 16, "epochs": 10}
    return {"n_cal": 1000, "n_eval": 300, "fs_interpreters": ("grad", "cam", "rts", "gradcam"), "steps_scale": 0.25,
            "adaptive_sets": {"fs3": FS3, "median3": ("median:3",), "bits2": ("bits:2",), "bits3": ("bits:3",),
                              "nlm1134": ("nlm:11-3-4",)},
            "n_clean": 10000, "n_ms": 300, "bpda": TRANSFORMS, "n_ens": 2000, "ens_targets": ("cam", "grad"),
            "n_ens_attack": 200, "batch": 50, "epochs": 30}


PARTS = ("fs", "ms", "ens")


class _Ctx:
    """Lazily loaded model, data and image selections shared by the cells."""

    def __init__(self, out: Path, n_cal: int, seed: int, progress: bool) -> None:
        from xaisec.data import load as load_data
        from xaisec.models import load

        self.out, self.seed, self.progress = out, seed, progress
        self.s: dict[str, Any] = {"n_cal": n_cal}  # a cell's view holds the settings it uses (compute_cell)
        self.model = load(MODEL)
        self.data = load_data("cifar10", "test")
        order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(seed))
        self.cal_idx = order[: self.s["n_cal"]]
        self.rest = order[self.s["n_cal"]:]
        cache = out / "cells" / f"selection_seed{seed}_cal{self.s['n_cal']}.safetensors"
        if cache.exists():
            self.correct = load_file(str(cache))["correct"]
        else:
            with torch.no_grad():
                x = self.data.subset(self.rest).float_images()
                pred = torch.cat([self.model(x[i:i + 500]).argmax(1) for i in range(0, x.shape[0], 500)])
            self.correct = self.rest[pred == self.data.labels[self.rest]]  # correctly classified, not calibration
            atomic_write_bytes(cache, save({"correct": self.correct.contiguous()}))

    def images(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sub = self.data.subset(idx)
        return sub.float_images(), sub.labels

    def detector(self, thresholds: dict[str, float]) -> Any:
        """The squeeze detector over every squeezer with the calibration cell's thresholds."""
        from xaisec.defenses import SqueezeDetector

        det = SqueezeDetector(self.model, list(ALL_SQUEEZERS))
        det.thresholds = {k: float(v) for k, v in thresholds.items()}
        return det


@functools.lru_cache(maxsize=2)
def _context(out: str, n_cal: int, seed: int) -> _Ctx:
    """The cells' shared context, built once per process (pool workers inherit the driver's)."""
    return _Ctx(Path(out), n_cal, seed, False)


def _prepare(folder: Any, n_cal: int, seed: int) -> None:
    """Build this run's context in the driver (the shared image selection is made once, before any worker
    starts; forked pool workers inherit it)."""
    _context.cache_clear()
    _context(folder.path, n_cal, seed)


def _adv_bytes(res: Any) -> bytes:
    """A result's adversarial images and success flags as safetensors bytes (``<key>.safetensors``)."""
    return save({"x_adv": res.x_adv.contiguous(), "success": res.success.contiguous()})


def _load_adv(ctx: _Ctx, key: str) -> dict[str, torch.Tensor]:
    return load_file(str(ctx.out / "cells" / f"{key}.safetensors"))


def _run(ctx: _Ctx, key: str, model: Any, interp: Any, attack: str, x: torch.Tensor, y: torch.Tensor,
         batch: int | None = None, **opts: Any) -> Any:
    """``run_attack`` batch by batch, each finished batch cached under cells/partial (a killed run resumes
    mid-cell); batch b gets the seed ``seed + b``, as run_attack gives it. A batch whose ``.lock`` names a live
    process is left to that process and waited for, so several processes can share one cell; the lock of a
    killed process is taken over."""
    import os

    from xaisec.attacks import AttackResult
    from xaisec.attacks import get as get_attack

    bs = batch or ctx.s["batch"]
    folder = ctx.out / "cells" / "partial"
    folder.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, x.shape[0], bs))
    paths = [folder / f"{key}__bs{bs}__b{b}.pt" for b in range(len(starts))]

    def held(lock: Path) -> bool:  # a lock counts only while the process that wrote it is alive
        try:
            os.kill(int(lock.read_text()), 0)
        except (OSError, ValueError):
            return False
        return True

    while not all(p.exists() for p in paths):
        progressed = False
        for b, start in enumerate(starts):
            path, lock = paths[b], paths[b].with_suffix(".lock")
            if path.exists() or (lock.exists() and held(lock)):
                continue  # done, or another live process has it
            lock.write_text(str(os.getpid()))
            atk = get_attack(attack, model, interp, seed=ctx.seed + b, progress=ctx.progress, **opts)
            res = atk(x[start:start + bs], y[start:start + bs])
            tmp = path.with_suffix(".tmp")
            torch.save(res, tmp)
            tmp.replace(path)
            lock.unlink(missing_ok=True)
            log.info("%s: batch %d done", key, b)
            progressed = True
        if not progressed:
            time.sleep(10)  # batches of other processes
    return AttackResult.concat([torch.load(p, weights_only=False) for p in paths])  # our own cache files


def _mean(v: torch.Tensor) -> float | None:
    v = v.float()
    return float(v.mean()) if v.numel() else None


# -- cells -----------------------------------------------------------------------------------------------------
def _calibrate(ctx: _Ctx) -> tuple[dict[str, Any], dict[str, bytes]]:
    from xaisec.defenses import squeeze_detector
    from xaisec.utils.io import to_json

    det = squeeze_detector(ctx.model, list(ALL_SQUEEZERS))
    x, _ = ctx.images(ctx.cal_idx)
    thresholds = det.calibrate(x, fpr=0.05)
    rec = {"thresholds": thresholds, "n_calibration": int(x.shape[0]), "fpr": 0.05}
    return rec, {"detector.json": (to_json(det.state()) + "\n").encode()}


def _fs_attack(ctx: _Ctx, interp: str, attack: str, adaptive_set: str | None, thresholds: dict[str, float]
               ) -> tuple[dict[str, Any], dict[str, bytes]]:

    x, y = ctx.images(ctx.correct[: ctx.s["n_eval"]])
    det = ctx.detector(thresholds)
    opts: dict[str, Any] = {"eps": EPS, "steps_scale": ctx.s["steps_scale"]}
    if adaptive_set is not None:
        from xaisec.defenses import SqueezeDetector

        sub = SqueezeDetector(ctx.model, list(ctx.s["adaptive_sets"][adaptive_set]))
        sub.thresholds = {k: det.thresholds[k] for k in sub.names}
        sub.thresholds["joint"] = max(sub.thresholds.values())
        opts.update(adaptive="feature_squeezing", detector=sub)
    key = f"fs__{interp}__{attack}" + (f"__adaptive_{adaptive_set}" if adaptive_set else "")
    res = _run(ctx, key, ctx.model, interp, attack, x, y, batch=16 if adaptive_set else None, **opts)
    ok = res.success.bool()
    rates = det.detection_rates(res.x_adv, ok)
    m = res.metrics
    return {"interpreter": interp, "attack": attack, "adaptive": adaptive_set, "n": len(res),
            "n_success": int(ok.sum()), "success": _mean(ok), "iou": _mean(m["iou"][ok]), "l1": _mean(m["l1"][ok]),
            "detection": rates}, {"safetensors": _adv_bytes(res)}


def _clean_accuracy(ctx: _Ctx) -> dict[str, Any]:
    from xaisec.defenses import defend

    idx = ctx.rest[: ctx.s["n_clean"]]
    x, y = ctx.images(idx)
    out = {}
    with torch.no_grad():
        for spec in ("none", *TRANSFORMS):
            m = ctx.model if spec == "none" else defend(ctx.model, spec)
            pred = torch.cat([m(x[i:i + 500]).argmax(1) for i in range(0, x.shape[0], 500)])
            out[spec] = float((pred == y).float().mean())
    return {"n": int(x.shape[0]), "accuracy": out}


def _ms_oblivious(ctx: _Ctx) -> tuple[dict[str, Any], dict[str, bytes]]:
    from xaisec.defenses import defend

    x, y = ctx.images(ctx.correct[: ctx.s["n_ms"]])
    res = _run(ctx, "ms__advedge__oblivious", ctx.model, "gradcam", "advedge", x, y, eps=EPS,
               steps_scale=ctx.s["steps_scale"])
    rows = {"none": float(res.success.float().mean())}
    with torch.no_grad():
        for spec in TRANSFORMS:
            pred = defend(ctx.model, spec)(res.x_adv).argmax(1)
            rows[spec] = float((pred == res.target).float().mean())
    return {"n": len(res), "success": rows, "iou": _mean(res.metrics["iou"])}, {"safetensors": _adv_bytes(res)}


def _ms_bpda(ctx: _Ctx, spec: str) -> dict[str, Any]:
    from xaisec.defenses import defend

    x, y = ctx.images(ctx.correct[: ctx.s["n_ms"]])
    defended = defend(ctx.model, spec, bpda=True)
    res = _run(ctx, f"ms__advedge__bpda__{spec.replace(':', '')}", defended, "gradcam", "advedge", x, y, eps=EPS,
               steps_scale=ctx.s["steps_scale"])
    return {"transform": spec, "n": len(res), "success": _mean(res.success), "iou": _mean(res.metrics["iou"])}


def _ens_attack_set(ctx: _Ctx, target: str) -> tuple[dict[str, Any], dict[str, bytes]]:

    n = ctx.s["n_ens"] if target != "grad" else ctx.s["n_ens"] // 2
    x, y = ctx.images(ctx.correct[:n])
    res = _run(ctx, f"ens__adv2__{target}", ctx.model, target, "adv2", x, y, eps=EPS,
               steps_scale=ctx.s["steps_scale"])
    return ({"target": target, "n": len(res), "success": _mean(res.success), "iou": _mean(res.metrics["iou"])},
            {"safetensors": _adv_bytes(res)})


def _ens_maps(ctx: _Ctx, target: str) -> dict[str, torch.Tensor]:
    """The map stacks of one attack set (the ``ens__maps__<target>`` cell's output)."""
    return load_file(str(ctx.out / "cells" / f"ens__maps__{target}.safetensors"))


def _ens_make_maps(ctx: _Ctx, target: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Maps of grad, cam, gradcam for the benign and the adversarial images of one attack set."""
    from xaisec.defenses.ensemble import MapStack

    adv = _load_adv(ctx, f"ens__adv2__{target}")
    n = adv["x_adv"].shape[0]
    xb, _ = ctx.images(ctx.correct[:n])
    stack = MapStack(ctx.model, ["grad", "cam", "gradcam"])
    mb, ma = stack.maps(xb), stack.maps(adv["x_adv"])
    # benign rows, then the successful adversarial rows (the detector sees inputs that fooled the model)
    ok = adv["success"].bool()
    out = {f"map.{k}": torch.cat([mb[k], ma[k][ok]]).contiguous() for k in mb}
    out["labels"] = torch.cat([torch.zeros(n), torch.ones(int(ok.sum()))]).long()
    out["groups"] = torch.cat([torch.arange(n), torch.arange(n)[ok]]).long()
    return {"target": target, "n_benign": n, "n_adversarial": int(ok.sum())}, {"safetensors": save(out)}


DETECTORS = (("grad",), ("cam",), ("gradcam",), ("grad", "cam"), ("grad", "gradcam"), ("cam", "gradcam"),
             ("grad", "cam", "gradcam"))


def _ens_detector(ctx: _Ctx, target: str, names: tuple[str, ...], variant: str
                  ) -> tuple[dict[str, Any], dict[str, bytes]]:
    import tempfile

    from xaisec.defenses import EnsembleDetector

    d = _ens_maps(ctx, target)
    maps = {k[4:]: v for k, v in d.items() if k.startswith("map.")}
    det = EnsembleDetector(ctx.model, list(names), variant, seed=ctx.seed, epochs=ctx.s["epochs"])
    rep = det.fit_maps(maps, d["labels"], d["groups"])
    blobs = {}
    if names == ("grad", "cam") and variant == "maps":  # the detector the ensemble attack faces
        with tempfile.TemporaryDirectory() as tmp:
            det.save(tmp)
            blobs = {f"detector.{ext}": (Path(tmp) / f"detector.{ext}").read_bytes() for ext in ("json", "safetensors")}
    return rep, blobs


def _ens_adaptive(ctx: _Ctx, with_detector: bool) -> dict[str, Any]:
    """ADV^2 against grad + cam at once (optionally + the detector's logit) on images the detector never
    trained on; detector TPR at its 5% FPR threshold before (plain ADV^2 against cam) and after."""
    from xaisec.defenses import EnsembleDetector
    from xaisec.defenses.ensemble import split_by_source

    target = ctx.s["ens_targets"][0]
    det = EnsembleDetector.load(ctx.out / f"ensemble_detector_{target}", ctx.model)
    d = _ens_maps(ctx, target)
    _, test = split_by_source(d["groups"], 0.3, ctx.seed)
    sources = d["groups"][test].unique()[: ctx.s["n_ens_attack"]]
    x, y = ctx.images(ctx.correct[sources])
    thr = det.report["threshold_at_fpr"]
    before = _load_adv(ctx, f"ens__adv2__{target}")
    xb_adv, ok_b = before["x_adv"][sources], before["success"][sources].bool()
    opts: dict[str, Any] = {"eps": EPS, "steps_scale": ctx.s["steps_scale"]}
    if with_detector:
        opts.update(adaptive="detector", detector=det)
    key = "ens__attack__grad_cam" + ("__detector" if with_detector else "")
    res = _run(ctx, key, ctx.model, ["grad", "cam"], "adv2", x, y, **opts)
    from xaisec.interpreters import get as get_interpreter
    from xaisec.metrics import map_iou

    ok = res.success.bool()
    ious = {}
    for name in ("grad", "cam"):
        g = get_interpreter(name, ctx.model)
        mb = g(res.x, res.pred_clean)
        ma = g(res.x_adv, res.pred_adv)
        ious[name] = _mean(map_iou(ma, mb, k=20.0).cpu()[ok])
    tpr_after = _mean((det.predict_proba(res.x_adv[ok]) > thr).cpu()) if ok.any() else None
    tpr_before = _mean((det.predict_proba(xb_adv[ok_b]) > thr).cpu()) if ok_b.any() else None
    return {"n": len(res), "success": _mean(ok), "iou": ious, "threshold": thr, "tpr_before": tpr_before,
            "tpr_after": tpr_after, "with_detector_term": with_detector,
            "accuracy_flag_after": _mean(det.flag(res.x_adv[ok]).cpu()) if ok.any() else None}


# -- the grid and the tables --------------------------------------------------------------------------------------
_CELLS: dict[str, Any] = {"calibration": _calibrate, "fs": _fs_attack, "clean_accuracy": _clean_accuracy,
                          "ms_oblivious": _ms_oblivious, "ms_bpda": _ms_bpda, "ens_attack_set": _ens_attack_set,
                          "ens_maps": _ens_make_maps, "ens_detector": _ens_detector, "ens_adaptive": _ens_adaptive}


# the settings each part's cells use (their task's settings hash covers these, so changing one re-runs them)
_USES: dict[str, tuple[str, ...]] = {
    "calibration": ("n_cal",), "fs": ("n_cal", "n_eval", "steps_scale", "adaptive_sets", "batch"),
    "clean_accuracy": ("n_cal", "n_clean"), "ms_oblivious": ("n_cal", "n_ms", "steps_scale", "batch"),
    "ms_bpda": ("n_cal", "n_ms", "steps_scale", "batch"), "ens_attack_set": ("n_cal", "n_ens", "steps_scale", "batch"),
    "ens_maps": ("n_cal",), "ens_detector": ("n_cal", "epochs"),
    "ens_adaptive": ("n_cal", "n_ens_attack", "steps_scale", "batch", "ens_targets")}


def compute_cell(part: str, seed: int, folder: Any, uses: dict[str, Any], upstream: dict[str, str | None] | None = None,
                 **args: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run one cell (``part``: a key of ``_CELLS``) with the settings it ``uses`` and the shared context of
    ``folder`` (:class:`xaisec.experiments.papers.ResultsFolder`); returns its record and binary outputs.
    ``upstream`` (the settings hashes of the cells it reads) only makes the task's settings depend on them."""
    import copy

    del upstream
    t0 = time.perf_counter()
    ctx = copy.copy(_context(folder.path, uses["n_cal"], seed))
    ctx.s = dict(uses)
    out = _CELLS[part](ctx, **args)
    rec, blobs = out if isinstance(out, tuple) else (out, {})
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    log.info("cell %s done in %.0f s", part, rec["seconds"])
    return rec, blobs


def _task(key: str, part: str, s: dict[str, Any], seed: int, folder: Any,
          upstream: dict[str, str | None] | None = None, **args: Any) -> Any:
    from xaisec.experiments.engine import Task

    kwargs = (("part", part), ("seed", seed), ("folder", folder), ("uses", {k: s[k] for k in _USES[part]}),
              *((("upstream", upstream),) if upstream else ()), *sorted(args.items()))
    return Task(key, "xaisec.experiments.defenses:compute_cell", kwargs)


def _publish(out: Path, key: str, files: dict[str, Path]) -> bool:
    """Copy the binary outputs ``cells/<key>.<suffix>`` of a finished cell to ``files[suffix]`` (the driver's
    write); False when a source is missing (a record from before the outputs were kept: delete it and re-run)."""
    sources = {suffix: out / "cells" / f"{key}.{suffix}" for suffix in files}
    if not all(p.exists() for p in sources.values()):
        return all(p.exists() for p in files.values())  # True: published by an earlier run
    for suffix, dest in files.items():
        data = sources[suffix].read_bytes()
        if not dest.exists() or dest.read_bytes() != data:
            atomic_write_bytes(dest, data)
    return True


def reproduce(out: str | Path, *, quick: bool = False, seed: int = 0, workers: int = 1,
              progress: bool = True, backend: str = "local", address: str | None = None,
              parts: tuple[str, ...] = PARTS, setting: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run or resume the cells of ``parts`` (``fs``: feature squeezing, ``ms``: median / bit squeezing, ``ens``:
    the ensemble detector and attack) on ``backend`` (``workers`` cells at once, see
    :func:`xaisec.experiments.engine.run_tasks`) and write the tables of every finished cell. Returns them.
    ``setting`` (e.g. :data:`REDUCED`) replaces :func:`settings` ``(quick)``; a cell re-runs when a setting it
    uses changed."""
    from xaisec.experiments.papers import ResultsFolder, run_cells, settings_of

    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        from xaisec.utils.checks import XaisecError

        raise XaisecError(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    out = Path(out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    folder = ResultsFolder(out)
    s = dict(setting) if setting is not None else settings(quick)
    _prepare(folder, s["n_cal"], seed)
    common = {"s": s, "seed": seed, "folder": folder}

    def stage(tasks: list[Any], name: str) -> dict[str, dict[str, Any]]:
        return run_cells(tasks, out, backend=backend, workers=workers, address=address, progress=progress,
                         desc=f"defenses {name}")

    fs_keys = [k for i in (s["fs_interpreters"] if "fs" in parts else ())
               for k in [(i, "pgd", None), (i, "adv2", None), *((i, "adv2", a) for a in s["adaptive_sets"])]]
    targets = s["ens_targets"] if "ens" in parts else ()
    # stage 1: no inputs but the images
    first = [_task("fs__calibration", "calibration", **common)]
    if "ms" in parts:
        first += [_task("ms__clean_accuracy", "clean_accuracy", **common),
                  _task("ms__advedge__oblivious", "ms_oblivious", **common)]
        first += [_task(f"ms__advedge__bpda__{sp.replace(':', '')}", "ms_bpda", spec=sp, **common) for sp in s["bpda"]]
    first += [_task(f"ens__adv2__{t}", "ens_attack_set", target=t, **common) for t in targets]
    rec = stage(first, "stage 1/4")
    _publish(out, "fs__calibration", {"detector.json": out / "squeeze_detector.json"})
    cal = rec["fs__calibration"]
    # stage 2: the squeeze attacks (given the thresholds) and the ensemble's map stacks
    second = [_task(f"fs__{i}__{a}" + (f"__adaptive_{aset}" if aset else ""), "fs", interp=i, attack=a,
                    adaptive_set=aset, thresholds=cal["thresholds"], upstream={"fs__calibration": settings_of(cal)},
                    **common) for i, a, aset in fs_keys]
    second += [_task(f"ens__maps__{t}", "ens_maps", target=t, upstream={f"ens__adv2__{t}": settings_of(
        rec[f"ens__adv2__{t}"])}, **common) for t in targets]
    rec.update(stage(second, "stage 2/4"))
    # stage 3: the detectors
    third = [_task(f"ens__det__{t}__{'_'.join(names)}__{v}", "ens_detector", target=t, names=names, variant=v,
                   upstream={f"ens__maps__{t}": settings_of(rec[f"ens__maps__{t}"])}, **common)
             for t in targets for names in DETECTORS for v in (("maps", "product") if len(names) == 2 else ("maps",))]
    rec.update(stage(third, "stage 3/4"))
    if targets:
        chosen = f"ens__det__{targets[0]}__grad_cam__maps"
        dest = out / f"ensemble_detector_{targets[0]}"
        files = {"detector.json": dest / "detector.json", "detector.safetensors": dest / "detector.safetensors"}
        if not _publish(out, chosen, files):  # a record from before the detector was kept with it
            (out / "cells" / f"{chosen}.json").unlink()
            rec.update(stage([t for t in third if t.key == chosen], "stage 3/4"))
            _publish(out, chosen, files)
        # stage 4: the ensemble attack against the grad + cam detector
        adv = f"ens__adv2__{targets[0]}"
        up = {chosen: settings_of(rec[chosen]), adv: settings_of(rec[adv])}
        rec.update(stage([_task("ens__attack__grad_cam", "ens_adaptive", with_detector=False, upstream=up, **common),
                          _task("ens__attack__grad_cam__detector", "ens_adaptive", with_detector=True, upstream=up,
                                **common)], "stage 4/4"))
    tables = collect(out, quick, seed, setting=s)
    atomic_write_json(out / "tables.json", _clean(tables))
    atomic_write_text(out / "tables.md", render_tables(tables))
    return tables


def collect(out: str | Path, quick: bool = False, seed: int = 0, setting: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """The tables of the cells finished so far under ``out`` (nothing is run)."""
    out = Path(out)
    s = dict(setting) if setting is not None else settings(quick)

    def read(key: str) -> dict[str, Any] | None:
        from xaisec.experiments.papers import without_stamp

        path = out / "cells" / f"{key}.json"
        return without_stamp(json.loads(path.read_text())) if path.exists() else None

    t: dict[str, Any] = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()},
                         "quick": quick, "seed": seed, "model": MODEL, "eps": "8/255",
                         "calibration": read("fs__calibration")}
    keys = []
    for interp in s["fs_interpreters"]:
        keys += [f"fs__{interp}__pgd", f"fs__{interp}__adv2"]
        keys += [f"fs__{interp}__adv2__adaptive_{a}" for a in s["adaptive_sets"]]
    t["feature_squeezing"] = [r for r in map(read, keys) if r is not None]
    t["clean_accuracy"], t["ms_oblivious"] = read("ms__clean_accuracy"), read("ms__advedge__oblivious")
    t["ms_bpda"] = [r for r in (read(f"ms__advedge__bpda__{sp.replace(':', '')}") for sp in s["bpda"]) if r]
    ens = []
    for target in s["ens_targets"]:
        for names in DETECTORS:
            for v in (("maps", "product") if len(names) == 2 else ("maps",)):
                r = read(f"ens__det__{target}__{'_'.join(names)}__{v}")
                if r is not None:
                    ens.append({"target": target, **r})
    t["ensemble_detector"] = ens
    t["ensemble_attack"] = [r for r in (read("ens__attack__grad_cam"), read("ens__attack__grad_cam__detector")) if r]
    return t


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _pct(v: Any) -> str:
    return "-" if v is None or v != v else f"{100 * v:.1f}%"


def _num(v: Any, digits: int = 3) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def render_tables(t: dict[str, Any]) -> str:
    """The tables as Markdown."""
    lines = [f"# Defenses on {t['model']} (CIFAR-10, eps {t['eps']}{', quick run' if t['quick'] else ''})", ""]
    cal = t.get("calibration") or {"n_calibration": 0, "thresholds": {}}
    lines += [f"## Feature squeezing: detection rate of successful examples (thresholds at 5% FPR on "
              f"{cal['n_calibration']} benign images)", ""]
    sq = [*ALL_SQUEEZERS, "joint"]
    lines += ["| interpreter | attack | n success / n | success | IoU | " + " | ".join(sq) + " |",
              "|---|---|---|---|---|" + "---|" * len(sq)]
    for r in t.get("feature_squeezing") or []:
        name = r["attack"] + (f" adaptive ({r['adaptive']})" if r["adaptive"] else "")
        det = r["detection"]
        lines.append(f"| {r['interpreter']} | {name} | {r['n_success']} / {r['n']} | {_pct(r['success'])} | "
                     f"{_num(r['iou'])} | " + " | ".join(_pct(det.get(k)) for k in sq) + " |")
    lines += ["", "thresholds: " + ", ".join(f"{k} {v:.3f}" for k, v in cal["thresholds"].items()), ""]
    acc = t.get("clean_accuracy") or {"n": 0, "accuracy": {}}
    obl = t.get("ms_oblivious") or {"n": 0, "success": {}}
    bpda = {r["transform"]: r for r in t.get("ms_bpda") or []}
    lines += ["## Median smoothing / bit squeezing vs AdvEdge (pgd, Grad-CAM)", "",
              f"| transform | clean accuracy (n={acc['n']}) | oblivious success (n={obl['n']}) | BPDA success |",
              "|---|---|---|---|"]
    for spec in ("none", *TRANSFORMS):
        b = bpda.get(spec)
        lines.append(f"| {spec} | {_pct(acc['accuracy'].get(spec))} | {_pct(obl['success'].get(spec))} | "
                     f"{_pct(b['success']) if b else '-'} |")
    lines += ["", "## Ensemble-of-interpreters detector (test split by source image)", "",
              "| adv. against | interpreters | variant | n train / test | accuracy | AUC | TPR@5%FPR | CNN-head acc |",
              "|---|---|---|---|---|---|---|---|"]
    for r in t.get("ensemble_detector") or []:
        m = r["test"]
        tpr = m.get("tpr_at_fpr", m.get("tpr_at_5fpr"))
        lines.append(f"| {r['target']} | {'+'.join(r['interpreters'])} | {r['variant']} | {r['n_train']} / "
                     f"{r['n_test']} | {_num(m['accuracy'])} | {_num(m['auc'])} | {_pct(tpr)} | "
                     f"{_num(r['test_cnn_head']['accuracy'])} |")
    lines += ["", "## Ensemble attack: ADV^2 against grad + cam at once (images the detector did not train on)", "",
              "| attack | n | success | IoU grad | IoU cam | detector TPR@5%FPR before (ADV^2 vs one) | after |",
              "|---|---|---|---|---|---|---|"]
    for r in t.get("ensemble_attack") or []:
        name = "ADV^2 grad+cam" + (" + detector term" if r["with_detector_term"] else "")
        lines.append(f"| {name} | {r['n']} | {_pct(r['success'])} | {_num(r['iou']['grad'])} | "
                     f"{_num(r['iou']['cam'])} | {_pct(r['tpr_before'])} | {_pct(r['tpr_after'])} |")
    return "\n".join(lines) + "\n"
