"""Attacks on interpretable deep learning systems.

``atk = get("adv2", model, "gradcam", framework="pgd", eps=8/255)``; ``res = atk(x, y)`` returns an
:class:`AttackResult` (``x_adv``, ``success``, ``maps_benign``, ``maps_adv``, ``maps_target``, ``metrics``,
``iterations``, ``seconds``). Attacks are compositions (see :mod:`xaisec.attacks.joint`):

=========== ==================================================================================
``pgd``     the plain attack on the classifier (no map term): the baseline
``adv2``    ADV^2 (Zhang et al. 2020): prediction loss + lambda * map loss, warm start, schedules
``advedge`` AdvEdge (Abdukhamidov et al. 2023): ADV^2 with steps weighted by Sobel edge magnitude
``advedge+`` AdvEdge+: ADV^2 with steps only where the edge magnitude exceeds the threshold
=========== ==================================================================================

each on the ``pgd``, ``cw`` or ``stadv`` framework.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from xaisec.attacks.edges import edge_weights, sobel_magnitude
from xaisec.attacks.frameworks import FRAMEWORKS
from xaisec.attacks.joint import JointAttack
from xaisec.attacks.profiles import PAPER_PROFILES, Profile, profile_for
from xaisec.attacks.result import AttackResult
from xaisec.attacks.targets import random_other_class, random_patch_maps
from xaisec.interpreters import Interpreter
from xaisec.interpreters import get as get_interpreter
from xaisec.utils.checks import XaisecError

ATTACKS: dict[str, tuple[dict[str, Any], str]] = {
    "pgd": ({"map_term": False}, "plain attack on the classifier only (baseline; maps are measured, not attacked)"),
    "adv2": ({"map_term": True}, "ADV^2: fool the classifier and keep the map close to a target map"),
    "advedge": ({"map_term": True, "edge": "sobel"}, "AdvEdge: ADV^2 with steps weighted by Sobel edge magnitude"),
    "advedge+": ({"map_term": True, "edge": "binary"}, "AdvEdge+: ADV^2 with steps only on edges (magnitude > 0.1)"),
}

# Attacks built by their own module rather than by JointAttack: name -> ("package.module:builder", description).
# A builder is called as ``builder(model, interpreter, **options)`` (interpreter: a name, an Interpreter, or
# whatever that attack documents; ``seed`` and ``progress`` always, ``framework`` when given) and returns an object
# with ``__call__(x, y) -> AttackResult``. Modules are imported only when their attack is built. One line per attack.
BUILT_ATTACKS: dict[str, tuple[str, str]] = {
    "jap": ("xaisec.universal.jap:build_jap", "JAP (Ning et al. 2024): a generator per image; fool it, keep the map"),
    "patch": ("xaisec.attacks.patch:build", "adversarial patch vs Grad-CAM (Le et al. 2021): hide / attract / none"),
    "attaxai": ("xaisec.blackbox.attaxai:build", "AttaXAI (Tamam et al. 2023): black-box NES, map to a target"),
    "dombrowski": ("xaisec.blackbox.dombrowski:build", "Dombrowski et al. 2019: white-box map manipulation (softplus)"),
    "mga": ("xaisec.blackbox.mga:build", "surrogate attack (AdvEdge/PGD/MI-FGSM) + microbial GA on target queries"),
}


def describe() -> dict[str, str]:
    """Every attack name with its one-line description (joint attacks first)."""
    return {**{n: d for n, (_, d) in ATTACKS.items()}, **{n: d for n, (_, d) in BUILT_ATTACKS.items()}}


def _build(name: str, model: nn.Module, interpreter: Any, options: dict[str, Any]) -> Any:
    import importlib

    target, _ = BUILT_ATTACKS[name]
    module_name, func_name = target.split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    try:
        return builder(model, interpreter, **options)
    except TypeError as exc:
        raise XaisecError(f"bad option for attack {name!r}: {exc}") from exc


def get(name: str, model: nn.Module, interpreter: str | Interpreter | Any, *, framework: str | None = None,
        interpreter_options: dict[str, Any] | None = None, **options: Any) -> Any:
    """Build the attack ``name`` against ``model`` and ``interpreter`` (a name or an Interpreter).

    Options are :class:`JointAttack` keyword arguments (eps, alpha, steps_scale, target_class, target_map...),
    or for the attacks in :data:`BUILT_ATTACKS` their builder's (``framework`` is passed on only when given).
    """
    if name in BUILT_ATTACKS:
        if interpreter_options:
            options = {**options, "interpreter_options": interpreter_options}
        return _build(name, model, interpreter, options if framework is None else {"framework": framework, **options})
    if name not in ATTACKS:
        raise XaisecError(f"unknown attack {name!r}; known: {', '.join(describe())}")
    if isinstance(interpreter, str):
        interpreter = get_interpreter(interpreter, model, **(interpreter_options or {}))
    elif isinstance(interpreter, (list, tuple)):  # several interpreters at once: summed weighted map losses
        from xaisec.interpreters.ensemble import MultiInterpreter

        interpreter = MultiInterpreter(model, interpreter, **(interpreter_options or {}))
        options.setdefault("profile", interpreter.profile())
    framework = framework or "pgd"
    preset, _ = ATTACKS[name]
    if options.get("adaptive") is not None:  # defense-aware ADV^2 (xaisec.attacks.adaptive)
        from xaisec.attacks.adaptive import adaptive_attack

        return adaptive_attack(name, model, interpreter, framework=framework, **preset, **options)
    options.pop("adaptive", None)
    if interpreter.name == "mask" and preset["map_term"]:
        from xaisec.attacks.mask_bilevel import MaskBilevelAttack

        return MaskBilevelAttack(model, interpreter, name=name, framework=framework, **preset, **options)
    try:
        return JointAttack(model, interpreter, name=name, framework=framework, **preset, **options)
    except TypeError as exc:
        raise XaisecError(f"bad option for attack {name!r}: {exc}") from exc


__all__ = [
    "ATTACKS", "BUILT_ATTACKS", "FRAMEWORKS", "PAPER_PROFILES", "AttackResult", "JointAttack", "Profile", "describe",
    "edge_weights", "get", "profile_for", "random_other_class", "random_patch_maps", "sobel_magnitude",
]
