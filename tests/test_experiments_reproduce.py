import pytest

from xaisec.experiments.reproduce import build_cells
from xaisec.utils.checks import XaisecError


def test_grid_cells_cover_models_interpreters_attacks_and_frameworks():
    cells = build_cells(["cifar10_resnet20", "cifar10_vgg11_bn"], ("gradcam", "mask"))
    main = [c for c in cells if c.model == "cifar10_resnet20"]
    assert {(c.interpreter, c.framework) for c in main} == {("gradcam", "pgd"), ("gradcam", "cw"),
                                                            ("gradcam", "stadv"), ("mask", "pgd")}
    assert {c.framework for c in cells if c.model == "cifar10_vgg11_bn"} == {"pgd"}
    assert {c.n for c in main if c.interpreter == "gradcam"} == {100}
    assert {c.n for c in cells if c.interpreter == "mask" or c.model != "cifar10_resnet20"} == {32}


def test_mask_restarts_go_to_the_bilevel_attacks_only():
    plain = {c.attack: dict(c.options) for c in build_cells(["cifar10_resnet20"], ("mask", "cam"))
             if c.interpreter == "mask"}
    assert all("restarts" not in o for o in plain.values())
    cells = build_cells(["cifar10_resnet20"], ("mask", "cam"), mask_restarts=3)
    opts = {(c.interpreter, c.attack, c.framework): dict(c.options) for c in cells}
    assert opts[("mask", "pgd", "pgd")] == {"interpreter_options": {"iterations": 100}}
    for attack in ("adv2", "advedge", "advedge+"):
        assert opts[("mask", attack, "pgd")]["restarts"] == 3
        assert "restarts" not in opts[("cam", attack, "pgd")]
    with pytest.raises(XaisecError, match="mask_restarts"):
        build_cells(["cifar10_resnet20"], ("mask",), mask_restarts=0)


@pytest.mark.parametrize("kind, kwargs", [("attack", {"attacks": ("advedgeplus",)}),
                                          ("framework", {"frameworks": ("fgsm",)}),
                                          ("interpreter", {"interpreters": ("gradcamm",)})])
def test_unknown_names_are_refused_before_any_cell_runs(kind, kwargs):
    with pytest.raises(XaisecError, match=f"unknown {kind}"):
        build_cells(["cifar10_resnet20"], **kwargs)
