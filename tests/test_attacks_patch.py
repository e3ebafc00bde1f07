"""The Grad-CAM patch attack: geometry, bit-exact outside pixels, ratio bound, map modes, presets, errors."""

from __future__ import annotations

import pytest
import torch

from xaisec.attacks import get
from xaisec.attacks.patch import PRESETS, box_mask, paste, patch_box
from xaisec.utils.checks import XaisecError


def _attack(model, mode: str, **kw):
    opts = {"size": 0.25, "ratio": 1.0, "position": "top-right", "map_mode": mode, "steps": 30,
            "step_size": 0.03, "seed": 0}
    opts.update(kw)
    return get("patch", model, "gradcam", **opts)


def test_patch_box_corners_and_paper_position() -> None:
    assert patch_box("top-right", 0.25, (32, 32)) == (0, 24, 8, 8)
    assert patch_box("top-left", 0.25, (32, 32)) == (0, 0, 8, 8)
    assert patch_box("bottom-right", 0.25, (32, 32)) == (24, 24, 8, 8)
    assert patch_box("bottom-left", 0.125, (32, 32)) == (28, 0, 4, 4)
    assert patch_box("paper", 64 / 224, (224, 224)) == (0, 150, 64, 64)
    assert patch_box((3, 5), 0.25, (32, 32)) == (3, 5, 8, 8)
    assert patch_box((0.5, 0.25), 0.25, (32, 32)) == (16, 8, 8, 8)


def test_paste_per_image_positions_matches_reference() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 10, 10, generator=g)
    content = torch.rand(3, 3, 4, 4, generator=g)
    top, left = torch.tensor([0, 2, 6]), torch.tensor([6, 3, 0])
    out = paste(x, content, top, left, 0.5)
    ref = x.clone()
    for i in range(3):
        t, lf = int(top[i]), int(left[i])
        ref[i, :, t:t + 4, lf:lf + 4] = 0.5 * x[i, :, t:t + 4, lf:lf + 4] + 0.5 * content[i]
    assert torch.allclose(out, ref)
    m = box_mask(top, left, 4, 4, (10, 10)).bool().unsqueeze(1).expand_as(x)
    assert torch.equal(out[~m], x[~m])


@pytest.mark.parametrize("mode", ["none", "hide", "attract"])
def test_outside_pixels_bit_exact_and_result_fields(tiny_model, tiny_batch, mode: str) -> None:
    x, y = tiny_batch
    res = _attack(tiny_model, mode, steps=5)(x, y)
    mask = res.maps_target.bool()
    assert mask.shape == (6, 16, 16) and int(mask[0].sum()) == 16
    assert bool(mask[:, 0:4, 12:16].all())
    outside = (~mask).unsqueeze(1).expand_as(x)
    assert torch.equal(res.x_adv[outside], x[outside])
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert res.config["patch_box"] == [0, 12, 4, 4] and res.config["map_mode"] == mode
    for k in ("success", "patch_mass", "patch_mass_up", "area_share", "fidelity_off_patch"):
        assert res.metrics[k].shape == (6,)
    assert torch.allclose(res.metrics["area_share"], torch.full((6,), 16 / 256))


def test_ratio_bounds_the_change_inside(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    res = _attack(tiny_model, "attract", ratio=0.2, steps=10, step_size=0.2)(x, y)
    d = (res.x_adv - x).abs()
    assert float(d.max()) <= 0.2 + 1e-6
    assert float(d.max()) > 0.05  # the patch did move


def test_same_seed_same_patch(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    a = _attack(tiny_model, "hide", steps=8, init="random")(x, y)
    b = _attack(tiny_model, "hide", steps=8, init="random")(x, y)
    c = _attack(tiny_model, "hide", steps=8, init="random", seed=1)(x, y)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.target, b.target)
    assert not torch.equal(a.x_adv, c.x_adv)


def test_hide_lowers_and_attract_raises_the_mass(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    mass = {m: _attack(tiny_model, m, keep_best=False)(x, y).metrics["patch_mass"].mean().item()
            for m in ("none", "hide", "attract")}
    assert mass["hide"] < mass["none"] < mass["attract"]
    assert mass["hide"] < 0.5 * mass["attract"]


def test_presets_and_overrides(tiny_model) -> None:
    atk = get("patch", tiny_model, "gradcam", preset="subramanya2019")
    assert (atk.position, atk.map_mode, atk.steps, atk.ratio) == ("top-left", "hide", 750, 1.0)
    atk = get("patch", tiny_model, "gradcam", preset="le2021_faint", steps=3)
    assert (atk.ratio, atk.steps, atk.map_mode) == (0.2, 3, "attract")
    assert get("patch", tiny_model, "gradcam", preset="plain").map_mode == "none"
    assert set(PRESETS) == {"le2021_visible", "le2021_faint", "subramanya2019", "plain"}


def test_other_cam_interpreters_and_non_cam_with_none(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    for name in ("cam", "gradcam_pp"):
        res = get("patch", tiny_model, name, map_mode="hide", steps=2, seed=0)(x, y)
        assert res.config["interpreter"] == name
    res = get("patch", tiny_model, "grad", map_mode="none", steps=2, seed=0)(x, y)
    assert res.metrics["patch_mass"].shape == (6,)


@pytest.mark.parametrize(("options", "match"), [
    ({"size": 1.5}, "larger than the image"),
    ({"size": 0.0}, "must be > 0"),
    ({"size": -0.1}, "must be > 0"),
    ({"ratio": 0.0}, r"ratio must be in \(0, 1\]"),
    ({"ratio": 1.2}, r"ratio must be in \(0, 1\]"),
    ({"position": "middle-ish"}, "unknown patch position"),
    ({"preset": "le2022"}, "unknown patch preset"),
    ({"map_mode": "steer"}, "unknown map_mode"),
    ({"target_class": "untargeted"}, "targeted"),
    ({"loss": "hinge"}, "unknown patch loss"),
    ({"kappa": -1.0}, "kappa"),
])
def test_bad_options(tiny_model, options, match) -> None:
    with pytest.raises(XaisecError, match=match):
        get("patch", tiny_model, "gradcam", **options)


def test_position_outside_the_image(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    with pytest.raises(XaisecError, match="outside the 16x16 image"):
        get("patch", tiny_model, "gradcam", position=(0, 14), steps=1)(x, y)
    with pytest.raises(XaisecError, match="outside"):
        get("patch", tiny_model, "gradcam", position=(-1, 0), steps=1)(x, y)


def test_non_cam_interpreter_with_map_mode(tiny_model) -> None:
    for mode in ("hide", "attract"):
        with pytest.raises(XaisecError, match="cam, gradcam, gradcam_pp"):
            get("patch", tiny_model, "grad", map_mode=mode)


def test_outline_mask_draws_a_ring_outside_the_patch() -> None:
    from xaisec.reports.images import outline_mask

    img = torch.zeros(3, 8, 8)
    mask = torch.zeros(8, 8)
    mask[0:3, 5:8] = 1
    out = outline_mask(img, mask)
    ring = out[0] > 0
    assert not ring[mask.bool()].any()  # the patch itself is untouched
    assert int(ring.sum()) == 3 + 3 + 1  # below, left, and the corner pixel


def test_cli_patch_flags_become_attack_options() -> None:
    import argparse

    from xaisec.cli.attack_cmd import add_parser, patch_options

    p = argparse.ArgumentParser()
    add_parser(p)
    args = p.parse_args(["--attack", "patch", "--patch-mode", "hide", "--patch-size", "0.125", "--patch-ratio", "0.2",
                         "--patch-position", "3,5", "--patch-steps", "7", "--out", "x"])
    assert patch_options(args) == {"map_mode": "hide", "size": 0.125, "ratio": 0.2, "steps": 7, "position": (3, 5)}
    args = p.parse_args(["--attack", "patch", "--patch-position", "top-left", "--out", "x"])
    assert patch_options(args) == {"position": "top-left"}
    with pytest.raises(XaisecError, match="--patch-"):
        patch_options(p.parse_args(["--attack", "patch", "--eps", "8/255", "--out", "x"]))
    with pytest.raises(XaisecError, match="ROW,COL"):
        patch_options(p.parse_args(["--attack", "patch", "--patch-position", "a,b", "--out", "x"]))


@pytest.mark.slow
def test_cli_attack_patch_writes_results_and_outlined_report(tmp_path) -> None:
    import json

    from tests.test_cli import run_cli
    from xaisec.models import shipped_weights

    if shipped_weights("cifar10_resnet20") is None:
        pytest.skip("the default model's weights are not shipped")
    out = tmp_path / "patch"
    res = run_cli("-q", "attack", "--attack", "patch", "--patch-mode", "hide", "--patch-size", "0.25",
                  "--patch-ratio", "1.0", "--patch-position", "top-right", "--patch-steps", "2", "--samples",
                  "cifar10", "--n", "2", "--out", str(out))
    assert res.returncode == 0, res.stderr
    record = json.loads((out / "results.json").read_text())
    assert record["config"]["map_mode"] == "hide" and record["config"]["patch_box"] == [0, 24, 8, 8]
    assert "patch_mass" in record["mean"] and "patch" in (out / "report.html").read_text()
    res = run_cli("attack", "--attack", "patch", "--eps", "8/255", "--samples", "cifar10", "--out", str(out))
    assert res.returncode == 2 and "--patch-" in res.stderr


def test_margin_loss_values() -> None:
    from xaisec.attacks.patch import class_loss

    z = torch.tensor([[1.0, 3.0, 0.0], [0.0, 9.0, 2.0]])
    t = torch.tensor([0, 1])
    assert torch.allclose(class_loss(z, t, "margin", kappa=5.0), torch.tensor([2.0, -5.0]))
    assert torch.allclose(class_loss(z, t, "margin", kappa=10.0), torch.tensor([2.0, -7.0]))
    assert torch.allclose(class_loss(z, t, "ce"), torch.nn.functional.cross_entropy(z, t, reduction="none"))


def test_margin_loss_with_adam_raises_target_logit(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    res = _attack(tiny_model, "none", steps=15, optimizer="adam", step_size=0.2, final_step=0.05, loss="margin")(x, y)
    outside = (~res.maps_target.bool()).unsqueeze(1).expand_as(x)
    assert torch.equal(res.x_adv[outside], x[outside])
    assert res.config["loss"] == "margin" and res.config["optimizer"] == "adam"
    with torch.no_grad():
        t = res.target.view(-1, 1)
        before = tiny_model(x).log_softmax(1).gather(1, t)
        after = tiny_model(res.x_adv).log_softmax(1).gather(1, t)
    assert float((after - before).mean()) > 0
