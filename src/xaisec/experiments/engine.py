"""The engine under every resumable grid: independent tasks, run here, in a process pool, or on Ray.

A :class:`Task` names a module function and its keyword arguments. The function runs wherever the backend
puts it (this process, a pool worker with one torch thread, or a Ray worker with the CPUs the task declares)
and returns its outputs: a JSON record and optional binary files. Only the driver writes, atomically and
as each task finishes, the binary files first and the record last, so a record on disk means a finished
task: a killed worker or a killed driver loses at most the tasks in flight, and the next run skips every
task whose record exists. Each record carries ``engine``: the xaisec version and a hash of the task's
kwargs (:func:`settings_hash`); on resume a record made with other settings, or an unreadable one, is re-run,
and records from another xaisec version with the same settings are kept (one warning counts them).

Backends: ``local`` (default; ``workers`` processes, or this process when ``workers`` is 1) and ``ray``
(``address``: None starts a local Ray instance with ``workers`` CPUs; ``"auto"`` or ``"HOST:PORT"`` joins a
running cluster).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import importlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xaisec.utils.checks import XaisecError
from xaisec.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Task:
    """One unit of a grid.

    Args:
        key: unique name in the grid; the record is ``<out>/<key>.json``, binary files ``<out>/<key>.<name>``.
        func: ``"package.module:function"``, called as ``function(**kwargs)``; it returns a record (a
            JSON-able dict) or ``(record, {suffix: bytes})``.
        kwargs: keyword arguments as (name, value) pairs (values must pickle).
        num_cpus, num_gpus: what the task needs; Ray schedules by it, and the task runs with
            ``max(1, int(num_cpus))`` torch threads.
    """

    key: str
    func: str
    kwargs: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    num_cpus: float = 1.0
    num_gpus: float = 0.0


def record_path(out: Path, task: Task) -> Path:
    return out / f"{task.key}.json"


def _resolve(func: str) -> Callable[..., Any]:
    module, _, name = func.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise XaisecError(f"task function {func!r} does not exist: {exc}") from exc


def execute(task: Task, threads: int | None = None) -> tuple[dict[str, Any], dict[str, bytes], float]:
    """Run one task here; returns (record, binary files, wall seconds). Writes nothing."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    out = _resolve(task.func)(**dict(task.kwargs))
    record, blobs = out if isinstance(out, tuple) else (out, {})
    return record, blobs, time.time() - t0


def default_workers(cap: int = 8) -> int:
    """Cells to run at once when the user does not say: the cores this process may use, at most ``cap``."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cap, cores))


def _execute_in_pool(task: Task) -> tuple[dict[str, Any], dict[str, bytes], float]:
    return execute(task, threads=max(1, int(task.num_cpus)))


STAMP = "engine"  # the record key holding {"xaisec": version, "settings": settings_hash(task)}


def _canonical(value: Any) -> Any:
    """A JSON-able, order-stable form of a task argument (dataclasses, tuples, sets, paths...)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__class__": type(value).__name__,
                **{f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(v) for v in value), key=repr)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value) if not isinstance(value, Path) else str(value)


def settings_hash(task: Task) -> str:
    """A stable hash (16 hex digits) of the task's kwargs: the settings that made its record."""
    text = json.dumps(_canonical(dict(task.kwargs)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stamp(task: Task) -> dict[str, str]:
    import xaisec

    return {"xaisec": xaisec.__version__, "settings": settings_hash(task)}


def write_outputs(out: Path, task: Task, record: dict[str, Any], blobs: dict[str, bytes]) -> None:
    """Write a task's binary files, then its record (the record marks the task finished), atomically. The
    written record carries :data:`STAMP` (xaisec version and settings hash); ``record`` itself is not changed."""
    for suffix, data in blobs.items():
        atomic_write_bytes(out / f"{task.key}.{suffix}", data)
    atomic_write_json(record_path(out, task), {**record, STAMP: _stamp(task)})


def pending(tasks: Iterable[Task], out: Path) -> list[Task]:
    """The tasks to run (duplicate keys are an error): no record on disk, an unreadable record (named in a
    warning), or a record stamped with other settings (listed in a warning). A record from another xaisec
    version with the same settings is kept (one warning counts them); so is a record without a stamp."""
    import xaisec

    tasks = list(tasks)
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise XaisecError(f"task keys must be unique; repeated: {', '.join(dup)}")
    todo: list[Task] = []
    changed: list[str] = []
    other_version: dict[str, int] = {}
    unstamped: dict[str, int] = {}
    for t in tasks:
        path = record_path(out, t)
        if not path.exists():
            todo.append(t)
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except (OSError, ValueError) as exc:
            log.warning("%s is not a readable record (%s); task %s is re-run", path, exc, t.key)
            todo.append(t)
            continue
        stamp = record.get(STAMP)
        if not isinstance(stamp, dict):
            made_by = record.get("versions", {}).get("xaisec") if isinstance(record.get("versions"), dict) else None
            unstamped[str(made_by or "unknown")] = unstamped.get(str(made_by or "unknown"), 0) + 1
        elif stamp.get("settings") != settings_hash(t):
            changed.append(t.key)
            todo.append(t)
        elif stamp.get("xaisec") != xaisec.__version__:
            other_version[str(stamp.get("xaisec"))] = other_version.get(str(stamp.get("xaisec")), 0) + 1
    if changed:
        shown = ", ".join(changed[:20]) + (f", ... ({len(changed)} in all)" if len(changed) > 20 else "")
        log.warning("%d records under %s were made with other settings and are re-run: %s", len(changed), out, shown)
    if other_version:
        made = ", ".join(f"{n} from xaisec {v}" for v, n in sorted(other_version.items()))
        log.warning("%d records under %s come from another xaisec version (%s; this is %s) with the same settings; "
                    "they are kept (delete them to re-run)", sum(other_version.values()), out, made,
                    xaisec.__version__)
    if unstamped:
        made = ", ".join(f"{n} from xaisec {v}" for v, n in sorted(unstamped.items()))
        other = any(v not in ("unknown", xaisec.__version__) for v in unstamped)
        log.log(logging.WARNING if other else logging.INFO,
                "%d records under %s carry no settings stamp (%s); they are kept unchecked (delete them to re-run)",
                sum(unstamped.values()), out, made)
    return todo


def run_tasks(tasks: Iterable[Task], out: str | Path, *, backend: str = "local", workers: int = 1,
              address: str | None = None, progress: bool = True, desc: str = "tasks") -> list[str]:
    """Run every task of ``tasks`` whose record is missing, unreadable or made with other settings under ``out``
    (see :func:`pending`); returns the keys run now."""
    from tqdm.auto import tqdm

    if backend not in BACKENDS:
        raise XaisecError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise XaisecError(f"workers must be an int >= 1, got {workers!r}")
    out = Path(out)
    todo = pending(tasks, out)
    log.info("%d tasks to run under %s", len(todo), out)
    done: list[str] = []
    if not todo:
        return done
    bar = tqdm(total=len(todo), desc=desc, disable=not progress)

    def finish(task: Task, result: tuple[dict[str, Any], dict[str, bytes], float]) -> None:
        record, blobs, secs = result
        write_outputs(out, task, record, blobs)
        done.append(task.key)
        bar.set_postfix_str(f"{task.key} {secs:.0f}s")
        bar.update(1)

    try:
        if backend == "ray":
            _run_ray(todo, finish, workers=workers, address=address)
        elif workers == 1:
            for task in todo:
                finish(task, execute(task))
        else:
            with cf.ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_execute_in_pool, t): t for t in todo}
                for f in cf.as_completed(futures):
                    finish(futures[f], f.result())
    finally:
        bar.close()
    return done


def ray_init(workers: int, address: str | None) -> Any:
    """Start (address None) or join a Ray instance; a clear error when Ray is missing or nobody answers."""
    try:
        import ray
    except ImportError as exc:
        raise XaisecError("the ray backend needs Ray: pip install -c constraints.txt 'ray>=2.9' "
                          "(or use --backend local)") from exc
    if ray.is_initialized():
        return ray
    if address not in (None, "auto"):
        _check_answers(address)
    try:
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a new local instance" if address is None else f"the cluster at {address}"
        raise XaisecError(f"could not start or reach {where}: {exc}; check `ray status`, start one with "
                          "`ray start --head`, or use --backend local") from exc
    return ray


def _check_answers(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at ``HOST:PORT`` (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise XaisecError(f"could not start or reach the cluster at {address}: nothing answers there ({exc}); "
                          "check `ray status` on the head node, or use --backend local") from exc


def _run_ray(todo: list[Task], finish: Callable[[Task, Any], None], *, workers: int, address: str | None) -> None:
    ray = ray_init(workers, address)
    remote = ray.remote(max_retries=3)(_execute_in_pool)
    refs = {remote.options(num_cpus=t.num_cpus, num_gpus=t.num_gpus).remote(t): t for t in todo}
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            finish(refs.pop(ref), ray.get(ref))


def probe(*, seconds: float = 0.0, seed: int = 0, crash_once: str | None = None, work: int = 0) -> dict[str, Any]:
    """A stand-in task for checking a backend and timing its overhead per task: sleeps ``seconds``, multiplies
    ``work`` pairs of 256 x 256 matrices (CPU-bound work), and returns a seeded random number. ``crash_once``:
    a marker path; the first call that finds it missing creates it and kills its own process, as a dying worker
    would (never use it with the in-process backend)."""
    import os

    import torch

    if crash_once is not None and not Path(crash_once).exists():
        Path(crash_once).touch()
        os._exit(3)
    time.sleep(seconds)
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(256, 256, generator=g)
    for _ in range(work):
        a = torch.tanh(a @ a / 16)
    return {"seed": seed, "value": float(torch.randn(1000, generator=g, dtype=torch.float64).sum())}
