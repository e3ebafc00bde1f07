"""Several interpreters presented as one, for attacks on an ensemble of interpreters.

``MultiInterpreter(model, ["grad", "cam"], weights=[1, 1])`` returns, for x (N, C, H, W), the members' maps
side by side as one (N, H, K*W) map (member k in columns k*W .. (k+1)*W - 1), each member's map scaled by
sqrt(K * w_k / sum(w)). Its mean squared map loss is therefore sum_k w_k / sum(w) * mse_k: the weighted sum
of the members' map losses that ADV^2 against all interpreters at once minimises. With equal weights (the
default) the scale is 1 and every block is that member's [0, 1] map. :meth:`split` gives the members' maps
back (unscaled), for per-interpreter metrics.

Members whose maps are input gradients (grad, ...) are differentiated through the soft-ReLU surrogate in
:meth:`explain` (``create_graph=True``), as the joint attack does for a single gradient interpreter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from xaisec.interpreters.base import Interpreter
from xaisec.utils.checks import XaisecError

GRADIENT_MAPS = {"grad", "grad_x_input", "integrated_gradients", "smoothgrad"}


class MultiInterpreter(Interpreter):
    """Interpreters ``members`` (names or Interpreters of ``model``) as one interpreter named "a+b"."""

    def __init__(self, model: nn.Module, members: Sequence[str | Interpreter], *,
                 weights: Sequence[float] | None = None, normalize: str = "minmax",
                 member_options: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(model, normalize=normalize)
        from xaisec.interpreters import get as get_interpreter

        if isinstance(members, str) or len(members) < 2:
            raise XaisecError(f"an interpreter ensemble needs at least 2 interpreters, got {members!r}")
        opts = member_options or {}
        self.members = [m if isinstance(m, Interpreter) else get_interpreter(m, model, **opts.get(m, {}))
                        for m in members]
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise XaisecError(f"interpreters repeat in the ensemble: {names}")
        if weights is None:
            weights = [1.0] * len(self.members)
        if len(weights) != len(self.members) or any(not w > 0 for w in weights):
            raise XaisecError(f"weights must be {len(self.members)} positive numbers, got {list(weights)}")
        self.weights = [float(w) for w in weights]
        total = sum(self.weights)
        self.scales = [(len(self.weights) * w / total) ** 0.5 for w in self.weights]
        self.member_names = names

    @property
    def name(self) -> str:  # type: ignore[override]
        return "+".join(self.member_names)

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return all(m.differentiable for m in self.members)

    def _join(self, maps: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([m * s if s != 1.0 else m for m, s in zip(maps, self.scales, strict=True)], dim=-1)

    def split(self, maps: torch.Tensor) -> list[torch.Tensor]:
        """(N, H, K*W) joined maps -> K unscaled (N, H, W) member maps."""
        parts = maps.chunk(len(self.members), dim=-1)
        return [p / s if s != 1.0 else p for p, s in zip(parts, self.scales, strict=True)]

    def __call__(self, x: torch.Tensor, target: torch.Tensor | int | None = None, *,
                 create_graph: bool = False) -> torch.Tensor:
        if create_graph and not self.differentiable:
            raise XaisecError(f"interpreter ensemble {self.name!r} has a member without a differentiable mode")
        x, t = self.prepare(x, target)
        return self._join([m(x, t, create_graph=create_graph) for m in self.members])

    def explain(self, x: torch.Tensor, target: torch.Tensor, *,
                create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        maps = []
        for m in self.members:
            ctx: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
            if create_graph and m.name in GRADIENT_MAPS:
                from xaisec.interpreters.surrogate import soft_relu

                ctx = soft_relu(self.model)
            with ctx:
                maps.append(m.explain(x, target, create_graph=create_graph)[0])
        return self._join(maps), None

    def attribute(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        return self.explain(x, target, create_graph=create_graph)[0]

    def profile(self) -> Any:
        """The attack schedule for the ensemble: a gradient member's (the most demanding), else the first's."""
        from xaisec.attacks.profiles import profile_for

        for name in self.member_names:
            if name in GRADIENT_MAPS:
                return profile_for(name)
        return profile_for(self.member_names[0])

    def __repr__(self) -> str:
        return f"MultiInterpreter({self.member_names}, weights={self.weights})"
