import pytest
import torch

from tests.conftest import TinyNet, shared_or_skip
from xaisec.models import load, load_into, read_state_dict, save_safetensors
from xaisec.utils.checks import XaisecError


def test_safetensors_round_trip(tmp_path):
    a, b = TinyNet(), TinyNet()
    save_safetensors(a, tmp_path / "w.safetensors")
    load_into(b, tmp_path / "w.safetensors")
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(v, w), k


def test_torch_checkpoint_with_module_prefix(tmp_path):
    a = TinyNet()
    torch.save({"state_dict": {f"module.{k}": v for k, v in a.state_dict().items()}, "best_prec1": 1.0},
               tmp_path / "c.th")
    state = read_state_dict(tmp_path / "c.th")
    assert set(state) == set(a.state_dict())


def test_corrupted_and_mismatched_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(XaisecError, match="corrupted"):
        read_state_dict(bad)
    bad_pt = tmp_path / "bad.pt"
    bad_pt.write_bytes(b"garbage")
    with pytest.raises(XaisecError, match="corrupted"):
        read_state_dict(bad_pt)
    with pytest.raises(XaisecError, match="no such"):
        read_state_dict(tmp_path / "missing.safetensors")
    save_safetensors(torch.nn.Linear(3, 3), tmp_path / "lin.safetensors")
    with pytest.raises(XaisecError, match="do not fit"):
        load_into(TinyNet(), tmp_path / "lin.safetensors")


def test_unsafe_pickle_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('executed')",))

    torch.save({"state_dict": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(XaisecError, match="cannot read"):
        read_state_dict(tmp_path / "evil.pt")


def test_third_party_resnet20_checkpoint_loads_and_classifies():
    ckpt = shared_or_skip("models", "cifar10-resnet20-akamaster", "resnet20-12fca82f.th")
    from xaisec.data import samples

    model = load("cifar10_resnet20", weights=ckpt, device="cpu")
    ds = samples("cifar10")
    with torch.no_grad():
        acc = (model(ds.float_images()).argmax(1) == ds.labels).float().mean()
    assert acc >= 0.8  # the lossless foolbox CIFAR-10 samples; the checkpoint scores 91.7% on clean CIFAR-10


class _Opaque:
    """Not a tensor: torch.load(weights_only=True) refuses to unpickle it."""


def test_nan_weights_folder_and_plain_messages(tmp_path):
    net = TinyNet()
    with torch.no_grad():
        next(net.parameters()).fill_(float("inf"))
    save_safetensors(net, tmp_path / "inf.safetensors")
    with pytest.raises(XaisecError, match="NaN or infinite"):
        read_state_dict(tmp_path / "inf.safetensors")
    with pytest.raises(XaisecError, match="is a folder"):
        read_state_dict(tmp_path)
    torch.save({"state_dict": TinyNet().state_dict(), "opt": _Opaque()}, tmp_path / "p.pt")
    with pytest.raises(XaisecError) as info:
        read_state_dict(tmp_path / "p.pt")
    msg = str(info.value)
    assert "never unpickles" in msg and "save_file" in msg and "\x1b[" not in msg and "\n" not in msg
