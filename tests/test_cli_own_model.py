"""The command line on a user's own model (TorchScript, factory, folder with card) and image folder."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import synthetic_shapes
from tests.test_models_loading import FACTORY
from xaisec.cli.main import main
from xaisec.models import save_safetensors
from xaisec.models.loading import export_torchscript, save_model_folder

COLOURS = ["red", "green", "blue", "yellow", "cyan"]
NORM = ["--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--input-size", "3,16,16"]


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    """40 synthetic 16x16 images as <colour>/<image>.png; a few stored larger, grey or RGBA, odd names."""
    root = tmp_path_factory.mktemp("shapes")
    x, y = synthetic_shapes(40, seed=1)
    arr = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for c in COLOURS:
        (root / c).mkdir()
    for i, (a, label) in enumerate(zip(arr, y.tolist(), strict=True)):
        img = Image.fromarray(a)
        if i % 10 == 3:
            img.resize((32, 32), Image.NEAREST).save(root / COLOURS[label] / f"big é {i}.PNG")
        elif i % 10 == 7:
            img.convert("RGBA").save(root / COLOURS[label] / f"rgba_{i}.png")
        else:
            img.save(root / COLOURS[label] / f"{i:03d}.png")
    (root / "red" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def ways_in(tmp_path_factory, shapes_folder, request):
    """The same trained TinyNet as a TorchScript file, a factory with weights, and a folder with a card."""
    trained = request.getfixturevalue("trained_tiny")
    d = tmp_path_factory.mktemp("models")
    ts, _ = export_torchscript(trained, d / "tiny.pt")
    (d / "net.py").write_text(FACTORY)
    w = save_safetensors(trained.net, d / "w.safetensors")
    folder = d / "tiny_dir"
    folder.mkdir()
    (folder / "net.py").write_text(FACTORY)
    save_model_folder(trained, folder, factory="net.py:make")
    return {
        "torchscript": ["--model", str(ts)],
        "factory": ["--model", f"{d / 'net.py'}:make", "--weights", str(w), "--classes", ",".join(COLOURS), *NORM],
        "folder": ["--model", str(folder)],
    }


def _eval(args, data, capsys):
    assert main(["-q", "eval", *args, "--data", str(data), "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_every_way_in_gives_the_same_accuracy(ways_in, shapes_folder, trained_tiny, capsys):
    from xaisec.cli.common import data_from_args
    from xaisec.training.evaluate import accuracy

    class A:
        data, split, image_size, resize_mode, strict, quiet = str(shapes_folder), "test", None, "crop", False, True

    expected = accuracy(trained_tiny, data_from_args(A, trained_tiny))
    for kind, args in ways_in.items():
        res = _eval(args, shapes_folder, capsys)
        assert res["images"] == 40, kind
        assert res["accuracy"] == pytest.approx(expected, abs=1e-6), kind


@pytest.mark.parametrize("kind", ["torchscript", "factory", "folder"])
def test_explain_and_attack_run_and_report_the_folder_classes(kind, ways_in, shapes_folder, tmp_path, capsys):
    args = ways_in[kind]
    assert main(["-q", "explain", *args, "--data", str(shapes_folder), "--n", "2", "--interpreter", "gradcam",
                 "--out", str(tmp_path / "ex")]) == 0
    assert len(list((tmp_path / "ex").glob("*.png"))) == 3
    assert main(["-q", "attack", *args, "--data", str(shapes_folder), "--n", "2", "--interpreter", "gradcam",
                 "--attack", "adv2", "--steps-scale", "0.01", "--out", str(tmp_path / "at")]) == 0
    rec = json.loads((tmp_path / "at" / "results.json").read_text())
    assert rec["config"]["n"] == 2
    html = (tmp_path / "at" / "report.html").read_text()
    assert any(c in html for c in COLOURS)


def test_zoo_name_still_works(capsys):
    res = _eval(["--model", "cifar10_resnet20"], "samples:cifar10", capsys)
    assert res["images"] == 20 and res["accuracy"] > 0.5


def test_train_an_architecture_on_a_folder_then_load_the_folder(shapes_folder, tmp_path, capsys):
    out = tmp_path / "trained"
    assert main(["-q", "train", "--arch", "pneumonia_cnn", "--data", str(shapes_folder), "--image-size", "16",
                 "--epochs", "1", "--batch-size", "16", "--no-amp", "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["classes"] == sorted(COLOURS) and card["input_size"] == [3, 16, 16] and card["arch"] == "pneumonia_cnn"
    assert card["data"]["train_images"] + card["data"]["test_images"] == 40  # seeded 0.8 split, nothing lost
    capsys.readouterr()
    res = _eval(["--model", str(out), "--split", "0.8"], shapes_folder, capsys)
    assert res["images"] == card["data"]["test_images"]


# ---- bad input: exit 2 and one line ---------------------------------------------------------------------


def _one_line_error(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    lines = [ln for ln in err if "error" in ln]
    assert len(lines) == 1 and "Traceback" not in "\n".join(err)
    return lines[0]


def test_image_size_must_be_positive(shapes_folder, capsys):
    msg = _one_line_error(["eval", "--model", "cifar10_resnet20", "--data", str(shapes_folder), "--image-size", "0"],
                          capsys)
    assert "image size must be > 0" in msg


def test_folder_classes_differing_from_the_model_are_an_error(shapes_folder, capsys):
    msg = _one_line_error(["-q", "eval", "--model", "cifar10_resnet20", "--data", str(shapes_folder)], capsys)
    assert "not classes of the model" in msg and "red" in msg


def test_class_list_not_matching_the_output(ways_in, shapes_folder, capsys):
    args = [a if a != ",".join(COLOURS) else "a,b" for a in ways_in["factory"]]
    msg = _one_line_error(["-q", "eval", *args, "--data", str(shapes_folder)], capsys)
    assert "2 class names but the model outputs 5 logits" in msg


def test_corrupt_torchscript_and_bad_factory(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"junk" * 10)
    assert "not a readable TorchScript" in _one_line_error(["eval", "--model", str(tmp_path / "bad.pt"),
                                                            "--data", "samples:cifar10"], capsys)
    (tmp_path / "f.py").write_text("def make():\n    return 'no'\n")
    assert "not a torch.nn.Module" in _one_line_error(["eval", "--model", f"{tmp_path / 'f.py'}:make",
                                                       "--data", "samples:cifar10"], capsys)


def test_pickled_checkpoint_refused(tmp_path, capsys):
    import pickle

    from tests.test_models_loading import _Payload

    p = _Payload()
    p.marker = str(tmp_path / "ran")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": p}, f)
    (tmp_path / "net.py").write_text(FACTORY)
    _one_line_error(["eval", "--model", f"{tmp_path / 'net.py'}:make", "--weights", str(tmp_path / "evil.pt"),
                     "--data", "samples:cifar10"], capsys)
    assert not (tmp_path / "ran").exists()
    torch.manual_seed(0)
