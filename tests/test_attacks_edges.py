import pytest
import torch

from xaisec.attacks.edges import edge_weights, sobel_magnitude
from xaisec.utils.checks import XaisecError


def test_sobel_on_a_vertical_step_edge():
    x = torch.zeros(1, 3, 8, 8)
    x[..., 4:] = 1.0
    mag = sobel_magnitude(x)[0, 0]
    assert mag.shape == (8, 8)
    assert torch.allclose(mag[:, 3], torch.full((8,), 4.0), atol=1e-5)  # 1 + 2 + 1 for a unit step
    assert float(mag[:, :2].max()) < 1e-5 and float(mag[:, 6:].max()) < 1e-5


def test_edge_modes():
    x = torch.rand(2, 3, 8, 8)
    assert edge_weights(x, None) is None
    w = edge_weights(x, "sobel")
    assert w.shape == (2, 1, 8, 8) and float(w.min()) >= 0 and float(w.max()) <= 1
    assert torch.equal(w, sobel_magnitude(x).clamp(0, 1))
    b = edge_weights(x, "binary", threshold=0.1)
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(b, (sobel_magnitude(x) > 0.1).float())
    with pytest.raises(XaisecError, match="edge mode"):
        edge_weights(x, "canny")
    with pytest.raises(XaisecError, match="threshold"):
        edge_weights(x, "binary", threshold=0)


def test_budget_weights_have_mean_one_and_keep_the_sobel_proportions():
    x = torch.rand(3, 3, 8, 8)
    x[2] = 0.5  # a flat image: no edges, so (almost) no steps rather than NaN or uniform ones
    w = edge_weights(x, "sobel")
    wb = edge_weights(x, "sobel", budget=True)
    assert torch.allclose(wb[:2].mean((1, 2, 3)), torch.ones(2), atol=1e-5)
    assert float(wb[:2].max()) > 1  # amplified on the strongest edges
    ratio = wb[:2] / w[:2]
    assert torch.allclose(ratio, ratio.flatten(1)[:, :1].view(-1, 1, 1, 1).expand_as(ratio), rtol=1e-4)
    assert torch.isfinite(wb).all() and float(wb[2].abs().max()) < 1e-2
    assert torch.equal(edge_weights(x, "binary", budget=True), edge_weights(x, "binary"))
