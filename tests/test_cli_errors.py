"""End-to-end tests of issue 17: correct numbers and one-line errors, calling ``xaisec.cli.main.main``.

Tiny data: the 20 bundled CIFAR-10 sample images (the shipped ResNet-20 classifies all of them correctly),
written out as class folders where a test needs a folder.
"""

import json
import logging
import os
import tarfile

import pytest
import torch
from PIL import Image

from xaisec.cli.main import main
from xaisec.data import samples
from xaisec.data.paths import CIFAR10_CLASSES
from xaisec.models import build, save_safetensors


class Opaque:
    """Not a tensor: torch.load(weights_only=True) refuses to unpickle it."""


FAST_ATTACK = ["--samples", "cifar10", "--steps-scale", "0.02", "--attack", "pgd", "--interpreter", "gradcam"]


def cli(capsys, *argv):
    """Run the command line in-process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err):
    """The error lines of stderr (argparse prints a usage line first); never a traceback."""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def sample_set():
    return samples("cifar10")


def write_folder(root, ds, keep=None):
    """The sample images as ``root/<class>/<i>.png``, only the classes in ``keep`` when given."""
    for i in range(len(ds)):
        name = CIFAR10_CLASSES[int(ds.labels[i])]
        if keep is not None and name not in keep:
            continue
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(root / name / f"{i:02d}.png")
    return root


# -- 1. image folders are labelled by the model's class names -------------------------------------------------
def test_folder_with_eight_classes_scores_like_the_samples(tmp_path, capsys, sample_set):
    folder = write_folder(tmp_path / "data", sample_set)
    assert len(list(folder.iterdir())) == 8  # 8 of the 10 classes present
    code, out, err = cli(capsys, "eval", "--data", folder, "--json")
    assert code == 0, err
    ref_code, ref_out, _ = cli(capsys, "eval", "--data", "samples:cifar10", "--json")
    assert ref_code == 0
    assert json.loads(out)["accuracy"] == json.loads(ref_out)["accuracy"] == 1.0


def test_subset_folder_cat_and_ship(tmp_path, capsys, sample_set):
    folder = write_folder(tmp_path / "data", sample_set, keep={"cat", "ship"})
    code, out, err = cli(capsys, "eval", "--data", folder, "--json")
    assert code == 0, err
    assert json.loads(out)["images"] == 6 and json.loads(out)["accuracy"] == 1.0


def test_unknown_folder_name_lists_both_sets(tmp_path, capsys, sample_set):
    folder = write_folder(tmp_path / "data", sample_set, keep={"cat", "ship"})
    (folder / "ship").rename(folder / "boat")
    code, _, err = cli(capsys, "eval", "--data", folder)
    line = one_line_error(err)
    assert code == 2 and "boat" in line and "[boat, cat]" in line and "airplane" in line


def test_attack_on_a_subset_folder_keeps_true_labels(tmp_path, capsys, sample_set):
    folder = write_folder(tmp_path / "data", sample_set, keep={"cat", "ship"})
    out = tmp_path / "out"
    code, _, err = cli(capsys, "-q", "attack", "--data", folder, "--n", 3, "--steps-scale", "0.02", "--attack",
                       "pgd", "--out", out)
    assert code == 0, err
    rec = json.loads((out / "results.json").read_text())
    assert rec["n"] == 3 and {r["label_name"] for r in rec["images"]} <= {"cat", "ship"}


# -- 2. images already in the target class are not attacked -----------------------------------------------------
def test_targeted_attack_drops_images_already_in_the_target_class(tmp_path, capsys, caplog, sample_set):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        code, _, err = cli(capsys, "-q", "attack", *FAST_ATTACK, "--n", 6, "--target-class", 6, "--out", out)
    assert code == 0, err
    rec = json.loads((out / "results.json").read_text())
    # the seeded sample of 6 correctly classified images holds some frogs (class 6): they are not counted
    dropped = rec["config"]["dropped_already_target"]
    assert dropped > 0 and rec["n"] == 6 - dropped
    assert all(r["label"] != 6 for r in rec["images"])
    assert f"not attacking {dropped} of 6" in caplog.text
    # results.json and report.html come from the same run, written together
    html = (out / "report.html").read_text()
    assert rec["run_id"] in html and "L-inf &lt;= 8/255" in html
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_targeted_attack_refuses_when_every_image_is_the_target(tmp_path, capsys, sample_set):
    folder = write_folder(tmp_path / "data", sample_set, keep={"frog"})
    code, _, err = cli(capsys, "attack", "--data", folder, "--n", 2, "--steps-scale", "0.02", "--attack", "pgd",
                       "--target-class", 6, "--out", tmp_path / "o")
    assert code == 2 and "already labelled with their target class" in one_line_error(err)
    assert not (tmp_path / "o" / "results.json").exists()


def test_target_class_out_of_range(tmp_path, capsys):
    code, _, err = cli(capsys, "attack", *FAST_ATTACK, "--target-class", 10, "--out", tmp_path / "o")
    assert code == 2 and "not a class" in one_line_error(err)


# -- 3. C&W and StAdv: no --eps; their own budgets, enforced and reported --------------------------------------
def test_eps_with_cw_is_refused(tmp_path, capsys):
    code, _, err = cli(capsys, "attack", *FAST_ATTACK, "--framework", "cw", "--eps", "1/255", "--out", tmp_path)
    assert code == 2 and "--max-l2" in one_line_error(err)
    code, _, err = cli(capsys, "attack", *FAST_ATTACK, "--framework", "pgd", "--max-flow", "1", "--out", tmp_path)
    assert code == 2 and "--max-flow does not apply to the pgd framework" in one_line_error(err)


def test_cw_l2_budget_is_enforced_and_recorded(tmp_path, capsys):
    out = tmp_path / "cw"
    code, _, err = cli(capsys, "-q", "attack", *FAST_ATTACK, "--n", 2, "--framework", "cw", "--max-l2", "0.3",
                       "--out", out)
    assert code == 0, err
    rec = json.loads((out / "results.json").read_text())
    assert rec["config"]["eps"] is None and rec["config"]["cw_max_l2"] == 0.3
    assert all(r["l2_dist"] <= 0.3 + 1e-4 for r in rec["images"]) and all("linf" in r for r in rec["images"])
    assert rec["threat_model"].startswith("L2 <= 0.3") and "measured max L-inf" in rec["threat_model"]
    html = (out / "report.html").read_text()
    assert "L2 &lt;= 0.3" in html and rec["run_id"] in html


def test_stadv_without_budget_says_so(tmp_path, capsys):
    out = tmp_path / "st"
    code, _, err = cli(capsys, "-q", "attack", *FAST_ATTACK, "--n", 2, "--framework", "stadv", "--out", out)
    assert code == 0, err
    rec = json.loads((out / "results.json").read_text())
    assert rec["config"]["eps"] is None and "no hard budget" in rec["threat_model"]
    assert "no hard budget" in (out / "report.html").read_text()


# -- 4. --eps: one rule ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["8", "1.5", "300", "inf", "nan", "0", "-1/255", "2/1", "abc", "1/0"])
def test_eps_values_refused(bad, tmp_path, capsys):
    code, _, err = cli(capsys, "attack", *FAST_ATTACK, f"--eps={bad}", "--out", tmp_path)
    assert code == 2 and "--eps" in one_line_error(err)


def test_eps_rule_in_help_and_parsing():
    from xaisec.cli.common import parse_eps

    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps("0.031") == pytest.approx(0.031)
    assert parse_eps("1") == 1.0


# -- 5. NaN and infinity ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["--lr", "nan"], ["--lr", "inf"], ["--weight-decay", "nan"],
                                  ["--label-smoothing", "2"], ["--epochs", "0"]])
def test_train_float_options_checked(args, tmp_path, capsys):
    code, _, err = cli(capsys, "train", "--model", "cifar10_resnet20", *args, "--out", tmp_path)
    assert code == 2 and one_line_error(err)
    assert not list(tmp_path.iterdir())


def test_nan_weights_refused(tmp_path, capsys):
    net = build("cifar10_resnet20").net
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    w = save_safetensors(net, tmp_path / "nan.safetensors")
    code, _, err = cli(capsys, "eval", "--data", "samples:cifar10", "--weights", w)
    assert code == 2 and "NaN" in one_line_error(err)


def test_empty_split_is_an_error(tmp_path, capsys):
    import numpy as np

    p = tmp_path / "empty.npz"
    np.savez(p, test_images=np.zeros((0, 28, 28), np.uint8), test_labels=np.zeros((0, 1), np.int64))
    code, out, err = cli(capsys, "eval", "--model", "pneumonia_cnn", "--data", p)
    assert code == 2 and "no images" in one_line_error(err) and "nan" not in out


# -- 6. explain keeps every output -------------------------------------------------------------------------------
def test_explain_same_stems_and_rerun(tmp_path, capsys, sample_set):
    files = []
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        p = tmp_path / d / "img.png"
        Image.fromarray(sample_set.images[0 if d == "a" else 1].permute(1, 2, 0).numpy()).save(p)
        files.append(p)
    out = tmp_path / "maps"
    code, _, err = cli(capsys, "-q", "explain", *files, "--interpreter", "gradcam", "--out", out)
    assert code == 0, err
    first = sorted(p.name for p in out.glob("img*.png"))
    assert len(first) == 2 and first[0] != first[1]
    code, _, err = cli(capsys, "-q", "explain", files[0], "--interpreter", "gradcam", "--out", out)
    assert code == 0, err
    assert len(list(out.glob("img*.png"))) == 1  # the previous run's second image is gone


def test_explain_n_must_be_positive(tmp_path, capsys):
    for n in ("-5", "0"):
        code, _, err = cli(capsys, "explain", "--data", "samples:cifar10", "--n", n, "--out", tmp_path / "o")
        assert code == 2 and "--n" in one_line_error(err)


# -- tracebacks become one-line errors -----------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(capsys):
    code, _, err = cli(capsys, "eval", "--data", "samples:cifar10", "--device", "cuda")
    assert code == 2 and "CUDA is not available" in one_line_error(err)


@pytest.mark.parametrize("argv", [
    ["eval", "--device", "tpu"], ["eval", "--seed", "-1"], ["eval", "--batch-size", "0"],
    ["attack", "--steps-scale", "nan", "--out", "x"], ["attack", "--n", "0", "--out", "x"],
    ["attack", "--batch-size", "0", "--out", "x"], ["eval", "--threads", "0"],
])
def test_bad_values_are_usage_errors(argv, capsys):
    code, _, err = cli(capsys, *argv)
    assert code == 2 and one_line_error(err)


@pytest.mark.parametrize("argv", [
    ["bench", "reproduce", "--workers", "0"], ["demo", "--seed", "-1"], ["bench", "reproduce", "--threads", "0"],
])
def test_generic_checks_for_every_command(argv, capsys):
    code, _, err = cli(capsys, *argv)
    assert code == 2 and one_line_error(err).count("\n") == 0
    assert err.count("\n") == 1  # exactly one line, no usage block


def test_eps_rule_is_in_the_help(capsys):
    code, out, _ = cli(capsys, "attack", "--help")
    assert code == 0 and "8/255" in out and "refused" in out and "--max-l2" in out and "--threads" in out


def test_api_seed_checks():
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.seed import seed_everything

    with pytest.raises(XaisecError, match="seed"):
        seed_everything(-1)


def test_out_is_checked_before_work(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    code, _, err = cli(capsys, "attack", *FAST_ATTACK, "--out", f)
    assert code == 2 and "existing file" in one_line_error(err)
    code, _, err = cli(capsys, "explain", "--data", "samples:cifar10", "--out", f / "sub")
    assert code == 2 and "is a file" in one_line_error(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into any folder")
def test_out_unwritable(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    code, _, err = cli(capsys, "attack", *FAST_ATTACK, "--out", ro / "o")
    assert code == 2 and "not writable" in one_line_error(err)


def test_truncated_tar_and_decompression_bomb_give_one_line(tmp_path, capsys, sample_set):
    folder = write_folder(tmp_path / "data", sample_set, keep={"cat", "ship"})
    tar = tmp_path / "d.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(folder, arcname="test")
    trunc = tmp_path / "trunc.tar"
    trunc.write_bytes(tar.read_bytes()[:3000])
    code, _, err = cli(capsys, "eval", "--data", trunc)
    assert code != 0 and one_line_error(err)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (Image.MAX_IMAGE_PIXELS // 6000 + 1, 12001)).save(bomb)
    code, _, err = cli(capsys, "explain", bomb, "--out", tmp_path / "o")
    assert code == 2 and "too large" in one_line_error(err)


def test_threads_flag_sets_torch_threads(capsys):
    before = torch.get_num_threads()
    try:
        code, _, err = cli(capsys, "eval", "--data", "samples:cifar10", "--threads", "1", "--json")
        assert code == 0, err
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# -- smaller ----------------------------------------------------------------------------------------------------------
def test_weights_errors(tmp_path, capsys):
    code, _, err = cli(capsys, "eval", "--data", "samples:cifar10", "--weights", tmp_path)
    assert code == 2 and "is a folder" in one_line_error(err)
    pickled = tmp_path / "w.pt"
    torch.save({"state_dict": build("cifar10_resnet20").net.state_dict(), "extra": Opaque()},
               pickled)
    code, _, err = cli(capsys, "eval", "--data", "samples:cifar10", "--weights", pickled)
    line = one_line_error(err)
    assert code == 2 and "never unpickles" in line and "\x1b[" not in line and "safetensors" in line
