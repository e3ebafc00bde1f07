"""Grid throughput: cells per minute with 1 and 2 workers on the local and Ray backends, and Ray's cost per cell.

``python benchmarks/grid_scaling.py [--cells 16] [--work 3000]``. Each cell is the engine's CPU-bound probe task
(``work`` 256 x 256 matrix products on one torch thread: pool and Ray workers run one thread per cell, and the
in-process single worker is pinned to one thread too, so "workers" means cores); the same cells run four ways
into fresh folders, and a second pass of empty cells measures the backend's own overhead per cell. Prints one
table and the ratios.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from xaisec.experiments.engine import Task, run_tasks


def _cells(n: int, work: int) -> list[Task]:
    return [Task(f"c{i}", "xaisec.experiments.engine:probe", (("seed", i), ("work", work))) for i in range(n)]


def _timed(tasks: list[Task], backend: str, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_tasks(tasks, Path(tmp), backend=backend, workers=workers, progress=False)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=16)
    ap.add_argument("--work", type=int, default=3000, help="matrix products per cell (about 2 s of one core at 3000)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray
    import torch

    torch.set_num_threads(1)  # the in-process worker: one core, like each pool or Ray worker

    rows = []
    for backend in ("local", "ray"):
        for workers in (1, 2):
            if backend == "ray":
                ray.shutdown()
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                _timed(_cells(2 * workers, 300), backend, workers)  # start every worker (busy cells overlap)
            secs = _timed(_cells(args.cells, args.work), backend, workers)
            empty = _timed(_cells(args.cells, 0), backend, workers)
            rows.append((backend, workers, secs, args.cells / secs * 60, empty / args.cells))
    ray.shutdown()
    print(f"{args.cells} cells of {args.work} matrix products each")
    print("| backend | workers | seconds | cells / minute | overhead s / cell (empty cells) |")
    print("|---|---:|---:|---:|---:|")
    for backend, workers, secs, cpm, over in rows:
        print(f"| {backend} | {workers} | {secs:.1f} | {cpm:.1f} | {over:.3f} |")
    by = {(b, w): cpm for b, w, _, cpm, _ in rows}
    for backend in ("local", "ray"):
        print(f"speedup_2_workers_{backend}: {by[(backend, 2)] / by[(backend, 1)]:.2f}")
    print(f"ray_overhead_per_cell_s: {max(r[4] for r in rows if r[0] == 'ray'):.3f}")


if __name__ == "__main__":
    main()
