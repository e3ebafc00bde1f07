import pytest
import torch

from xaisec.attacks.frameworks import CW, PGD, StAdv, flow_smoothness, warp
from xaisec.utils.checks import XaisecError


def test_pgd_stays_in_the_ball_and_the_image_range():
    x = torch.rand(4, 3, 8, 8)
    fw = PGD(eps=8 / 255, alpha=3 / 255)
    fw.start(x, None)
    for _ in range(10):
        fw.update(torch.randn_like(x))
    xa = fw.adversarial()
    assert float((xa - x).abs().max()) <= 8 / 255 + 1e-6
    assert float(xa.min()) >= 0 and float(xa.max()) <= 1


def test_pgd_binary_weights_freeze_masked_pixels():
    x = torch.rand(2, 3, 8, 8)
    w = torch.zeros(2, 1, 8, 8)
    w[..., :4] = 1
    fw = PGD(eps=0.1, alpha=0.05, random_start=True, generator=torch.Generator().manual_seed(0))
    fw.start(x, w)
    for _ in range(5):
        fw.update(torch.randn_like(x))
    assert torch.equal(fw.adversarial()[..., 4:], x[..., 4:])
    assert float((fw.adversarial()[..., :4] - x[..., :4]).abs().max()) > 0


def test_cw_is_in_range_and_penalises_distance():
    x = torch.rand(2, 3, 8, 8)
    fw = CW(lr=0.1, l2_weight=2.0)
    fw.start(x, None)
    assert torch.allclose(fw.adversarial(), x, atol=1e-5)
    for _ in range(5):
        fw.update(torch.randn_like(x))
    xa = fw.adversarial()
    assert float(xa.min()) >= 0 and float(xa.max()) <= 1
    assert torch.allclose(fw.penalty(xa), 2.0 * (xa - x).pow(2).flatten(1).sum(1))


def test_warp_identity_and_shift():
    x = torch.rand(1, 1, 6, 6)
    assert torch.allclose(warp(x, torch.zeros(1, 2, 6, 6)), x, atol=1e-6)
    flow = torch.zeros(1, 2, 6, 6)
    flow[:, 1] = 1.0  # sample one pixel to the right
    assert torch.allclose(warp(x, flow)[..., :5], x[..., 1:], atol=1e-6)


def test_flow_smoothness():
    assert float(flow_smoothness(torch.ones(1, 2, 5, 5), eps=0)) == pytest.approx(0.0)
    rough = torch.zeros(1, 2, 5, 5)
    rough[0, 0, 2, 2] = 1.0
    assert float(flow_smoothness(rough, eps=0)) == pytest.approx(4.0)


def test_stadv_starts_near_identity():
    x = torch.rand(2, 3, 8, 8)
    fw = StAdv(generator=torch.Generator().manual_seed(0))
    fw.start(x, None)
    assert float((fw.adversarial() - x).abs().max()) < 1e-2


def test_bad_parameters():
    with pytest.raises(XaisecError):
        PGD(eps=-1)
    with pytest.raises(XaisecError):
        CW(lr=0)
    with pytest.raises(XaisecError):
        StAdv(tau=-1)


def test_step_scale_shrinks_the_pgd_step():
    x = torch.full((1, 3, 4, 4), 0.5)
    fw = PGD(eps=8 / 255, alpha=2 / 255)
    fw.start(x, None)
    fw.step_scale = 0.25
    fw.update(torch.ones_like(x))
    assert torch.allclose(fw.adversarial() - x, torch.full_like(x, -0.5 / 255))


def test_pgd_random_start_with_amplifying_weights_stays_in_the_ball():
    x = torch.rand(2, 3, 8, 8) * 0.5 + 0.25
    w = torch.full((2, 1, 8, 8), 3.0)
    fw = PGD(eps=0.05, alpha=0.01, random_start=True, generator=torch.Generator().manual_seed(0))
    fw.start(x, w)
    assert float((fw.adversarial() - x).abs().max()) <= 0.05 + 1e-6
    assert float((fw.adversarial() - x).abs().max()) > 0.04  # the weights did amplify the start


def test_cw_l2_budget_holds_for_every_iterate():
    x = torch.rand(3, 3, 8, 8)
    fw = CW(max_l2=0.2)
    fw.start(x, None)
    with torch.no_grad():
        fw.param.add_(torch.randn_like(fw.param))  # a large move in tanh space
    xa = fw.adversarial()
    dist = (xa - x).flatten(1).norm(dim=1)
    assert bool((dist <= 0.2 + 1e-5).all()) and float(dist.max()) > 0.19
    assert float(xa.min()) >= 0 and float(xa.max()) <= 1
    assert "L2 <= 0.2" in fw.threat_model and "no hard budget" in CW().threat_model


def test_framework_options_must_be_finite():
    for bad in ({"lr": float("nan")}, {"max_l2": float("inf")}, {"max_l2": 0.0}):
        with pytest.raises(XaisecError):
            CW(**bad)
    for bad in ({"tau": float("nan")}, {"max_flow": -1.0}):
        with pytest.raises(XaisecError):
            StAdv(**bad)
    assert "1 px" in StAdv(max_flow=1.0).threat_model
