"""CostMeter: forward calls, queries (input rows) and wall time per image."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from xaisec.metrics import Cost, CostMeter
from xaisec.utils.checks import XaisecError


def test_counts_calls_and_rows(tiny_model: nn.Module, tiny_batch: tuple) -> None:
    x, _ = tiny_batch  # 6 images
    with torch.no_grad(), CostMeter(tiny_model, n_images=6) as meter:
        tiny_model(x)
        tiny_model(x[:2])
    assert meter.forward_calls == 2  # the wrapped net's inner forward is not counted again
    assert meter.queries == 8
    r = meter.result()
    assert isinstance(r, Cost)
    assert r.queries_per_image == pytest.approx(8 / 6)
    assert r.seconds_per_image == pytest.approx(r.seconds / 6)
    tiny_model(x)  # outside the block: the hook is gone
    assert meter.queries == 8


def test_time_and_accumulation() -> None:
    model = nn.Linear(3, 2)
    meter = CostMeter(model)
    with meter:
        time.sleep(0.05)
        model(torch.zeros(4, 3))
    first = meter.seconds
    assert first >= 0.05
    with meter:
        model(input=torch.zeros(1, 3))  # keyword inputs count too
    assert meter.seconds > first
    assert meter.result(n_images=5) == Cost(meter.seconds, 2, 5, 5, meter.seconds / 5, 1.0)
    assert meter.queries_per_image(5) == 1.0


def test_hook_removed_on_error_and_bad_use() -> None:
    model = nn.Linear(3, 2)
    meter = CostMeter(model)
    with pytest.raises(RuntimeError), meter:
        raise RuntimeError("attack failed")
    model(torch.zeros(1, 3))
    assert meter.forward_calls == 0
    with pytest.raises(XaisecError, match="n_images"):
        meter.result()
    with meter, pytest.raises(XaisecError, match="already active"), meter:
        pass
    with pytest.raises(XaisecError, match=r"nn\.Module"):
        CostMeter(lambda z: z)  # type: ignore[arg-type]
