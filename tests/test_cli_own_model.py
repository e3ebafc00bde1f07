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


# ---- universal, detect and bench take the same model specs (issue 19) -----------------------------------------
def _results(path):
    return json.loads((path / "results.json").read_text())


def test_universal_trains_on_one_way_in_and_applies_to_another(ways_in, shapes_folder, tmp_path, capsys):
    data = ["--train-data", str(shapes_folder), "--train-split", "0.5", "--test-split", "0.5", "--n-train", "16",
            "--n-test", "12", "--interpreter", "gradcam", "--batch-size", "8", "--seed", "3"]
    out = tmp_path / "juap"
    assert main(["-q", "universal", *ways_in["torchscript"], *data, "--method", "juap", "--steps", "2", "--ngf", "4",
                 "--eps", "16/255", "--out", str(out)]) == 0
    for name in ("perturbation.safetensors", "results.json", "report.html"):
        assert (out / name).is_file()
    trained = _results(out)
    assert trained["mode"] == "train" and trained["n_test"] == 12 and trained["linf"] <= 16 / 255 + 1e-6
    applied = tmp_path / "applied"
    assert main(["-q", "universal", "--apply", str(out / "perturbation.safetensors"), *ways_in["factory"], *data,
                 "--out", str(applied)]) == 0
    again = _results(applied)
    assert again["mode"] == "apply" and again["model"].endswith("net.py:make")
    # the same weights behind another way in: the same test images, the same numbers
    for k in ("fooling_ratio", "l1", "iou"):
        assert again["mean"][k] == pytest.approx(trained["mean"][k], abs=1e-5), k
    assert any(c in (applied / "report.html").read_text() for c in COLOURS)


def test_universal_patch_writes_its_files_and_transfers(ways_in, shapes_folder, tmp_path, capsys):
    from xaisec.universal.patch import UniversalPatch

    data = ["--train-data", str(shapes_folder), "--train-split", "0.5", "--test-split", "0.5", "--n-train", "20",
            "--n-test", "20", "--interpreter", "gradcam", "--batch-size", "10"]
    out = tmp_path / "patch"
    assert main(["-q", "universal", "--method", "patch", *ways_in["factory"], *data, "--patch-mode", "hide",
                 "--patch-size", "0.375", "--patch-position", "bottom-left", "--patch-step-size", "0.05",
                 "--epochs", "2", "--target-class", "2", "--out", str(out)]) == 0
    for name in ("patch.safetensors", "patch.json", "results.json", "report.html"):
        assert (out / name).is_file(), name
    rec = _results(out)
    patch = UniversalPatch.load(out / "patch.safetensors")
    assert patch.content.shape == (3, 6, 6) and patch.map_mode == "hide" and patch.target_class == 2
    assert rec["method"] == "patch" and rec["target_name"] == "blue" and rec["position"] == "bottom-left"
    assert len(rec["history"]["epoch"]) == 2 and rec["config"]["epochs"] == 2
    # target-class images are left out of the score
    assert rec["n_test"] == len(rec["per_image"]) and all(r["label"] != 2 for r in rec["per_image"])
    assert 0 <= rec["mean"]["success"] <= 1 and 0 <= rec["mean"]["patch_mass"] <= 1
    assert "hide" in capsys.readouterr().out
    applied = tmp_path / "patch_ts"
    assert main(["-q", "universal", "--apply", str(out / "patch.safetensors"), *ways_in["torchscript"], *data,
                 "--out", str(applied)]) == 0
    again = _results(applied)
    assert again["mode"] == "apply" and again["method"] == "patch" and not (applied / "patch.safetensors").exists()
    for k in ("success", "patch_mass", "l1"):
        assert again["mean"][k] == pytest.approx(rec["mean"][k], abs=1e-5), k


def test_universal_patch_flags_are_checked(ways_in, shapes_folder, tmp_path, capsys):
    base = ["-q", "universal", *ways_in["torchscript"], "--train-data", str(shapes_folder), "--out", str(tmp_path)]
    assert "--patch-size apply to --method patch only" in _one_line_error([*base, "--patch-size", "0.3"], capsys)
    assert "--eps does not apply to --method patch" in _one_line_error(
        [*base, "--method", "patch", "--eps", "8/255"], capsys)
    assert "must be a corner name or ROW,COL" in _one_line_error(
        [*base, "--method", "patch", "--patch-position", "1,x"], capsys)


def test_detect_takes_any_model_and_gives_the_same_thresholds(ways_in, shapes_folder, tmp_path, capsys):
    pytest.importorskip("sklearn")
    thresholds = {}
    for kind in ("torchscript", "factory"):
        out = tmp_path / kind
        assert main(["-q", "detect", "--detector", "squeeze", *ways_in[kind], "--data", str(shapes_folder),
                     "--squeezers", "median:2,bits:5", "--attack", "pgd", "--interpreters", "gradcam", "--train", "20",
                     "--eval", "4", "--steps-scale", "0.05", "--out", str(out)]) == 0
        rec = _results(out)
        assert rec["n_calibration"] == 20 and rec["model"] == ways_in[kind][1] and 1 <= rec["n_eval"] <= 4
        assert (out / "detector.json").is_file() and "<img" in (out / "report.html").read_text()
        thresholds[kind] = rec["thresholds"]
    assert thresholds["torchscript"] == pytest.approx(thresholds["factory"], abs=1e-5)


def test_detect_ensemble_on_a_model_folder(ways_in, shapes_folder, tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "ens"
    assert main(["-q", "detect", "--detector", "ensemble", *ways_in["folder"], "--data", str(shapes_folder),
                 "--interpreters", "grad,cam", "--attack", "pgd", "--train", "16", "--eval", "8", "--epochs", "2",
                 "--steps-scale", "0.1", "--batch-size", "16", "--out", str(out)]) == 0
    rec = _results(out)
    assert rec["detector"] == "ensemble" and rec["n_sources"] >= 8 and 0 <= rec["test"]["auc"] <= 1
    assert (out / "detector").exists()


def test_bench_reproduce_on_own_models(ways_in, shapes_folder, tmp_path, capsys):
    from xaisec.experiments.grid import model_label

    grid = ["-q", "bench", "reproduce", "--interpreters", "gradcam", "--attacks", "pgd,adv2", "--frameworks", "pgd",
            "--n-small", "3", "--steps-scale", "0.02", "--data", str(shapes_folder)]
    ts, folder = ways_in["torchscript"][1], ways_in["folder"][1]
    out = tmp_path / "rep"
    assert main([*grid, "--models", f"{ts},{folder}", "--out", str(out)]) == 0
    cells = sorted((out / "cells").glob("*.json"))
    assert [c.name for c in cells] == sorted(f"{model_label(m)}__gradcam__{a}__pgd.json"
                                             for m in (ts, folder) for a in ("pgd", "adv2"))
    assert all("/" not in model_label(m) and ":" not in model_label(m) for m in (ts, folder))
    recs = {c.name: json.loads(c.read_text()) for c in cells}
    md = (out / "results.md").read_text()
    assert f"| {ts} | gradcam | adv2 | pgd | 3 |" in md and f"| {folder} | gradcam | pgd | pgd | 3 |" in md
    for a in ("pgd", "adv2"):  # the same trained model as TorchScript and as a folder: the same numbers
        r_ts = recs[f"{model_label(ts)}__gradcam__{a}__pgd.json"]
        r_dir = recs[f"{model_label(folder)}__gradcam__{a}__pgd.json"]
        assert r_ts["mean"]["l1"] == pytest.approx(r_dir["mean"]["l1"], abs=1e-5)
    stamps = [c.stat().st_mtime_ns for c in cells]
    assert main([*grid, "--models", f"{ts},{folder}", "--out", str(out)]) == 0
    assert [c.stat().st_mtime_ns for c in cells] == stamps  # resumed: nothing re-run
    # a factory with --weights and card fields, computed in worker processes (the cell carries the spec string)
    fac = tmp_path / "fac"
    assert main([*grid, "--attacks", "adv2", "--models", ways_in["factory"][1], *ways_in["factory"][2:],
                 "--workers", "2", "--out", str(fac)]) == 0
    (cell,) = (fac / "cells").glob("*.json")
    rec = json.loads(cell.read_text())
    assert rec["config"]["cell"]["model"] == ways_in["factory"][1]
    assert dict(rec["config"]["cell"]["model_options"])["classes"] == COLOURS
    assert rec["mean"]["l1"] == pytest.approx(recs[f"{model_label(ts)}__gradcam__adv2__pgd.json"]["mean"]["l1"],
                                              abs=1e-5)


def test_bench_model_flags_need_models(capsys, tmp_path):
    msg = _one_line_error(["-q", "bench", "reproduce", "--weights", "w.safetensors", "--out", str(tmp_path)], capsys)
    assert "--weights need --models" in msg
    msg = _one_line_error(["-q", "bench", "reproduce", "--models", str(tmp_path / "nothing.pt"),
                           "--out", str(tmp_path)], capsys)
    assert "nothing.pt" in msg
