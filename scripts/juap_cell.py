"""Run single JUAP-grid cells in the reduced setting of docs/juap.md (the lambda sweep and the measured rows).

``python scripts/juap_cell.py juap__resnet__cam__linf --lam 0.05 [--per-sample] [--out runs/juap/measured]``
runs every cell of :func:`xaisec.experiments.juap.build_cells` whose key contains the given text, with
1,000 training and 500 test images, 150 generator steps, one seed, CAM and Grad-CAM, and writes each record
(and perturbation) into ``OUT/cells``. A cell already on disk is skipped, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from xaisec.experiments import juap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("key", help="text contained in the keys of the cells to run, e.g. juap__resnet__cam__linf")
    ap.add_argument("--lam", type=float, default=juap.FULL.lam, help="JUAP map-term weight")
    ap.add_argument("--per-sample", action="store_true", help="the delta clamp per image")
    ap.add_argument("--out", type=Path, default=Path("runs/juap/measured"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    setting = replace(juap.FULL, n_train=1000, n_test=500, steps=150, seeds=1, interpreters=("cam", "gradcam"),
                      jap_images=50, other_models=False, lam=args.lam, per_sample=args.per_sample)
    every = juap.build_cells(setting, seed=0)
    cells = [c for c in every if args.key in c.key]
    if not cells:
        raise SystemExit(f"no cell key contains {args.key!r}; keys look like {every[2].key}")
    for cell in cells:
        if juap.cell_path(args.out, cell).exists():
            logging.info("%s: on disk, skipped", cell.key)
            continue
        rec = juap.run_cell(cell, args.out, setting, data_seed=0, threads=args.threads)
        for name, ev in rec.get("eval", {}).items():
            logging.info("%s [%s]: fooling %.3f, L1 %.3f, IoU %.3f", cell.key, name, ev["fooling_ratio"], ev["l1"],
                         ev["iou"])


if __name__ == "__main__":
    main()
