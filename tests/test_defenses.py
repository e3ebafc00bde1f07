"""xaisec.defenses: transforms, defended models, the feature-squeezing and ensemble detectors."""

from __future__ import annotations

import json

import pytest
import torch

from xaisec.defenses import (
    BitDepth,
    DefendedClassifier,
    MedianSmoothing,
    NonLocalMeans,
    SqueezeDetector,
    defend,
    parse,
    squeeze_detector,
    threshold_at_fpr,
)
from xaisec.defenses.ensemble import EnsembleDetector, MapStack, split_by_source, stack_maps, tpr_at_fpr
from xaisec.defenses.transforms import mirror_pad
from xaisec.models import Classifier
from xaisec.utils.checks import XaisecError


def _rand(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


# -- transforms ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [1, 3, 5, 8])
def test_bit_depth_is_idempotent_and_on_the_grid(bits: int) -> None:
    sq = BitDepth(bits)
    x = _rand()
    y = sq(x)
    assert torch.equal(sq(y), y)
    levels = 2**bits - 1
    assert torch.allclose(y * levels, (y * levels).round(), atol=1e-5)
    assert (y - x).abs().max() <= 0.5 / levels + 1e-6


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_median_of_constant_image_is_the_image(k: int) -> None:
    x = torch.full((2, 3, 9, 9), 0.37)
    assert torch.equal(MedianSmoothing(k)(x), x)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_median_matches_brute_force(k: int) -> None:
    x = _rand(2, seed=3)
    got = MedianSmoothing(k)(x)
    b, a = k // 2, k - 1 - k // 2
    p = mirror_pad(x, b, a, b, a)
    h, w = x.shape[-2:]
    win = torch.stack([p[..., i:i + h, j:j + w] for i in range(k) for j in range(k)], -1)
    want = win.sort(-1).values[..., k * k // 2]  # upper median, scipy's convention
    assert torch.equal(got, want)
    # an isolated bright pixel disappears, and the output is one of the window's values
    spike = torch.zeros(1, 1, 7, 7)
    spike[0, 0, 3, 3] = 1
    assert MedianSmoothing(k)(spike).max() == 0


def test_mirror_pad_repeats_the_edge() -> None:
    x = torch.arange(4.0).view(1, 1, 1, 4)
    assert mirror_pad(x, 0, 0, 2, 2).flatten().tolist() == [1, 0, 0, 1, 2, 3, 3, 2]


def test_nonlocal_means_keeps_flat_images_and_smooths_noise() -> None:
    flat = torch.full((1, 3, 12, 12), 0.5)
    assert torch.allclose(NonLocalMeans(5, 3, 10)(flat), flat, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    noisy = (0.5 + 0.02 * torch.randn(2, 3, 12, 12, generator=g)).clamp(0, 1)
    out = NonLocalMeans(5, 3, 10)(noisy)
    assert out.shape == noisy.shape and (out - 0.5).abs().mean() < (noisy - 0.5).abs().mean()


@pytest.mark.parametrize("spec", ["median:2", "median:3", "bits:4", "nlm:5-3-10"])
def test_bpda_passes_the_gradient_through(spec: str) -> None:
    sq = parse(spec, bpda=True)
    x = _rand(2).requires_grad_(True)
    w = torch.randn_like(x)
    (sq(x) * w).sum().backward()
    assert torch.allclose(x.grad, w)  # identity backward
    assert torch.equal(sq(x.detach()), parse(spec)(x.detach()))  # same forward as without BPDA


def test_without_bpda_bits_block_the_gradient_and_median_routes_it() -> None:
    x = _rand(1).requires_grad_(True)
    BitDepth(3)(x).sum().backward()
    assert float(x.grad.abs().sum()) == 0
    x.grad = None
    MedianSmoothing(3)(x).sum().backward()
    assert float(x.grad.sum()) == pytest.approx(x.numel())  # each output routes 1 to its median pixel


def test_squeezer_errors() -> None:
    for bad in (0, -1, 2.5):
        with pytest.raises(XaisecError, match="k must be an int >= 1"):
            MedianSmoothing(bad)  # type: ignore[arg-type]
    for bad in (0, 9):
        with pytest.raises(XaisecError, match="1-8"):
            BitDepth(bad)
    with pytest.raises(XaisecError, match="odd"):
        NonLocalMeans(4, 3, 2)
    with pytest.raises(XaisecError, match="unknown squeezer"):
        parse("blur:3")
    with pytest.raises(XaisecError, match="1-8"):
        parse("bits:12")
    with pytest.raises(XaisecError, match="SEARCH-PATCH-STRENGTH"):
        parse("nlm:13-3")


# -- defended models ----------------------------------------------------------------------------------------------
def test_defended_model_keeps_the_classifier_interface(tiny_model: Classifier, tiny_batch) -> None:
    x, _ = tiny_batch
    d = defend(tiny_model, "median", k=2)
    assert isinstance(d, DefendedClassifier) and isinstance(d, Classifier)
    for attr in ("cam_layer", "fc_layer", "classes", "num_classes", "input_size"):
        assert getattr(d, attr) == getattr(tiny_model, attr)
    assert d.net is tiny_model.net and d.normalize is tiny_model.normalize
    assert d.layer() is tiny_model.layer()
    assert torch.allclose(d(x), tiny_model(MedianSmoothing(2)(x)))
    assert defend(tiny_model, "bits:5").transform.bits == 5


@pytest.mark.parametrize("name", ["gradcam", "cam", "grad"])
def test_interpreters_run_on_a_defended_model(tiny_model: Classifier, tiny_batch, name: str) -> None:
    from xaisec.interpreters import get

    x, _ = tiny_batch
    d = defend(tiny_model, "median:2")
    maps = get(name, d)(x)
    assert maps.shape == (x.shape[0], 16, 16) and torch.isfinite(maps).all()
    plain = get(name, tiny_model)(MedianSmoothing(2)(x)) if name != "grad" else None
    if plain is not None:  # CAM-type maps read the layer, which sees the smoothed input
        assert torch.allclose(maps, plain, atol=1e-5)


def test_attack_runs_on_a_defended_model(tiny_model: Classifier, tiny_batch) -> None:
    import xaisec.attacks as attacks

    x, _ = tiny_batch
    d = defend(tiny_model, "bits:4", bpda=True)
    res = attacks.get("adv2", d, "gradcam", steps_scale=0.01, seed=0)(x)
    assert res.x_adv.shape == x.shape and (res.x_adv - x).abs().max() <= 8 / 255 + 1e-6
    assert res.x_adv.grad is None and res.iterations > 0


# -- feature squeezing -------------------------------------------------------------------------------------------
def test_threshold_gives_the_requested_fpr_on_its_calibration_set(tiny_model: Classifier) -> None:
    x = torch.rand(60, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    det = squeeze_detector(tiny_model, ["median:2", "bits:3"])
    for fpr in (0.05, 0.1, 0.3):
        det.calibrate(x, fpr=fpr)
        for name, score in det.scores(x).items():
            rate = float((score > det.thresholds[name]).float().mean())
            assert abs(rate - fpr) <= 1 / 60 + 1e-9, (name, rate, fpr)
        assert abs(float(det.flag(x).float().mean()) - fpr) <= 1 / 60 + 1e-9
    s = det.scores(x)
    assert torch.equal(s["joint"], torch.maximum(s["median:2"], s["bits:3"]))
    assert det.score(x).shape == (60,) and det.flag(x).dtype == torch.bool


def test_score_is_the_l1_softmax_distance(tiny_model: Classifier, tiny_batch) -> None:
    x, _ = tiny_batch
    det = SqueezeDetector(tiny_model, ["bits:2"])
    with torch.no_grad():
        want = (tiny_model(x).softmax(1) - tiny_model(BitDepth(2)(x)).softmax(1)).abs().sum(1)
    assert torch.allclose(det.score(x), want, atol=1e-6)
    assert torch.allclose(det.score(x, "bits:2"), want, atol=1e-6)


def test_squeeze_detector_errors(tiny_model: Classifier, tiny_batch) -> None:
    x, _ = tiny_batch
    det = squeeze_detector(tiny_model, ["median:2"])
    with pytest.raises(XaisecError, match="not calibrated"):
        det.flag(x)
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(XaisecError, match=r"\(0, 1\)"):
            det.calibrate(x, fpr=bad)
    with pytest.raises(XaisecError, match="empty"):
        det.calibrate(x[:0])
    with pytest.raises(XaisecError, match="empty"):
        threshold_at_fpr(torch.empty(0), 0.05)
    with pytest.raises(XaisecError, match="unknown squeezer"):
        squeeze_detector(tiny_model, ["median:2", "jpeg:75"])
    det.calibrate(x)
    with pytest.raises(XaisecError, match="unknown squeezer"):
        det.score(x, "bits:5")


def test_squeeze_detector_save_load_and_refuse_another_model(tiny_model: Classifier, tiny_batch, tmp_path) -> None:
    from tests.conftest import TinyNet
    from xaisec.models import wrap

    x, _ = tiny_batch
    det = squeeze_detector(tiny_model, ["median:2", "bits:5"])
    det.calibrate(x, fpr=0.2)
    path = det.save(tmp_path / "det.json")
    assert json.loads(path.read_text())["squeezers"] == ["median:2", "bits:5"]
    back = SqueezeDetector.load(path, tiny_model)
    assert back.thresholds == pytest.approx(det.thresholds)
    assert torch.equal(back.flag(x), det.flag(x))
    torch.manual_seed(123)
    other = wrap(TinyNet(), cam_layer="features", fc_layer="fc", classes=[str(i) for i in range(5)])
    with pytest.raises(XaisecError, match="not this one"):
        SqueezeDetector.load(path, other)


# -- ensemble detector -------------------------------------------------------------------------------------------
def test_split_by_source_never_shares_an_image() -> None:
    groups = torch.cat([torch.arange(50), torch.arange(50)[::2]])
    for seed in range(3):
        train, test = split_by_source(groups, 0.3, seed)
        assert not set(groups[train].tolist()) & set(groups[test].tolist())
        assert train.numel() + test.numel() == groups.numel()
        assert 10 <= groups[test].unique().numel() <= 20
    with pytest.raises(XaisecError, match="test_fraction"):
        split_by_source(groups, 1.0)


def test_tpr_at_fpr_and_stacking() -> None:
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    assert tpr_at_fpr(scores, labels, 0.05) == 1.0
    maps = {"a": torch.rand(3, 4, 4), "b": torch.rand(3, 4, 4)}
    s = stack_maps(maps, ["a", "b"], "product")
    assert s.shape == (3, 3, 4, 4) and torch.allclose(s[:, 2], maps["a"] * maps["b"])
    with pytest.raises(XaisecError, match="variant"):
        stack_maps(maps, ["a", "b"], "sum")


def test_ensemble_detector_learns_separable_maps_and_round_trips(tiny_model: Classifier, tmp_path) -> None:
    from tests.conftest import TinyNet
    from xaisec.models import wrap

    g = torch.Generator().manual_seed(0)
    n = 40
    benign = {k: torch.rand(n, 16, 16, generator=g) * 0.5 for k in ("grad", "cam")}
    adv = {k: 0.5 + torch.rand(n, 16, 16, generator=g) * 0.5 for k in ("grad", "cam")}
    maps = {k: torch.cat([benign[k], adv[k]]) for k in benign}
    labels = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    groups = torch.arange(n).repeat(2)
    det = EnsembleDetector(tiny_model, ["grad", "cam"], epochs=3, width=8)
    rep = det.fit_maps(maps, labels, groups)
    assert rep["shared_sources"] == 0 and rep["n_train"] + rep["n_test"] == 2 * n
    assert rep["test"]["accuracy"] >= 0.9 and rep["test"]["auc"] >= 0.9
    det.save(tmp_path / "ens")
    back = EnsembleDetector.load(tmp_path / "ens", tiny_model)
    s = stack_maps(maps, ["grad", "cam"])
    assert torch.allclose(back.proba_from_stack(s), det.proba_from_stack(s), atol=1e-6)
    torch.manual_seed(7)
    other = wrap(TinyNet(), cam_layer="features", fc_layer="fc", classes=[str(i) for i in range(5)])
    with pytest.raises(XaisecError, match="not this one"):
        EnsembleDetector.load(tmp_path / "ens", other)


def test_map_stack_and_errors(tiny_model: Classifier, tiny_batch) -> None:
    x, _ = tiny_batch
    st = MapStack(tiny_model, ["grad", "cam"], "product")
    s = st(x)
    assert s.shape == (x.shape[0], 3, 16, 16) and float(s.min()) >= 0 and float(s.max()) <= 1
    with pytest.raises(XaisecError, match="unknown interpreter"):
        MapStack(tiny_model, ["grad", "nope"])
    with pytest.raises(XaisecError, match="product"):
        MapStack(tiny_model, ["grad"], "product")
    with pytest.raises(XaisecError, match="not trained"):
        EnsembleDetector(tiny_model, ["grad", "cam"]).predict_proba(x)
