"""ImageNet models through torchvision: pretrained weights downloaded when online, random otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from xaisec._compat.torchvision import import_torchvision
from xaisec.utils.checks import XaisecError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TorchvisionArch:
    builder: str  # torchvision.models function name
    weights_enum: str  # torchvision weights enum name
    cam_layer: str
    fc_layer: str
    size: int = 224


ARCHS = {
    "resnet50": TorchvisionArch("resnet50", "ResNet50_Weights", "layer4", "fc"),
    "densenet169": TorchvisionArch("densenet169", "DenseNet169_Weights", "features", "classifier"),
    "vgg16": TorchvisionArch("vgg16", "VGG16_Weights", "features.29", "classifier.6"),
    "vgg19_bn": TorchvisionArch("vgg19_bn", "VGG19_BN_Weights", "features.51", "classifier.6"),
    "inception_v3": TorchvisionArch("inception_v3", "Inception_V3_Weights", "Mixed_7c", "fc", 299),
    "wide_resnet101_2": TorchvisionArch("wide_resnet101_2", "Wide_ResNet101_2_Weights", "layer4", "fc"),
    "resnext101_32x8d": TorchvisionArch("resnext101_32x8d", "ResNeXt101_32X8D_Weights", "layer4", "fc"),
    "mobilenet_v2": TorchvisionArch("mobilenet_v2", "MobileNet_V2_Weights", "features", "classifier.1"),
}


def build(arch: str, pretrained: bool) -> tuple[nn.Module, list[str]]:
    """Build a torchvision ImageNet model; return (network, class names).

    Raises:
        XaisecError: unknown arch, torchvision missing, or pretrained weights cannot be downloaded.
    """
    if arch not in ARCHS:
        raise XaisecError(f"unknown ImageNet architecture {arch!r}; choose from {sorted(ARCHS)}")
    tv = import_torchvision()
    spec = ARCHS[arch]
    weights_enum = getattr(tv.models, spec.weights_enum).DEFAULT
    classes = list(weights_enum.meta["categories"])
    kwargs = {"init_weights": True} if arch == "inception_v3" else {}
    if arch == "inception_v3":
        kwargs["aux_logits"] = True
    try:
        net = getattr(tv.models, spec.builder)(weights=weights_enum if pretrained else None, **kwargs)
    except (OSError, RuntimeError) as exc:
        if not pretrained:
            raise
        raise XaisecError(
            f"cannot download pretrained {arch} weights ({type(exc).__name__}: {str(exc)[:150]}); "
            "connect to the internet, or use weights='random' or weights=PATH"
        ) from exc
    return net.eval(), classes
