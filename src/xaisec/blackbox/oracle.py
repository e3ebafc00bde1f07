"""The query oracle: the only door a black-box attacker has to the deployed system.

``oracle = Oracle(model, interpreter, output="probs", budget=50_000)``; ``probs, maps = oracle(x)`` answers a
whole batch x (N, C, H, W) in [0, 1] with the class probabilities (N, K) (or logits) and the explanation maps
(N, H, W), counts every image as one query, and refuses a batch that would exceed the budget. Answers are
detached copies: no gradient and no tensor attached to the model's graph ever leaves the oracle.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from xaisec.interpreters import Interpreter
from xaisec.interpreters import get as get_interpreter
from xaisec.utils.checks import XaisecError, check_targets, module_device

log = logging.getLogger(__name__)

OUTPUTS = ("probs", "logits")
MAP_MODES = ("abs_sum", "interpreter")


class BudgetExceeded(XaisecError):
    """A query batch would take the oracle past its budget."""


def abs_sum_maps(attributions: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """AttaXAI / Dombrowski map convention: |a| summed over channels, divided by its per-image sum.

    attributions (N, C, H, W) -> maps (N, H, W), non-negative, each summing to 1 (differentiable).
    """
    m = attributions.abs().sum(1)
    return m / m.flatten(1).sum(1).clamp_min(eps).view(-1, 1, 1)


class Oracle:
    """Black-box access to ``model`` + ``interpreter`` with query accounting.

    Args:
        model: the deployed classifier on [0, 1] images.
        interpreter: an interpreter name or an :class:`Interpreter` on ``model``; None for an oracle that
            answers probabilities only (``maps=False`` on every call).
        output: ``"probs"`` (softmax, default) or ``"logits"``.
        budget: most queries the oracle answers (counted over every non-setup call); None = unlimited.
        map_mode: ``"abs_sum"`` (default): |attribution| summed over channels, sum-1 per image (needs an
            interpreter with channel attributions: grad, grad_x_input, guided_backprop, lrp, deeplift...);
            ``"interpreter"``: the interpreter's own map (its reduction and normalisation).
        chunk_size: rows per forward/backward pass (memory bound); answers do not depend on it.
        interpreter_options: keyword arguments when ``interpreter`` is a name.

    Call: ``oracle(x, target=None, *, index=None, maps=True, setup=False)`` -> (out (N, K), maps (N, H, W) or
    None). ``target`` (N,) or int: the class each map explains (None: each query's own predicted class).
    ``index`` (N,) long: the attacked image each query is spent for (per-image accounting in
    :attr:`per_image`); ``setup=True`` counts the batch in :attr:`setup_queries` instead of against the budget
    (e.g. the queries that read the original output and the target map).
    """

    def __init__(self, model: nn.Module, interpreter: str | Interpreter | None = None, *, output: str = "probs",
                 budget: int | None = 50_000, map_mode: str = "abs_sum", chunk_size: int = 250,
                 interpreter_options: dict | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise XaisecError(f"model must be an nn.Module, got {type(model).__name__}")
        if output not in OUTPUTS:
            raise XaisecError(f"unknown oracle output {output!r}; choose from {OUTPUTS}")
        if map_mode not in MAP_MODES:
            raise XaisecError(f"unknown map mode {map_mode!r}; choose from {MAP_MODES}")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise XaisecError(f"budget must be a positive int or None, got {budget!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise XaisecError(f"chunk_size must be a positive int, got {chunk_size!r}")
        if isinstance(interpreter, str):
            interpreter = get_interpreter(interpreter, model, **(interpreter_options or {}))
        if interpreter is not None:
            if not isinstance(interpreter, Interpreter):
                raise XaisecError(f"the oracle cannot run {type(interpreter).__name__}: pass an interpreter name "
                                  "or an xaisec Interpreter")
            if interpreter.model is not model:
                raise XaisecError("the interpreter explains a different model than the oracle's")
            if map_mode == "abs_sum" and not hasattr(interpreter, "attributions"):
                raise XaisecError(
                    f"the oracle cannot run {interpreter.name!r} with map_mode='abs_sum': it has no per-channel "
                    "attributions; use grad, grad_x_input, guided_backprop, lrp or deeplift, or "
                    "map_mode='interpreter'")
        self.model = model.eval()
        self.interpreter = interpreter
        self.output = output
        self.budget = budget
        self.map_mode = map_mode
        self.chunk_size = chunk_size
        self.queries = 0
        self.setup_queries = 0
        self._per_image = torch.zeros(0, dtype=torch.long)
        self._per_image_setup = torch.zeros(0, dtype=torch.long)

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.queries

    @property
    def per_image(self) -> torch.Tensor:
        """Queries spent per attacked image index (M,) long (setup queries not included)."""
        return self._per_image.clone()

    @property
    def per_image_setup(self) -> torch.Tensor:
        return self._per_image_setup.clone()

    def _count(self, n: int, index: torch.Tensor | None, setup: bool) -> None:
        if not setup and self.budget is not None and self.queries + n > self.budget:
            raise BudgetExceeded(
                f"query budget exhausted: {self.queries} of {self.budget} queries used, this batch asks for {n} "
                "more; raise the budget (queries=/budget=) or send fewer images")
        if index is not None:
            index = index.detach().to("cpu", torch.long).view(-1)
            if index.numel() != n or (index < 0).any():
                raise XaisecError(f"index must hold one non-negative image index per query ({n}), got "
                                  f"shape {tuple(index.shape)}")
            size = int(index.max()) + 1
            table = self._per_image_setup if setup else self._per_image
            if table.numel() < size:
                table = torch.cat([table, torch.zeros(size - table.numel(), dtype=torch.long)])
            table = table.index_add(0, index, torch.ones_like(index))
            if setup:
                self._per_image_setup = table
            else:
                self._per_image = table
        if setup:
            self.setup_queries += n
        else:
            self.queries += n

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            raise XaisecError("queries must be a float tensor (N, C, H, W) with values in [0, 1]")
        x = x.detach()
        if not torch.isfinite(x).all():
            raise XaisecError("a query contains NaN or infinite values: the oracle refuses it (check the attack's "
                              "step size and clamp candidates to [0, 1])")
        if x.numel() and (float(x.min()) < -1e-6 or float(x.max()) > 1 + 1e-6):
            raise XaisecError(f"queries must be images in [0, 1], got range [{float(x.min()):.3g}, "
                              f"{float(x.max()):.3g}]; clamp them first")
        return x.to(self.device)

    def __call__(self, x: torch.Tensor, target: torch.Tensor | int | None = None, *,
                 index: torch.Tensor | None = None, maps: bool = True,
                 setup: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self._check(x)
        if maps and self.interpreter is None:
            raise XaisecError("this oracle has no interpreter: call it with maps=False, or build it with one")
        n = x.shape[0]
        t = None if target is None else check_targets(target, n, num_classes=getattr(self.model, "num_classes", None),
                                                      device=self.device)
        self._count(n, index, setup)
        return self.answer(x, t, maps=maps)

    def answer(self, x: torch.Tensor, target: torch.Tensor | None = None, *,
               maps: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The system's answer WITHOUT counting queries: for the experimenter's own evaluation only
        (attacks go through ``__call__``). x (N, C, H, W) on the device, target (N,) long or None."""
        outs, mapss = [], []
        for s in range(0, x.shape[0], self.chunk_size):
            xc = x[s:s + self.chunk_size].detach()
            tc = None if target is None else target[s:s + self.chunk_size]
            logits, m = self._answer_chunk(xc, tc, maps)
            outs.append(logits.softmax(1) if self.output == "probs" else logits)
            if m is not None:
                mapss.append(m)
        out = torch.cat(outs).detach().clone()
        return out, (torch.cat(mapss).detach().clone() if maps else None)

    def _answer_chunk(self, x: torch.Tensor, target: torch.Tensor | None,
                      maps: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not maps:
            with torch.no_grad():
                return self.model(x), None
        interp = self.interpreter
        assert interp is not None
        if target is None:
            with torch.no_grad():
                logits = self.model(x)
            target = logits.argmax(1)
        with torch.enable_grad():  # explainers backpropagate even when the caller runs under no_grad
            if self.map_mode == "abs_sum":
                interp._last_logits = None
                m = abs_sum_maps(interp._attributions(x, target))  # x is validated above: the hot path
                logits = getattr(interp, "_last_logits", None)
                interp._last_logits = None
            else:
                m, logits = interp.explain(x, target)
        if logits is None:
            with torch.no_grad():
                logits = self.model(x)
        return logits.detach(), m.detach()

    def __repr__(self) -> str:
        name = None if self.interpreter is None else self.interpreter.name
        return (f"Oracle(interpreter={name!r}, output={self.output!r}, budget={self.budget}, queries={self.queries}, "
                f"setup_queries={self.setup_queries})")


__all__ = ["MAP_MODES", "OUTPUTS", "BudgetExceeded", "Oracle", "abs_sum_maps"]
