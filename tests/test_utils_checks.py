import pytest
import torch

from xaisec.utils.checks import XaisecError, check_images, check_targets, resolve_device


def test_check_images_accepts_valid_batch():
    x = torch.rand(2, 3, 8, 8)
    assert check_images(x) is x


@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        (torch.rand(3, 8, 8), "unsqueeze"),
        (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), "float"),
        (torch.full((1, 3, 4, 4), float("nan")), "NaN"),
        (torch.rand(1, 3, 4, 4) * 255, "[0, 1]"),
        (torch.rand(1, 3, 4, 4) - 0.5, "[0, 1]"),
        ([1, 2, 3], "torch.Tensor"),
    ],
)
def test_check_images_rejects_bad_input_with_a_fix(x, fragment):
    with pytest.raises(XaisecError, match=None) as info:
        check_images(x)
    assert fragment in str(info.value)


def test_check_images_channels():
    with pytest.raises(XaisecError, match="channels"):
        check_images(torch.rand(1, 1, 4, 4), channels=3)


def test_check_targets_broadcasts_int_and_validates():
    assert check_targets(3, 4).tolist() == [3, 3, 3, 3]
    assert check_targets(torch.tensor([1, 2]), 2).dtype == torch.long
    with pytest.raises(XaisecError, match="shape"):
        check_targets(torch.tensor([1, 2, 3]), 2)
    with pytest.raises(XaisecError, match="integer"):
        check_targets(torch.tensor([1.0, 2.0]), 2)
    with pytest.raises(XaisecError, match=r"\[0, 9\]"):
        check_targets(torch.tensor([1, 10]), 2, num_classes=10)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type in ("cpu", "cuda")


def test_check_images_dtype_layout_and_size():
    x = torch.rand(2, 3, 8, 8)
    assert check_images(x.double()) is not None  # float64 is fine: the model converts it
    with pytest.raises(XaisecError, match="channels-last"):
        check_images(torch.rand(2, 8, 8, 3), channels=3)
    with pytest.raises(XaisecError, match="RGBA"):
        check_images(torch.rand(2, 4, 8, 8), channels=3)
    with pytest.raises(XaisecError, match="pixels"):
        check_images(x, size=(16, 16))
    with pytest.raises(XaisecError, match="empty"):
        check_images(torch.rand(0, 3, 8, 8))


def test_check_finite_budget_and_seed(caplog):
    from xaisec.utils.checks import check_budget, check_finite, check_seed

    assert check_finite("0.5", "lr", low=0, low_open=True) == 0.5
    for bad in (float("nan"), float("inf"), 0.0):
        with pytest.raises(XaisecError, match="lr"):
            check_finite(bad, "lr", low=0, low_open=True)
    with pytest.raises(XaisecError, match=r"\[0, 1\)"):
        check_finite(2, "label_smoothing", low=0, high=1, high_open=True)
    with caplog.at_level("WARNING"):
        assert check_budget(8) == 8.0
    assert "8/255" in caplog.text
    assert check_seed(3) == 3
    for bad in (-1, 1.5, True, 2**63):
        with pytest.raises(XaisecError, match="seed"):
            check_seed(bad)


def test_resolve_device_errors():
    with pytest.raises(XaisecError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(XaisecError, match="CUDA is not available"):
            resolve_device("cuda")
