import json
import os

import pytest
import torch

from xaisec.utils.io import atomic_write_bytes, atomic_write_json


def test_atomic_json_round_trip_with_tensors(tmp_path):
    p = atomic_write_json(tmp_path / "sub" / "r.json", {"a": torch.tensor([1.5, 2.0]), "b": tmp_path})
    assert json.loads(p.read_text()) == {"a": [1.5, 2.0], "b": str(tmp_path)}
    assert [f.name for f in p.parent.iterdir()] == ["r.json"]  # no temporary files left


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "r.bin"
    atomic_write_bytes(p, b"old")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"old"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["r.bin"]


def test_unserialisable_object_raises(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"f": object()})
    assert not (tmp_path / "x.json").exists()


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_bytes(tmp_path / "r.bin", b"x")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644


def test_json_never_holds_nan(tmp_path):
    import json as _json

    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_write_json, to_json

    p = atomic_write_json(tmp_path / "a.json", {"lr": float("nan"), "v": [1.0, float("inf")], "t": torch.tensor(
        [float("-inf")])})
    text = p.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert _json.loads(text) == {"lr": None, "v": [1.0, None], "t": [None]}
    with pytest.raises(XaisecError, match="NaN"):
        to_json({"lr": float("nan")}, nan="error")


def test_check_out_dir_and_replace_together(tmp_path):
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_replace_together, check_out_dir

    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(XaisecError, match="existing file"):
        check_out_dir(f)
    with pytest.raises(XaisecError, match="is a file"):
        check_out_dir(f / "sub")
    assert check_out_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    paths = atomic_replace_together({tmp_path / "o" / "a.json": b"1", tmp_path / "o" / "b.html": b"2"})
    assert [p.read_bytes() for p in paths] == [b"1", b"2"]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.json", "b.html"]
