"""End-to-end tests of the ``xaisec`` command line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import shared_or_skip
from xaisec.cli.main import COMMANDS, main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "xaisec.cli.main", *args], capture_output=True, text=True,
                          timeout=600)


def test_help_lists_every_command():
    out = run_cli("--help")
    assert out.returncode == 0
    for name in ("demo", "train", "eval", "info"):
        assert name in out.stdout



@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_complete_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: xaisec {name}") and "options:" in out


def test_info_lists_models_and_data(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "cifar10_resnet20" in out and "imagenet_resnet50" in out and "pneumoniamnist" in out
    for section in ("interpreters:", "attacks:", "frameworks:", "metrics:"):
        assert section in out
    assert "gradcam" in out and "advedge+" in out and "stadv" in out and "noise_rate" in out
    assert main(["info", "bogus"]) == 2


@pytest.fixture
def toy_npz(tmp_path):
    p = tmp_path / "toy.npz"
    rng = np.random.default_rng(0)
    np.savez(p, test_images=rng.integers(0, 255, (10, 28, 28), dtype=np.uint8), test_labels=rng.integers(0, 2, (10, 1)))
    return p


def test_eval_json_on_a_file(toy_npz, tmp_path, capsys):
    from xaisec.models import build, save_safetensors

    w = save_safetensors(build("pneumonia_cnn").net, tmp_path / "w.safetensors")
    assert main(["-q", "eval", "--model", "pneumonia_cnn", "--weights", str(w), "--data", str(toy_npz),
                 "--limit", "7", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 7 and 0 <= res["accuracy"] <= 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["eval", "--model", "nope"], "unknown model"),
        (["eval", "--model", "pneumonia_cnn", "--weights", "/no/such.safetensors"], "no such weights"),
        (["eval", "--model", "pneumonia_cnn", "--data", "/no/such/dir"], "neither a file"),
        (["eval", "--model", "pneumonia_cnn", "--limit", "0"], "--limit"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line_reason(args, fragment):
    out = run_cli(*args)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.startswith("xaisec")]
    assert len(lines) == 1 and fragment in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_eval_third_party_checkpoint_on_shared_jpeg_test_split():
    ckpt = shared_or_skip("models", "cifar10-resnet20-akamaster", "resnet20-12fca82f.th")
    shared_or_skip("data", "cifar10-jpeg.tar")
    out = run_cli("-q", "eval", "--model", "cifar10_resnet20", "--weights", str(ckpt), "--data", "cifar10",
                  "--limit", "1000", "--json")
    assert out.returncode == 0, out.stderr
    # a seeded sample of 1000 test images; the full-test-set number (>= 80%) is in the README
    assert json.loads(out.stdout)["accuracy"] > 0.75


def test_train_cli_smoke(tmp_path):
    shared_or_skip("data", "pneumoniamnist", "pneumoniamnist.npz")
    out = run_cli("-q", "train", "--model", "pneumonia_cnn", "--epochs", "1", "--limit", "64", "--out",
                  str(tmp_path / "t"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "t" / "pneumonia_cnn.safetensors").exists() and (tmp_path / "t" / "pneumonia_cnn.json").exists()
