"""Tests of xaisec.data.labels: data set class names mapped onto a model's classes."""

import pytest
import torch

from xaisec.data.dataset import ImageDataset
from xaisec.data.labels import align_labels, class_mapping
from xaisec.data.paths import CIFAR10_CLASSES
from xaisec.utils.checks import XaisecError


def _folder_set(classes, labels):
    """What the image-folder loader returns: sorted folder names, labels numbered in that order."""
    n = len(labels)
    return ImageDataset(torch.zeros(n, 3, 4, 4, dtype=torch.uint8), torch.tensor(labels), list(classes), name="dir")


def test_subset_of_classes_maps_by_name():
    ds = align_labels(_folder_set(["cat", "ship"], [0, 1, 1, 0]), list(CIFAR10_CLASSES))
    assert ds.labels.tolist() == [3, 8, 8, 3]
    assert ds.classes == list(CIFAR10_CLASSES)


def test_eight_of_ten_sorted_folders():
    present = sorted(c for c in CIFAR10_CLASSES if c not in ("bird", "truck"))
    labels = list(range(len(present)))
    ds = align_labels(_folder_set(present, labels), list(CIFAR10_CLASSES))
    assert [ds.classes[i] for i in ds.labels.tolist()] == present


def test_names_compare_case_and_separator_insensitively_and_indices_work():
    assert class_mapping(["Cat", "ship "], CIFAR10_CLASSES) == [3, 8]
    assert class_mapping(["air_plane"], ["air plane", "car"]) == [0]
    assert class_mapping(["0", "7"], CIFAR10_CLASSES) == [0, 7]  # folders named by class index


def test_unknown_name_lists_both_sets():
    with pytest.raises(XaisecError) as info:
        align_labels(_folder_set(["cat", "wolf"], [0, 1]), list(CIFAR10_CLASSES))
    msg = str(info.value)
    assert "wolf" in msg and "airplane" in msg and "[cat, wolf]" in msg
    with pytest.raises(XaisecError, match="not classes of the model"):
        class_mapping(["12"], CIFAR10_CLASSES)  # an index the model does not have


def test_two_names_for_one_class_is_an_error():
    with pytest.raises(XaisecError, match="both name"):
        class_mapping(["Cat", "cat"], CIFAR10_CLASSES)


def test_unchanged_when_names_agree_or_model_has_none():
    ds = _folder_set(CIFAR10_CLASSES, list(range(10)))
    assert align_labels(ds, list(CIFAR10_CLASSES)) is ds
    other = _folder_set(["b", "a"], [0, 1])
    assert align_labels(other, None) is other


def test_takes_a_model(tiny_model):
    ds = align_labels(_folder_set(["c4", "c1"], [0, 1]), tiny_model)
    assert ds.labels.tolist() == [4, 1] and ds.classes == tiny_model.classes
