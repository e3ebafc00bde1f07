"""End-to-end tests of ``xaisec explain``."""

import numpy as np
from PIL import Image

from tests.test_cli import run_cli
from xaisec.models import build, save_safetensors


def test_explain_image_files_writes_overlays_and_a_grid(tmp_path):
    w = save_safetensors(build("cifar10_resnet20").net, tmp_path / "w.safetensors")
    files = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(p)
        files.append(str(p))
    out = tmp_path / "maps"
    res = run_cli("-q", "explain", *files, "--weights", str(w), "--interpreter", "grad", "--out", str(out))
    assert res.returncode == 0, res.stderr
    pngs = sorted(p.name for p in out.glob("img*_grad_*.png"))
    assert len(pngs) == 3 and (out / "grid_grad.png").exists()
    with Image.open(out / "grid_grad.png") as im:
        assert im.size[0] > im.size[1] > 0


def test_explain_data_set(tmp_path):
    w = save_safetensors(build("cifar10_resnet20").net, tmp_path / "w.safetensors")
    res = run_cli("-q", "explain", "--data", "samples:cifar10", "--n", "5", "--weights", str(w), "--interpreter",
                  "gradcam", "--target", "label", "--out", str(tmp_path / "m"))
    assert res.returncode == 0, res.stderr
    assert len(list((tmp_path / "m").glob("*_gradcam_*.png"))) == 5


def test_explain_bad_input(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    res = run_cli("explain", str(bad), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "not a readable image" in res.stderr
    res = run_cli("explain", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "either IMAGE files or --data" in res.stderr
