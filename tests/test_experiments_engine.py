"""The grid engine: resumable tasks on the local and Ray backends, and what a killed worker or driver leaves."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xaisec.experiments.engine import Task, default_workers, pending, record_path, run_tasks
from xaisec.utils.checks import XaisecError

PROBE = "xaisec.experiments.engine:probe"


def _tasks(n: int, seconds: float = 0.0, **extra) -> list[Task]:
    return [Task(f"t{i}", PROBE, (("seconds", seconds), ("seed", i), *extra.items())) for i in range(n)]


def _records(out: Path, tasks: list[Task]) -> dict[str, dict]:
    return {t.key: json.loads(record_path(out, t).read_text()) for t in tasks}


def test_local_runs_every_task_once_and_resumes(tmp_path):
    tasks = _tasks(3)
    assert sorted(run_tasks(tasks, tmp_path, progress=False)) == ["t0", "t1", "t2"]
    first = _records(tmp_path, tasks)
    assert run_tasks(tasks, tmp_path, progress=False) == []  # everything on disk: nothing runs
    record_path(tmp_path, tasks[1]).unlink()
    assert run_tasks(tasks, tmp_path, progress=False) == ["t1"]
    assert _records(tmp_path, tasks) == first  # same seed, same numbers


def test_pool_gives_the_same_numbers_as_in_process(tmp_path):
    tasks = _tasks(4)
    run_tasks(tasks, tmp_path / "a", progress=False)
    run_tasks(tasks, tmp_path / "b", workers=2, progress=False)
    assert _records(tmp_path / "a", tasks) == _records(tmp_path / "b", tasks)


def test_default_workers_are_the_usable_cores_capped():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_workers() == min(8, cores)
    assert default_workers(cap=1) == 1


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(XaisecError, match="unknown backend"):
        run_tasks(_tasks(1), tmp_path, backend="spark")
    with pytest.raises(XaisecError, match="workers"):
        run_tasks(_tasks(1), tmp_path, workers=0)
    with pytest.raises(XaisecError, match="unique"):
        pending([Task("a", PROBE), Task("a", PROBE)], tmp_path)
    with pytest.raises(XaisecError, match="does not exist"):
        run_tasks([Task("a", "xaisec.nowhere:f")], tmp_path, progress=False)


def test_a_killed_pool_worker_leaves_no_partial_file_and_the_rerun_completes(tmp_path):
    marker = tmp_path / "crashed"
    tasks = [*_tasks(2), Task("dies", PROBE, (("crash_once", str(marker)),))]
    with pytest.raises(Exception):  # noqa: B017 - the pool reports its dead worker as BrokenProcessPool
        run_tasks(tasks, tmp_path / "out", workers=2, progress=False)
    assert not record_path(tmp_path / "out", tasks[2]).exists()
    assert not [p for p in (tmp_path / "out").glob("*") if p.suffix not in (".json",)]  # no temp files left
    run_tasks(tasks, tmp_path / "out", workers=2, progress=False)
    assert all(record_path(tmp_path / "out", t).exists() for t in tasks)


_DRIVER = """
import sys
from xaisec.experiments.engine import Task, run_tasks
tasks = [Task(f"t{i}", "xaisec.experiments.engine:probe", (("seconds", 0.4), ("seed", i))) for i in range(8)]
run_tasks(tasks, sys.argv[1], backend=sys.argv[2], workers=1, progress=False)
"""


def _kill_driver_then_resume(tmp_path: Path, backend: str) -> None:
    out = tmp_path / backend
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(out), backend])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.json"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(out.glob("*.json")))
    assert 2 <= written < 8, f"the driver should have been killed mid-grid ({written} of 8 records)"
    for p in out.glob("*.json"):
        json.loads(p.read_text())  # every record on disk is whole
    tasks = [Task(f"t{i}", PROBE, (("seconds", 0.4), ("seed", i))) for i in range(8)]
    subprocess.run([sys.executable, "-c", _DRIVER, str(out), backend], check=True)
    run_tasks(tasks, tmp_path / "reference", progress=False)
    assert _records(out, tasks) == _records(tmp_path / "reference", tasks)


def test_a_driver_killed_with_sigkill_resumes_local(tmp_path):
    _kill_driver_then_resume(tmp_path, "local")


def test_a_grid_killed_at_three_random_moments_ends_with_the_records_of_an_uninterrupted_one(tmp_path):
    out, rng, written = tmp_path / "cut", random.Random(25), [0]
    for _ in range(3):  # three SIGKILLs at seeded random moments inside a cell, each followed by a resume
        proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(out), "local"])
        deadline = time.time() + 120
        while time.time() < deadline and len(list(out.glob("*.json"))) <= written[-1]:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere in the next 0.4 s cell
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for p in out.glob("*"):
            assert p.suffix == ".json", f"a killed driver left {p.name}"
            json.loads(p.read_text())  # every record on disk is whole
        written.append(len(list(out.glob("*.json"))))
    assert written[1] < written[2] < written[3] < 8, f"every kill should interrupt a running grid ({written[1:]})"
    subprocess.run([sys.executable, "-c", _DRIVER, str(out), "local"], check=True)
    tasks = [Task(f"t{i}", PROBE, (("seconds", 0.4), ("seed", i))) for i in range(8)]
    run_tasks(tasks, tmp_path / "whole", progress=False)
    assert _records(out, tasks) == _records(tmp_path / "whole", tasks)


def test_an_address_nobody_answers_is_a_clear_error(tmp_path):
    pytest.importorskip("ray", reason="the ray backend needs Ray (pip install ray)")
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    with pytest.raises(XaisecError, match=r"could not start or reach the cluster at 127\.0\.0\.1:1"):
        run_tasks(_tasks(1), tmp_path, backend="ray", address="127.0.0.1:1", progress=False)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="the ray backend needs Ray (pip install ray)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_same_numbers_as_local_and_retries_a_killed_worker(tmp_path, ray_local):
    tasks = _tasks(3)
    run_tasks(tasks, tmp_path / "local", progress=False)
    marker = tmp_path / "crashed"
    dying = Task("dies", PROBE, (("seed", 7), ("crash_once", str(marker))))
    run_tasks([*tasks, dying], tmp_path / "ray", backend="ray", workers=2, progress=False)
    assert marker.exists()  # the first attempt died; Ray retried it and the driver wrote its record once
    recs = _records(tmp_path / "ray", [*tasks, dying])
    assert {k: recs[k] for k in ("t0", "t1", "t2")} == _records(tmp_path / "local", tasks)
    assert recs["dies"]["seed"] == 7


@pytest.mark.slow
def test_a_driver_killed_with_sigkill_resumes_on_ray(tmp_path):
    pytest.importorskip("ray", reason="the ray backend needs Ray (pip install ray)")
    _kill_driver_then_resume(tmp_path, "ray")


# ---- resuming a folder from another run: settings stamps, other versions, corrupt records (issue 25) -----------
def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_records_carry_the_version_and_a_settings_hash(tmp_path):
    import xaisec
    from xaisec.experiments.engine import STAMP, settings_hash

    tasks = _tasks(2)
    run_tasks(tasks, tmp_path, progress=False)
    recs = _records(tmp_path, tasks)
    assert recs["t0"][STAMP] == {"xaisec": xaisec.__version__, "settings": settings_hash(tasks[0])}
    assert recs["t0"][STAMP]["settings"] != recs["t1"][STAMP]["settings"]  # seeds differ
    same = Task("other_key", PROBE, (("seconds", 0.0), ("seed", 0)))
    assert settings_hash(same) == settings_hash(tasks[0])  # kwargs only, not the key
    assert settings_hash(Task("x", PROBE, (("seed", 0), ("seconds", 0.0)))) == settings_hash(tasks[0])  # order


def test_the_settings_hash_is_stable_across_processes():
    from xaisec.experiments.grid import Cell

    code = ("from xaisec.experiments.engine import Task, settings_hash\n"
            "from xaisec.experiments.grid import Cell\n"
            "print(settings_hash(Task('k', 'm:f', (('cell', Cell('m', 'cam', 'adv2', options=(('o', {'b': 1, 'a': "
            "{2, 1}}),))), ('data', 'cifar10')))))\n")
    from xaisec.experiments.engine import settings_hash

    here = settings_hash(Task("k", "m:f", (("cell", Cell("m", "cam", "adv2", options=(("o", {"a": {1, 2}, "b": 1}),))),
                                           ("data", "cifar10"))))
    # str hashing is randomised per process (set order too); the settings hash must not be
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == here
    other = settings_hash(Task("k", "m:f", (("cell", Cell("m", "cam", "adv2", n=50)), ("data", "cifar10"))))
    assert other != here


def test_a_task_whose_settings_changed_is_rerun_and_named(tmp_path, caplog):
    tasks = _tasks(3)
    run_tasks(tasks, tmp_path, progress=False)
    before = _records(tmp_path, tasks)
    changed = [tasks[0], Task("t1", PROBE, (("seconds", 0.0), ("seed", 11))), tasks[2]]
    with caplog.at_level(logging.INFO, logger="xaisec.experiments.engine"):
        assert run_tasks(changed, tmp_path, progress=False) == ["t1"]
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "1 records" in warnings[0] and "other settings" in warnings[0]
    assert warnings[0].endswith(": t1")
    after = _records(tmp_path, changed)
    assert after["t1"]["seed"] == 11 and after["t1"]["value"] != before["t1"]["value"]
    assert after["t0"] == before["t0"] and after["t2"] == before["t2"]
    caplog.clear()
    assert run_tasks(changed, tmp_path, progress=False) == []  # now everything matches
    assert _warnings(caplog) == []


def test_records_of_another_version_with_the_same_settings_are_kept_with_one_warning(tmp_path, caplog):
    from xaisec.experiments.engine import STAMP

    tasks = _tasks(3)
    run_tasks(tasks, tmp_path, progress=False)
    for t in tasks[:2]:  # as if written by an older xaisec
        rec = json.loads(record_path(tmp_path, t).read_text())
        rec[STAMP]["xaisec"] = "0.0.1"
        rec["value"] = 123.0  # a marker: a re-run would overwrite it
        record_path(tmp_path, t).write_text(json.dumps(rec))
    with caplog.at_level(logging.INFO, logger="xaisec.experiments.engine"):
        assert run_tasks(tasks, tmp_path, progress=False) == []
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "2 records" in warnings[0] and "2 from xaisec 0.0.1" in warnings[0] and "kept" in warnings[0]
    assert all(r["value"] == 123.0 for r in _records(tmp_path, tasks[:2]).values())


def test_records_without_a_stamp_are_kept(tmp_path, caplog):
    tasks = _tasks(2)
    for t in tasks:
        record_path(tmp_path, t).write_text(json.dumps({"seed": 99, "value": 1.0}))
    with caplog.at_level(logging.INFO, logger="xaisec.experiments.engine"):
        assert run_tasks(tasks, tmp_path, progress=False) == []
    assert _warnings(caplog) == []  # no version to compare: a note at INFO level
    assert any("2 records" in r.getMessage() and "no settings stamp" in r.getMessage() for r in caplog.records)
    record_path(tmp_path, tasks[0]).write_text(json.dumps({"versions": {"xaisec": "0.0.1"}, "value": 1.0}))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xaisec.experiments.engine"):
        assert run_tasks(tasks, tmp_path, progress=False) == []
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "1 from xaisec 0.0.1" in warnings[0]


def test_a_corrupt_record_is_named_and_rerun(tmp_path, caplog):
    tasks = _tasks(3)
    run_tasks(tasks, tmp_path, progress=False)
    reference = _records(tmp_path, tasks)
    record_path(tmp_path, tasks[0]).write_text('{"seed": 0, "val')  # cut off mid-write by another tool
    record_path(tmp_path, tasks[2]).write_bytes(b"\xff\xfe\x00garbage")
    with caplog.at_level(logging.WARNING, logger="xaisec.experiments.engine"):
        assert run_tasks(tasks, tmp_path, progress=False) == ["t0", "t2"]
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert str(record_path(tmp_path, tasks[0])) in warnings[0] and "not a readable record" in warnings[0]
    assert str(record_path(tmp_path, tasks[2])) in warnings[1]
    assert _records(tmp_path, tasks) == reference
    record_path(tmp_path, tasks[1]).write_text("[1, 2]")  # valid JSON, but not a record
    assert run_tasks(tasks, tmp_path, progress=False) == ["t1"]
