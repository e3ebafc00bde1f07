"""The model zoo: ``<dataset>_<architecture>`` names, how to build each, and its CAM layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from xaisec.data.paths import CIFAR10_CLASSES, PNEUMONIA_CLASSES
from xaisec.models.cifar_densenet import CifarDenseNet
from xaisec.models.cifar_mobilenet import CifarMobileNetV2
from xaisec.models.cifar_resnet import CifarResNet
from xaisec.models.cifar_vgg import CifarVGG
from xaisec.models.imagenet import ARCHS, IMAGENET_MEAN, IMAGENET_STD
from xaisec.models.pneumonia_cnn import PneumoniaCNN

CIFAR_MEAN = IMAGENET_MEAN  # the third-party CIFAR ResNet checkpoints use these; all CIFAR models share them
CIFAR_STD = IMAGENET_STD


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[], nn.Module]
    dataset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    cam_layer: str
    fc_layer: str
    input_size: tuple[int, int, int]
    description: str
    classes: list[str] = field(default_factory=list)
    imagenet_arch: str | None = None


def _cifar(name: str, build: Callable[[], nn.Module], cam: str, fc: str, desc: str) -> ModelSpec:
    return ModelSpec(name, build, "cifar10", CIFAR_MEAN, CIFAR_STD, cam, fc, (3, 32, 32), desc, list(CIFAR10_CLASSES))


MODELS: dict[str, ModelSpec] = {}
for _depth in (20, 32, 44, 56):
    MODELS[f"cifar10_resnet{_depth}"] = _cifar(
        f"cifar10_resnet{_depth}", lambda d=_depth: CifarResNet(d), "layer3", "linear",
        f"ResNet-{_depth} (He et al. 2016, option A shortcuts) for 32x32",
    )
for _suffix, _what in (("at", "fine-tuned from cifar10_resnet20: adversarially trained (PGD-1/2/3, eps 4/255)"),
                       ("introbust", "fine-tuned from cifar10_resnet20_at: interpretation-robust trained (CAM, "
                                     "Boopathy et al.)"),
                       ("aid", "with the plain shipped weights, explained by an AID-trained RTS "
                               "(`get('rts', model)`)")):
    MODELS[f"cifar10_resnet20_{_suffix}"] = _cifar(f"cifar10_resnet20_{_suffix}", lambda: CifarResNet(20), "layer3",
                                                   "linear", f"ResNet-20 {_what}")
MODELS["cifar10_vgg11_bn"] = _cifar("cifar10_vgg11_bn", CifarVGG, "features", "classifier",
                                    "VGG-11 with batch norm, half width, 4x4 last feature map")
MODELS["cifar10_densenet40"] = _cifar("cifar10_densenet40", lambda: CifarDenseNet(40, 12, stem_stride=2), "features",
                                      "classifier", "DenseNet-BC-40 (k=12), stride-2 stem")
MODELS["cifar10_mobilenetv2"] = _cifar("cifar10_mobilenetv2", CifarMobileNetV2, "features", "classifier",
                                       "MobileNetV2 (width 0.5) adapted to 32x32")
MODELS["pneumonia_cnn"] = ModelSpec(
    "pneumonia_cnn", PneumoniaCNN, "pneumoniamnist", (0.5,), (0.25,), "features", "classifier", (1, 28, 28),
    "5-conv CNN for 28x28 PneumoniaMNIST chest X-rays", list(PNEUMONIA_CLASSES),
)
for _arch, _tv in ARCHS.items():
    MODELS[f"imagenet_{_arch}"] = ModelSpec(
        f"imagenet_{_arch}", lambda: None, "imagenet", IMAGENET_MEAN, IMAGENET_STD, _tv.cam_layer, _tv.fc_layer,
        (3, _tv.size, _tv.size), f"torchvision {_arch}, ImageNet-pretrained when online", [], imagenet_arch=_arch,
    )

DEFAULT_MODEL = "cifar10_resnet20"


@dataclass(frozen=True)
class ArchSpec:
    """A zoo architecture without its data set: built for any class count, channel count and image size."""

    name: str
    build: Callable[..., nn.Module]  # build(num_classes, in_channels) -> network (stem stride set after)
    cam_layer: str
    fc_layer: str
    base_size: int  # the image size the architecture was designed for; larger images get a strided stem
    stem: str  # dotted name of the first convolution (its stride adapts to the image size)
    description: str
    base_stride: int = 1


def _resnet(depth: int) -> Callable[..., nn.Module]:
    return lambda num_classes, in_channels: CifarResNet(depth, num_classes=num_classes, in_channels=in_channels)


ARCHITECTURES: dict[str, ArchSpec] = {
    **{f"resnet{d}": ArchSpec(f"resnet{d}", _resnet(d), "layer3", "linear", 32, "conv1", MODELS[f"cifar10_resnet{d}"]
                              .description) for d in (20, 32, 44, 56)},
    "vgg11_bn": ArchSpec("vgg11_bn", lambda num_classes, in_channels: CifarVGG(num_classes=num_classes,
                                                                               in_channels=in_channels),
                         "features", "classifier", 32, "features.0", MODELS["cifar10_vgg11_bn"].description),
    "densenet40": ArchSpec("densenet40", lambda num_classes, in_channels: CifarDenseNet(
        40, 12, num_classes=num_classes, in_channels=in_channels, stem_stride=2), "features", "classifier", 32,
        "features.0", MODELS["cifar10_densenet40"].description, base_stride=2),
    "mobilenetv2": ArchSpec("mobilenetv2", lambda num_classes, in_channels: CifarMobileNetV2(
        num_classes=num_classes, in_channels=in_channels), "features", "classifier", 32, "features.0",
        MODELS["cifar10_mobilenetv2"].description),
    "pneumonia_cnn": ArchSpec("pneumonia_cnn", lambda num_classes, in_channels: PneumoniaCNN(
        num_classes=num_classes, in_channels=in_channels), "features", "classifier", 28, "features.0",
        MODELS["pneumonia_cnn"].description),
}
