"""Universal adversarial perturbations: one perturbation for every image.

``uap = train("juap", model, "cam", images, norm="linf", eps=10/255)`` learns a perturbation that fools the
classifier on most images while their explanations stay close to the benign ones (JUAP, Ning et al. 2024);
``"gap"`` (Poursaeed et al. 2018) and ``"uap"`` (Moosavi-Dezfooli et al. 2017) are the baselines.
``uap.apply(x)``, ``uap.save(path)``, :func:`load`, and ``evaluate(uap, model, interpreter, images)`` for the
fooling ratio, map L1 and IoU. JAP (one generator per image, batched) is the attack ``"jap"`` of
:func:`xaisec.attacks.get`.
"""

from __future__ import annotations

from typing import Any

from xaisec.universal.budget import NORMS, SCALINGS, project, scale_to_budget
from xaisec.universal.evaluate import UniversalEvaluation, evaluate, threshold_iou
from xaisec.universal.generators import GENERATORS, ResnetGenerator, UNetGenerator, build_generator
from xaisec.universal.objective import LOSSES, JointObjective
from xaisec.universal.result import UniversalPerturbation, load
from xaisec.universal.train import DEFAULT_LAM, METHODS, train

# The universal adversarial patch (xaisec.universal.patch) is imported on first use of one of its names.
_PATCH_NAMES: tuple[str, ...] = ("UniversalPatch", "train_universal_patch", "evaluate_universal_patch", "load_patch")


def __getattr__(name: str) -> Any:
    if name == "patch" or name in _PATCH_NAMES:
        import importlib

        module = importlib.import_module("xaisec.universal.patch")
        return module if name == "patch" else getattr(module, name)
    raise AttributeError(f"module 'xaisec.universal' has no attribute {name!r}")


__all__ = [
    "DEFAULT_LAM", "GENERATORS", "LOSSES", "METHODS", "NORMS", "SCALINGS", "JointObjective", "ResnetGenerator",
    "UNetGenerator", "UniversalEvaluation", "UniversalPerturbation", "build_generator", "evaluate", "load",
    "project", "scale_to_budget", "threshold_iou", "train",
]
