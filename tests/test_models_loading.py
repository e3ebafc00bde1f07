import pickle

import pytest
import torch

from tests.conftest import TinyNet
from xaisec.interpreters import get as get_interpreter
from xaisec.models import load, save_safetensors, wrap
from xaisec.models.card import write_card
from xaisec.models.loading import (
    build_arch,
    export_torchscript,
    guess_cam_layer,
    guess_fc_layer,
    load_model_spec,
    save_model_folder,
    stem_stride,
)
from xaisec.utils.checks import XaisecError

FACTORY = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1),
                                      nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


def make(num_classes=5):
    return Net(num_classes)


def not_a_module():
    return 42
"""


@pytest.fixture
def factory_file(tmp_path):
    p = tmp_path / "user_net.py"
    p.write_text(FACTORY)
    return p


def _tiny():
    torch.manual_seed(0)
    return wrap(TinyNet(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cam_layer="features", fc_layer="fc",
                classes=[f"c{i}" for i in range(5)], input_size=(3, 16, 16), name="tiny").eval()


def test_zoo_name_matches_the_zoo_loader():
    a = load_model_spec("cifar10_resnet20", weights="random", device="cpu")
    assert a.cam_layer == "layer3" and a.fc_layer == "linear" and a.input_size == (3, 32, 32)
    assert len(a.classes) == 10
    b = load("cifar10_resnet20", weights="random", device="cpu")
    assert type(a.net) is type(b.net)


def test_torchscript_export_gives_the_same_logits_and_maps(tmp_path):
    model = _tiny()
    path, card = export_torchscript(model, tmp_path / "tiny.pt")
    assert card.name == "tiny.json"
    ts = load_model_spec(path, device="cpu")
    assert ts.classes == model.classes and ts.input_size == (3, 16, 16) and ts.cam_layer == "features"
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ts(x), model(x), atol=1e-5)
    for name in ("gradcam", "cam", "grad"):
        assert torch.allclose(get_interpreter(name, ts)(x, 1), get_interpreter(name, model)(x, 1), atol=1e-5), name


def test_plain_torchscript_works_for_gradients_but_has_no_cam_layer(tmp_path):
    model = _tiny()
    torch.jit.script(model.net).save(str(tmp_path / "plain.pt"))
    ts = load_model_spec(tmp_path / "plain.pt", mean=[0.5] * 3, std=[0.25] * 3, input_size=(3, 16, 16),
                         device="cpu")
    assert ts.cam_layer is None
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(get_interpreter("grad", ts)(x, 0), get_interpreter("grad", model)(x, 0), atol=1e-5)


def test_factory_from_file_and_module_with_weights(tmp_path, factory_file, monkeypatch):
    m = load_model_spec(f"{factory_file}:make", mean=[0.5] * 3, std=[0.25] * 3, classes=list("abcde"),
                        input_size=(3, 16, 16), device="cpu")
    assert m.cam_layer == "features" and m.fc_layer == "fc"  # guessed: last conv block, last linear
    w = save_safetensors(m.net, tmp_path / "w.safetensors")
    monkeypatch.syspath_prepend(str(tmp_path))
    m2 = load_model_spec("user_net:make", weights=w, classes=list("abcde"), mean=[0.5] * 3, std=[0.25] * 3,
                         input_size=(3, 16, 16), device="cpu")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))


def test_folder_with_card_round_trips(tmp_path, factory_file):
    model = load_model_spec(f"{factory_file}:make", mean=[0.5] * 3, std=[0.25] * 3, classes=list("abcde"),
                            input_size=(3, 16, 16), device="cpu")
    folder = tmp_path / "model_dir"
    folder.mkdir()
    (folder / "user_net.py").write_text(FACTORY)
    save_model_folder(model, folder, factory="user_net.py:make")
    again = load_model_spec(folder, device="cpu")
    assert again.classes == list("abcde") and again.cam_layer == "features"
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_folder_with_a_zoo_architecture(tmp_path):
    net, info = build_arch("pneumonia_cnn", num_classes=3, in_channels=1, image_size=16)
    model = wrap(net, mean=[0.5], std=[0.2], cam_layer=info["cam_layer"], fc_layer=info["fc_layer"],
                 classes=["x", "y", "z"], input_size=(1, 16, 16))
    save_model_folder(model.eval(), tmp_path, arch="pneumonia_cnn", arch_options=info["arch_options"])
    again = load_model_spec(tmp_path, device="cpu")
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_architectures_adapt_to_channels_classes_and_size():
    for arch in ("resnet20", "vgg11_bn", "densenet40", "mobilenetv2", "pneumonia_cnn"):
        net, info = build_arch(arch, num_classes=3, in_channels=1, image_size=64)
        assert net(torch.rand(2, 1, 64, 64)).shape == (2, 3), arch
        assert info["arch_options"]["stem_stride"] >= 2, arch
    assert stem_stride(32, 32) == 1 and stem_stride(64, 32) == 2 and stem_stride(224, 32) == 4
    assert stem_stride(64, 32, base_stride=2) == 4


def test_layer_guesses():
    net = TinyNet()
    assert guess_cam_layer(net) == "features" and guess_fc_layer(net) == "fc"
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2))
    assert guess_cam_layer(seq) == "0" and guess_fc_layer(seq) == "4"


def test_torchvision_without_download():
    m = load_model_spec("torchvision:resnet18", weights="random", classes=[str(i) for i in range(1000)],
                        device="cpu")
    assert m.cam_layer == "layer4" and m.fc_layer == "fc"


def test_timm_when_installed():
    pytest.importorskip("timm", exc_type=ImportError)
    m = load_model_spec("timm:resnet18", weights="random", classes=[str(i) for i in range(1000)], device="cpu")
    assert m.cam_layer == "layer4" and m.fc_layer == "fc"


# ---- bad input: one clear error each ---------------------------------------------------------------------


def test_factory_not_returning_a_module(factory_file):
    with pytest.raises(XaisecError, match=r"returned a int, not a torch\.nn\.Module"):
        load_model_spec(f"{factory_file}:not_a_module")
    with pytest.raises(XaisecError, match="no function 'nope'"):
        load_model_spec(f"{factory_file}:nope")
    with pytest.raises(XaisecError, match="cannot import"):
        load_model_spec("no_such_package_xyz:make")


def test_corrupt_torchscript(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(XaisecError, match="not a readable TorchScript file"):
        load_model_spec(tmp_path / "bad.pt")


class _Payload:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_checkpoint_needing_unpickling_is_refused_not_executed(tmp_path, factory_file):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = str(marker)
    ckpt = tmp_path / "evil.pt"
    with open(ckpt, "wb") as f:
        pickle.dump({"state_dict": payload}, f)
    torch.save({"state_dict": {"fc.weight": torch.zeros(1)}, "extra": payload}, tmp_path / "evil2.pt")
    for path in (ckpt, tmp_path / "evil2.pt"):
        with pytest.raises(XaisecError) as info:
            load_model_spec(f"{factory_file}:make", weights=path)
        assert "\n" not in str(info.value)
    assert not marker.exists()


def test_card_class_count_must_match_the_output(tmp_path, factory_file):
    write_card(tmp_path / "card.json", classes=["a", "b"], input_size=[3, 16, 16])
    with pytest.raises(XaisecError, match="2 class names but the model outputs 5 logits"):
        load_model_spec(f"{factory_file}:make", card=tmp_path / "card.json")


def test_missing_cam_layer_names_the_layers_that_exist(factory_file):
    with pytest.raises(XaisecError, match=r"'layer9' is not a layer.*features.*fc"):
        load_model_spec(f"{factory_file}:make", cam_layer="layer9")


def test_unknown_spec_and_architecture_without_weights():
    with pytest.raises(XaisecError, match="unknown model"):
        load_model_spec("definitely_not_a_model")
    with pytest.raises(XaisecError, match="--weights"):
        load_model_spec("resnet20")
    with pytest.raises(XaisecError, match="unknown architecture"):
        build_arch("resnet21", num_classes=2)
