import json
import logging

from xaisec.experiments.grid import Cell, cell_path, run_grid


def _write_record(out, cell, options):
    path = cell_path(out, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": {"cell": {"options": options}}, "mean": {"l1": 0.5}}))


def test_finished_cells_are_not_rerun_and_changed_options_are_reported(tmp_path, caplog):
    same = Cell("cifar10_resnet20", "mask", "adv2", options=(("interpreter_options", {"iterations": 100}),))
    other = Cell("cifar10_resnet20", "mask", "advedge", options=(("restarts", 3),))
    _write_record(tmp_path, same, [["interpreter_options", {"iterations": 100}]])
    _write_record(tmp_path, other, [])
    with caplog.at_level(logging.WARNING, logger="xaisec.experiments.grid"):
        records = run_grid([same, other], tmp_path, progress=False)  # both exist: nothing runs
    assert [r["mean"]["l1"] for r in records] == [0.5, 0.5]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and other.key in warnings[0] and "restarts" in warnings[0]
    assert "delete" in warnings[0]
