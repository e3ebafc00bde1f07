"""Mapping a data set's class names onto a model's classes, so label i means the model's logit i.

Image folders and tars are labelled by their folder names, in sorted order: ``cat/`` and ``ship/`` become
labels 0 and 1, which a CIFAR-10 model reads as airplane and automobile. :func:`align_labels` renames
them by name instead: every data class must be one of the model's classes (compared case-insensitively,
with spaces, hyphens and underscores alike), or a class index written as a number (``"3"``); any subset
of the model's classes works; an unknown name is an error that lists both sets. Every command and the
experiment runner call it where data meets a model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import torch
from torch import nn

from xaisec.data.dataset import ImageDataset
from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "_", str(name).strip().lower())


def _show(names: Sequence[str], limit: int = 20) -> str:
    names = list(names)
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def class_mapping(data_classes: Sequence[str], model_classes: Sequence[str], *, where: str = "data") -> list[int]:
    """For each data class name, the index of the same class among ``model_classes``.

    Raises:
        XaisecError: for a name the model does not know (listing both sets), or two names for one class.
    """
    by_name = {_norm(c): i for i, c in enumerate(model_classes)}
    k = len(model_classes)
    index: list[int] = []
    unknown: list[str] = []
    for c in data_classes:
        i = by_name.get(_norm(c))
        if i is None and re.fullmatch(r"\d+", str(c).strip()) and int(c) < k:
            i = int(c)  # a folder named by class index
        if i is None:
            unknown.append(str(c))
        index.append(-1 if i is None else i)
    if unknown:
        raise XaisecError(
            f"{where}: class(es) {_show(unknown, 8)} are not classes of the model; the data has "
            f"[{_show(data_classes)}], the model knows [{_show(model_classes)}]; rename the folders to the model's "
            f"class names (or to class indices 0..{k - 1}), or pick the model trained on this data"
        )
    seen: dict[int, str] = {}
    for c, i in zip(data_classes, index, strict=True):
        if i in seen:
            raise XaisecError(f"{where}: classes {seen[i]!r} and {c!r} both name the model's class "
                              f"{model_classes[i]!r}; merge or rename one of the folders")
        seen[i] = str(c)
    return index


def align_labels(data: ImageDataset, model: nn.Module | Sequence[str] | None) -> ImageDataset:
    """``data`` relabelled so that label i is ``model.classes[i]`` (a model, or its class names).

    The data's own class order (sorted folder names for image folders) is replaced by the model's; the
    returned set's ``classes`` are the model's. Unchanged when the names already agree, or when the model
    declares no class names (then the labels are taken as they are, and checked against nothing).
    """
    model_classes = model if isinstance(model, (list, tuple)) else getattr(model, "classes", None)
    if not model_classes:
        return data
    model_classes = list(model_classes)
    if list(data.classes) == model_classes:
        return data
    index = class_mapping(data.classes, model_classes, where=data.name)
    if index == list(range(len(data.classes))) and len(data.classes) == len(model_classes):
        return ImageDataset(data.images, data.labels, model_classes, data.name, data.skipped, data.files)
    lut = torch.tensor(index, dtype=torch.long)
    labels = lut[data.labels] if len(data) else data.labels
    log.info("%s: mapped its %d class(es) onto the model's %d by name", data.name, len(data.classes),
             len(model_classes))
    return ImageDataset(data.images, labels, model_classes, data.name, data.skipped, data.files)
