"""Cost of an attack: wall time and model queries, per image.

    with CostMeter(model, n_images=x.shape[0]) as meter:
        x_adv = attack(x, y)
    meter.result().seconds_per_image, meter.result().queries_per_image

A query is one input row passed through ``model.forward`` (a batch of 8 is 8 queries); white-box
gradient steps count too, since each needs a forward pass. Backward passes are not counted separately.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, NamedTuple

import torch
from torch import nn

from xaisec.utils.checks import XaisecError


class Cost(NamedTuple):
    """Totals measured by :class:`CostMeter` and their per-image values (lower is better for all)."""

    seconds: float
    forward_calls: int
    queries: int
    n_images: int
    seconds_per_image: float
    queries_per_image: float


def _rows(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    for v in (*args, *kwargs.values()):
        if isinstance(v, torch.Tensor):
            return v.shape[0] if v.dim() > 0 else 1
    return 1


class CostMeter:
    """Context manager counting forward calls and queries of ``model`` and the wall time inside the block.

    Args:
        model: the module whose forward calls are counted (a forward pre-hook on it; modules it calls
            internally are not counted again).
        n_images: the number of images the block works on, for the per-image values (can also be
            passed to :meth:`result`).

    The meter can be entered several times; counts and time accumulate.
    """

    def __init__(self, model: nn.Module, n_images: int | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise XaisecError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.n_images = n_images
        self.seconds = 0.0
        self.forward_calls = 0
        self.queries = 0
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._start = 0.0

    def _hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.forward_calls += 1
        self.queries += _rows(args, kwargs)

    def _sync(self) -> None:
        for p in self.model.parameters():
            if p.device.type == "cuda":
                torch.cuda.synchronize(p.device)
            break

    def __enter__(self) -> CostMeter:
        if self._handle is not None:
            raise XaisecError("this CostMeter is already active; do not nest it")
        self._handle = self.model.register_forward_pre_hook(self._hook, with_kwargs=True)
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._start
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def result(self, n_images: int | None = None) -> Cost:
        """The totals and per-image values; ``n_images`` overrides the constructor's."""
        n = n_images if n_images is not None else self.n_images
        if n is None or n < 1:
            raise XaisecError("give n_images (the number of images processed, >= 1) for the per-image cost")
        return Cost(self.seconds, self.forward_calls, self.queries, n, self.seconds / n, self.queries / n)

    def seconds_per_image(self, n_images: int | None = None) -> float:
        """Wall time divided by the number of images. Lower is better."""
        return self.result(n_images).seconds_per_image

    def queries_per_image(self, n_images: int | None = None) -> float:
        """Queries (input rows through forward) divided by the number of images. Lower is better."""
        return self.result(n_images).queries_per_image
