"""Budget scaling and projection: the norm holds exactly; bad budgets are clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from xaisec.universal.budget import lp_norm, project, scale_to_budget
from xaisec.utils.checks import XaisecError


@pytest.mark.parametrize("norm,eps", [("linf", 10 / 255), ("l2", 1.12)])
def test_cap_and_exact_scaling(norm: str, eps: float) -> None:
    g = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    g[0] *= 1e-4  # already inside the ball: "cap" keeps it, "exact" moves it to the sphere
    capped = scale_to_budget(g, norm, eps, "cap")
    exact = scale_to_budget(g, norm, eps, "exact")
    torch.testing.assert_close(capped[0], g[0])
    torch.testing.assert_close(lp_norm(exact, norm), torch.full((5,), eps), rtol=1e-5, atol=0)
    assert (lp_norm(capped, norm) <= eps * (1 + 1e-6)).all()


@pytest.mark.parametrize("norm,eps", [("linf", 10 / 255), ("l2", 1.12), ("l2", 0.5)])
def test_project_holds_exactly(norm: str, eps: float) -> None:
    v = torch.randn(20, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 3
    p = project(v, norm, eps)
    assert (lp_norm(p, norm) <= eps).all()  # float32 values, compared with the float budget
    assert (lp_norm(p, norm) >= eps * (1 - 1e-5)).all()  # and not shrunk more than needed


@pytest.mark.parametrize("eps", [0, -0.1, math.nan, math.inf, "a"])
def test_bad_budget(eps: object) -> None:
    with pytest.raises(XaisecError, match="eps"):
        scale_to_budget(torch.ones(1, 1, 2, 2), "linf", eps)  # type: ignore[arg-type]


def test_unknown_norm_and_scaling() -> None:
    with pytest.raises(XaisecError, match="unknown norm"):
        project(torch.ones(1, 1, 2, 2), "l1", 0.1)
    with pytest.raises(XaisecError, match="unknown budget scaling"):
        scale_to_budget(torch.ones(1, 1, 2, 2), "linf", 0.1, "soft")
