import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xaisec.data import CIFAR10_CLASSES, load_image_folder
from xaisec.utils.checks import XaisecError


def _write_folder(root, classes=("b_cls", "a_cls"), per_class=3, size=8, split="train"):
    rng = np.random.default_rng(0)
    arrays = {}
    for c in classes:
        d = root / split / c if split else root / c
        d.mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{i}.png")
            arrays[(c, i)] = arr
    return arrays


def test_folder_reads_images_labels_and_sorted_classes(tmp_path):
    arrays = _write_folder(tmp_path)
    ds = load_image_folder(tmp_path, "train", progress=False)
    assert ds.classes == ["a_cls", "b_cls"]
    assert ds.images.shape == (6, 3, 8, 8) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(ds.images[0].permute(1, 2, 0).numpy(), arrays[("a_cls", 0)])


def test_tar_matches_folder(tmp_path):
    _write_folder(tmp_path / "src")
    tar_path = tmp_path / "d.tar"
    with tarfile.open(tar_path, "w") as tf:
        tf.add(tmp_path / "src" / "train", arcname="train")
    a = load_image_folder(tmp_path / "src", "train", progress=False)
    b = load_image_folder(tar_path, "train", progress=False, cache=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_tar_cache_is_used_and_consistent(tmp_path, monkeypatch):
    monkeypatch.setenv("XAISEC_CACHE", str(tmp_path / "cache"))
    _write_folder(tmp_path / "src")
    tar_path = tmp_path / "d.tar"
    with tarfile.open(tar_path, "w") as tf:
        tf.add(tmp_path / "src" / "train", arcname="train")
    first = load_image_folder(tar_path, "train", progress=False)
    assert list((tmp_path / "cache" / "imagefolder").glob("*.npz"))
    second = load_image_folder(tar_path, "train", progress=False)
    assert torch.equal(first.images, second.images) and first.classes == second.classes


def test_cifar10_class_folders_get_the_standard_order(tmp_path):
    _write_folder(tmp_path, classes=tuple(sorted(CIFAR10_CLASSES)), per_class=1, split=None)
    ds = load_image_folder(tmp_path, progress=False)
    assert ds.classes == CIFAR10_CLASSES
    assert ds.labels.tolist() == list(range(10))


def test_corrupted_and_non_image_files_are_skipped_and_counted(tmp_path, caplog):
    _write_folder(tmp_path)
    (tmp_path / "train" / "a_cls" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "train" / "a_cls" / "notes.txt").write_text("hello")
    ds = load_image_folder(tmp_path, "train", progress=False)
    assert len(ds) == 6 and ds.skipped == 2
    assert "skipped 2" in caplog.text
    with pytest.raises(XaisecError, match=r"broken\.png|notes\.txt"):
        load_image_folder(tmp_path, "train", progress=False, strict=True)


def test_missing_path_empty_folder_and_empty_class(tmp_path):
    with pytest.raises(XaisecError, match="no such file"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(XaisecError, match="no class sub-folders"):
        load_image_folder(tmp_path / "empty", progress=False)
    _write_folder(tmp_path / "d", split=None)
    (tmp_path / "d" / "c_cls").mkdir()
    (tmp_path / "d" / "c_cls" / "x.txt").write_text("x")
    with pytest.raises(XaisecError, match="c_cls"):
        load_image_folder(tmp_path / "d", progress=False)
    with pytest.raises(XaisecError, match="no folder 'test'"):
        load_image_folder(tmp_path / "d", "test", progress=False)


def test_mixed_sizes_need_resize(tmp_path):
    _write_folder(tmp_path, classes=("a",), size=8, split=None)
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(tmp_path / "a" / "z.png")
    with pytest.raises(XaisecError, match="size"):
        load_image_folder(tmp_path, progress=False)
    ds = load_image_folder(tmp_path, size=(8, 8), progress=False)
    assert ds.images.shape == (4, 3, 8, 8)


def test_not_a_tar(tmp_path):
    p = tmp_path / "x.tar"
    p.write_bytes(b"garbage" * 100)
    with pytest.raises(XaisecError, match="tar"):
        load_image_folder(p, progress=False)


# ---- any image folder (issue 19) ------------------------------------------------------------------------


def _mixed_folder(root):
    """Two classes, sizes 20x30 .. 40x24, every mode, odd names, upper-case extensions."""
    rng = np.random.default_rng(1)
    (root / "a cls").mkdir(parents=True)
    (root / "bé").mkdir()
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "a cls" / "one photo.PNG")
    Image.fromarray(rgb[..., 0]).save(root / "a cls" / "grey.JPG")
    Image.fromarray(rng.integers(0, 256, (40, 24, 3), dtype=np.uint8)).convert("RGBA").save(root / "bé" / "ü.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "bé" / "pal.gif")
    Image.fromarray((rng.integers(0, 65535, (24, 24))).astype(np.uint16)).save(root / "bé" / "deep16.png")
    (root / "bé" / ".DS_Store").write_bytes(b"\0\1")
    return rgb


def test_any_mix_of_sizes_modes_and_names_with_image_size(tmp_path, caplog):
    rgb = _mixed_folder(tmp_path)
    ds = load_image_folder(tmp_path, image_size=16, progress=False)
    assert ds.images.shape == (5, 3, 16, 16) and ds.classes == ["a cls", "bé"] and ds.skipped == 0
    assert "skipped" not in caplog.text  # hidden files are ignored, not counted
    # crop: shorter side to 16, centre crop -> equals PIL's own resize + crop of the original
    ref = Image.fromarray(rgb).resize((24, 16), Image.BILINEAR).crop((4, 0, 20, 16))
    k = [Path(f).name for f in ds.files].index("one photo.PNG")
    np.testing.assert_array_equal(ds.images[k].permute(1, 2, 0).numpy(), np.asarray(ref))
    pad = load_image_folder(tmp_path, image_size=16, resize_mode="pad", progress=False)
    assert pad.images.shape == (5, 3, 16, 16)
    assert int(pad.images[k, :, 0].sum()) == 0 and int(pad.images[k, :, 8].sum()) > 0  # black bars top and bottom


def test_grey_folder_reads_as_one_channel_with_auto_mode(tmp_path):
    (tmp_path / "x").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / "x" / f"{i}.png")
    assert load_image_folder(tmp_path, mode=None, progress=False).images.shape == (2, 1, 8, 8)
    assert load_image_folder(tmp_path, progress=False).images.shape == (2, 3, 8, 8)


def test_bad_image_size_and_resize_mode(tmp_path):
    _write_folder(tmp_path, split=None)
    for bad in (0, -3):
        with pytest.raises(XaisecError, match="image size must be a positive"):
            load_image_folder(tmp_path, image_size=bad, progress=False)
    with pytest.raises(XaisecError, match="resize mode"):
        load_image_folder(tmp_path, image_size=8, resize_mode="stretch", progress=False)


def test_decompression_bomb_is_skipped_and_counted(tmp_path, monkeypatch, caplog):
    _write_folder(tmp_path, split=None, size=8)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a_cls" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 is a 'bomb' now, 8x8 is not
    ds = load_image_folder(tmp_path, image_size=8, progress=False)
    assert len(ds) == 6 and ds.skipped == 1 and "skipped 1" in caplog.text
    with pytest.raises(XaisecError, match="bomb"):
        load_image_folder(tmp_path, image_size=8, progress=False, strict=True)


def test_truncated_tar_keeps_what_it_can_read(tmp_path, caplog):
    _write_folder(tmp_path / "src", per_class=4, split=None)
    tar_path = tmp_path / "d.tar"
    with tarfile.open(tar_path, "w") as tf:
        for c in ("a_cls", "b_cls"):
            tf.add(tmp_path / "src" / c, arcname=c)
    data = tar_path.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    ds = load_image_folder(cut, progress=False, cache=False)
    assert 0 < len(ds) < 8 and ds.skipped == 1 and "skipped 1" in caplog.text
    with pytest.raises(XaisecError, match="archive"):
        load_image_folder(cut, progress=False, cache=False, strict=True)
