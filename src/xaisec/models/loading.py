"""Any model on the command line: ``load_model_spec(spec, ...)`` turns a string into a :class:`Classifier`.

Accepted specs, tried in this order:

- a folder holding ``model.safetensors`` and its card (``card.json``/``card.toml``, see
  :mod:`xaisec.models.card`), e.g. the output folder of ``xaisec train --arch ...``;
- a TorchScript file (``model.pt``, read with ``torch.jit.load``; its card ``model.json`` beside it);
- ``torchvision:NAME`` and ``timm:NAME`` (pretrained weights when online unless ``weights`` is given);
- a Python factory ``package.module:func`` or ``path/to/file.py:func`` returning an ``nn.Module``
  (``weights`` then loads a safetensors file or a ``weights_only`` torch checkpoint);
- a zoo model name (``cifar10_resnet20``, see ``xaisec info models``) or a zoo architecture
  (``resnet20``...) with ``weights`` and ``classes``.

What the wrapper needs (mean, std, CAM layer, linear head, class names, input size) comes from the
keyword arguments, else from the card, else from defaults (no normalisation; the last convolutional
block as CAM layer). At load time the layers are checked to exist (the error names those that do) and
the number of class names is checked against the model's output. Weights are never unpickled: a
checkpoint holding arbitrary Python objects is refused, not executed.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import io
import logging
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xaisec.models.card import card_fields, find_card, read_card, tidy_floats, write_card
from xaisec.models.wrapper import Classifier
from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")
EXTERNAL_PREFIXES = ("torchvision:", "timm:")


# ----------------------------------------------------------------------------------------------- layers


def guess_cam_layer(net: nn.Module) -> str | None:
    """The last top-level child of ``net`` that contains a convolution (e.g. ``layer4`` of a ResNet,
    ``features`` of a VGG/DenseNet/MobileNet); its dotted child when ``net`` is one Sequential; or None."""
    children = list(net.named_children())
    if len(children) == 1 and isinstance(children[0][1], nn.Sequential):
        prefix, seq = children[0]
        inner = [n for n, m in seq.named_children() if any(isinstance(s, nn.Conv2d) for s in m.modules())]
        return f"{prefix}.{inner[-1]}" if inner else None
    if isinstance(net, nn.Sequential):
        convs = [n for n, m in children if any(isinstance(s, nn.Conv2d) for s in m.modules())]
        return convs[-1] if convs else None
    convs = [n for n, m in children if any(isinstance(s, nn.Conv2d) for s in m.modules())]
    return convs[-1] if convs else None


def guess_fc_layer(net: nn.Module) -> str | None:
    """The dotted name of the last ``nn.Linear`` of ``net`` (the classification head), or None."""
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _layer_list(net: nn.Module, limit: int = 30) -> str:
    """The layers worth naming: top-level children and every module holding a convolution or a linear layer."""
    names = [n for n, m in net.named_modules() if n and ("." not in n or isinstance(m, (nn.Conv2d, nn.Linear)))]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _resolve_layer_name(net: nn.Module, dotted: str, what: str, flag: str) -> str:
    """``dotted`` itself when it names a module of ``net``, else the single module whose name ends with
    ``.dotted`` (a head inside a TorchScript split); an error naming the layers that exist otherwise."""
    names = [n for n, _ in net.named_modules()]
    if dotted in names:
        return dotted
    tails = [n for n in names if n.endswith("." + dotted)]
    if len(tails) == 1:
        return tails[0]
    raise XaisecError(f"{what} {dotted!r} is not a layer of the model; its layers are: {_layer_list(net)}; "
                      f"pass {flag} NAME")


# ----------------------------------------------------------------------------------------------- builders


def stem_stride(image_size: int | None, base_size: int, base_stride: int = 1) -> int:
    """Stride of the first convolution so that an image of ``image_size`` reaches the blocks at about the
    resolution the architecture was designed for: ``base_stride * 2**floor(log2(image_size / base_size))``."""
    if image_size is None or image_size < 2 * base_size:
        return base_stride
    return base_stride * 2 ** math.floor(math.log2(image_size / base_size))


def build_arch(
    arch: str, *, num_classes: int, in_channels: int = 3, image_size: int | None = None,
    stem: int | None = None, pretrained: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build architecture ``arch`` (a zoo architecture such as ``resnet20``, or ``torchvision:NAME`` /
    ``timm:NAME``) for ``num_classes`` outputs and ``in_channels`` input channels.

    Returns:
        (network, info) where info has ``cam_layer``, ``fc_layer``, ``arch_options`` (to rebuild it from a
        card) and, for pretrained external models, ``mean``, ``std``, ``classes`` and ``input_size``.
    """
    from xaisec.models.registry import ARCHITECTURES

    if num_classes < 1:
        raise XaisecError(f"{arch}: the number of classes must be >= 1, got {num_classes}")
    if arch.startswith("torchvision:"):
        return _build_torchvision(arch.split(":", 1)[1], num_classes, in_channels, pretrained)
    if arch.startswith("timm:"):
        return _build_timm(arch.split(":", 1)[1], num_classes, in_channels, pretrained)
    if arch not in ARCHITECTURES:
        raise XaisecError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}, "
                          "torchvision:NAME or timm:NAME")
    a = ARCHITECTURES[arch]
    net = a.build(num_classes, in_channels)
    stride = stem if stem is not None else stem_stride(image_size, a.base_size, a.base_stride)
    if stride != a.base_stride:
        conv = dict(net.named_modules())[a.stem]
        conv.stride = (stride, stride)
    options = {"num_classes": num_classes, "in_channels": in_channels, "stem_stride": stride}
    return net, {"cam_layer": a.cam_layer, "fc_layer": a.fc_layer, "arch_options": options}


def _build_torchvision(name: str, num_classes: int, in_channels: int, pretrained: bool):
    from xaisec._compat.torchvision import import_torchvision

    tv = import_torchvision()
    if in_channels != 3:
        raise XaisecError(f"torchvision:{name} takes 3-channel images; read the data as RGB")
    try:
        builder = tv.models.get_model_builder(name)
    except ValueError as exc:
        raise XaisecError(f"torchvision has no model {name!r}; see torchvision.models.list_models()") from exc
    info: dict[str, Any] = {"arch_options": {"num_classes": num_classes, "in_channels": 3}}
    if pretrained:
        weights = tv.models.get_model_weights(name).DEFAULT
        try:
            net = builder(weights=weights)
        except (OSError, RuntimeError) as exc:
            raise XaisecError(
                f"cannot download the pretrained torchvision:{name} weights ({type(exc).__name__}: "
                f"{str(exc)[:150]}); connect to the internet, or pass --weights FILE"
            ) from exc
        classes = list(weights.meta.get("categories") or [])
        info.update(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], classes=classes or None,
                    input_size=(3, 224, 224))
        info["arch_options"]["num_classes"] = len(classes) if classes else num_classes
    else:
        net = builder(weights=None, num_classes=num_classes)
    info.update(cam_layer=guess_cam_layer(net), fc_layer=guess_fc_layer(net))
    return net, info


def _build_timm(name: str, num_classes: int, in_channels: int, pretrained: bool):
    from xaisec._compat.torchvision import import_torchvision

    import_torchvision()  # timm imports torchvision
    try:
        import timm
    except ImportError as exc:
        raise XaisecError("timm models need the optional timm package: pip install 'xaisec[timm]' "
                          "(or pip install timm)") from exc
    if not timm.is_model(name):
        raise XaisecError(f"timm has no model {name!r}; see timm.list_models()")
    kwargs: dict[str, Any] = {"in_chans": in_channels}
    if not pretrained:
        kwargs["num_classes"] = num_classes
    try:
        net = timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as exc:  # hub / network errors come in many types
        if not pretrained:
            raise XaisecError(f"timm:{name}: cannot build it ({type(exc).__name__}: {str(exc)[:150]})") from exc
        raise XaisecError(
            f"cannot download the pretrained timm:{name} weights ({type(exc).__name__}: {str(exc)[:150]}); "
            "connect to the internet, or pass --weights FILE"
        ) from exc
    cfg = dict(getattr(net, "pretrained_cfg", {}) or {})
    feature_info = getattr(net, "feature_info", None) or []
    cam = feature_info[-1].get("module") if feature_info else None
    fc = cfg.get("classifier") if isinstance(cfg.get("classifier"), str) else None
    info: dict[str, Any] = {"cam_layer": cam or guess_cam_layer(net), "fc_layer": fc or guess_fc_layer(net),
                            "arch_options": {"num_classes": net.num_classes, "in_channels": in_channels}}
    if pretrained:
        info.update(mean=list(cfg.get("mean", (0.485, 0.456, 0.406))), std=list(cfg.get("std", (0.229, 0.224, 0.225))),
                    input_size=tuple(cfg.get("input_size", (3, 224, 224))))
    return net, info


def load_factory(target: str, options: dict[str, Any] | None = None, base: Path | None = None) -> nn.Module:
    """Call the factory ``package.module:func`` or ``path/to/file.py:func`` (relative paths: to ``base``,
    then to the working directory) with ``options`` as keyword arguments; it must return an nn.Module."""
    mod_part, _, func_name = target.rpartition(":")
    if not mod_part or not func_name:
        raise XaisecError(f"{target!r}: a factory is written module:function or file.py:function")
    if mod_part.endswith(".py"):
        path = Path(mod_part)
        if not path.is_absolute() and base is not None and (base / path).is_file():
            path = base / path
        if not path.is_file():
            raise XaisecError(f"{mod_part}: no such Python file for the factory {target!r}")
        name = f"xaisec_user_factory_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise XaisecError(f"{path}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise XaisecError(f"{path}: importing the factory's file failed ({type(exc).__name__}: {exc})") from exc
        finally:
            sys.path.remove(str(path.resolve().parent))
    else:
        try:
            module = importlib.import_module(mod_part)
        except ImportError as exc:
            raise XaisecError(f"cannot import {mod_part!r} for the factory {target!r} ({exc}); "
                              "check the name or give path/to/file.py:function") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:15]
        raise XaisecError(f"{mod_part} has no function {func_name!r}; it defines: {', '.join(found)}")
    try:
        obj = func(**(options or {}))
    except Exception as exc:
        raise XaisecError(f"the factory {target!r} failed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, nn.Module):
        raise XaisecError(f"the factory {target!r} returned a {type(obj).__name__}, not a torch.nn.Module; "
                          "make it return the network")
    return obj


# ----------------------------------------------------------------------------------------------- TorchScript


class ScriptedSplit(nn.Module):
    """A TorchScript model with ``forward_features`` and ``forward_head`` methods, as a Python module:
    the features pass through ``self.features`` (an identity) so CAM-type interpreters can hook it
    (TorchScript modules themselves take no hooks)."""

    def __init__(self, script: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.script = script
        self.features = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script.forward_head(self.features(self.script.forward_features(x)))


def _has_method(script: Any, name: str) -> bool:
    try:
        return hasattr(script, name) and callable(getattr(script, name))
    except RuntimeError:
        return False


def load_torchscript(path: str | Path) -> tuple[nn.Module, bool]:
    """``torch.jit.load`` on the CPU; returns (module, hookable): a :class:`ScriptedSplit` when the file has
    ``forward_features``/``forward_head`` (CAM layer ``features``), else the script module itself."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still the format
            script = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError / ValueError / zipfile errors for bad archives
        hint = ("; if it is a state dict, pass the architecture as --model and the file as --weights"
                if "constants.pkl" in str(exc) or "archive" in str(exc).lower() else "")
        msg = str(exc).strip().splitlines()[0][:150] if str(exc).strip() else type(exc).__name__
        raise XaisecError(f"{path}: not a readable TorchScript file ({msg}){hint}") from exc
    if _has_method(script, "forward_features") and _has_method(script, "forward_head"):
        return ScriptedSplit(script), True
    return script, False


class _LeafTracer(torch.fx.Tracer):
    def __init__(self, leaf: str) -> None:
        super().__init__()
        self.leaf = leaf

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname == self.leaf or super().is_leaf_module(m, qualname)


class _Split(nn.Module):
    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.jit.export
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    @torch.jit.export
    def forward_head(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z)


def split_at(net: nn.Module, layer: str) -> nn.Module:
    """``net`` as ``head(body(x))`` with ``body`` ending at ``layer``'s output (torch.fx); raises XaisecError
    when the network cannot be traced or uses an earlier activation after that layer (a skip over it)."""
    from torch.fx import Graph, GraphModule

    try:
        graph = _LeafTracer(layer).trace(net)
    except Exception as exc:
        raise XaisecError(f"cannot trace the network with torch.fx ({type(exc).__name__}: {exc})") from exc
    nodes = list(graph.nodes)
    cams = [n for n in nodes if n.op == "call_module" and n.target == layer]
    if len(cams) != 1:
        raise XaisecError(f"layer {layer!r} is called {len(cams)} times in the forward pass, not once")
    k = nodes.index(cams[0])
    body, env = Graph(), {}
    for n in nodes[: k + 1]:
        env[n] = body.node_copy(n, lambda a: env[a])
        env[n].type = None  # type annotations become globals TorchScript cannot resolve
    body.output(env[cams[0]])
    head, env2 = Graph(), {cams[0]: None}
    env2[cams[0]] = head.placeholder("z")
    before = set(nodes[: k + 1])
    for n in nodes[k + 1 :]:
        for a in n.all_input_nodes:
            if a in before and a not in env2:
                if a.op != "get_attr":
                    raise XaisecError(f"the network uses {a.name!r} after {layer!r}: cannot split it there")
                env2[a] = head.node_copy(a, lambda b: env2[b])
        env2[n] = head.node_copy(n, lambda a: env2[a])
        env2[n].type = None
    return _Split(GraphModule(net, body), GraphModule(net, head))


def export_torchscript(model: Classifier, path: str | Path, *, check: bool = True) -> tuple[Path, Path]:
    """Write ``model.net`` as TorchScript to ``path`` and its card to ``path`` with suffix ``.json``.

    With a CAM layer, the script is split there (``forward_features``/``forward_head``) so that
    CAM-type interpreters work on the loaded file; without one, or when the split fails, the plain
    network is scripted (gradient interpreters only). Returns (script path, card path).
    """
    from xaisec.utils.io import atomic_write_bytes

    warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
    net = copy.deepcopy(model.net).cpu().eval()
    size = model.input_size or (3, 32, 32)
    example = torch.rand(2, *size, generator=torch.Generator().manual_seed(0))
    scripted, cam = None, None
    if model.cam_layer:
        try:
            split = split_at(net, model.cam_layer).eval()
            scripted = torch.jit.script(split)
            cam = "features"
        except Exception as exc:
            log.warning("cannot split %s at %s (%s); CAM-type interpreters will not work on the file",
                        model.name, model.cam_layer, exc)
    if scripted is None:
        try:
            scripted = torch.jit.script(net)
        except Exception:
            scripted = torch.jit.trace(net, example)
    if check:
        with torch.no_grad():
            err = float((scripted(example) - net(example)).abs().max())
        if err > 1e-4:
            raise XaisecError(f"the TorchScript export differs from the model by {err:.2e}; not written")
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    path = atomic_write_bytes(path, buf.getvalue())
    card = write_card(Path(path).with_suffix(".json"), name=model.name, mean=tidy_floats(model.normalize.mean),
                      std=tidy_floats(model.normalize.std), cam_layer=cam, fc_layer=model.fc_layer,
                      classes=model.classes, input_size=model.input_size, source=f"torchscript export of {model.name}")
    return path, card


# ----------------------------------------------------------------------------------------------- load


def _kind(spec: str) -> str:
    from xaisec.models.registry import ARCHITECTURES, MODELS

    p = Path(spec)
    if spec in MODELS:
        return "zoo"
    if spec in ARCHITECTURES:
        return "arch"
    if spec.startswith(EXTERNAL_PREFIXES):
        return "external"
    if p.is_dir():
        return "folder"
    if p.is_file() and p.suffix.lower() in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    if ":" in spec:
        return "factory"
    if p.suffix.lower() in TORCHSCRIPT_SUFFIXES:
        raise XaisecError(f"{spec}: no such TorchScript file")
    raise XaisecError(
        f"unknown model {spec!r}: give a zoo name ({', '.join(list(MODELS)[:4])}, ... see `xaisec info models`), "
        "a folder with model.safetensors and its card, a TorchScript file (.pt), torchvision:NAME, timm:NAME, "
        "or a factory module:function / file.py:function"
    )


def _load_weights(net: nn.Module, weights: str | Path) -> None:
    from xaisec.models.weights import load_into

    wpath = Path(weights)
    if wpath.is_dir():
        raise XaisecError(f"{wpath}: is a folder; pass the weights file, or the folder as --model")
    load_into(net, wpath)


def load_model_spec(
    spec: str | Path,
    *,
    weights: str | Path | None = None,
    card: str | Path | dict | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    cam_layer: str | None = None,
    fc_layer: str | None = None,
    classes: Sequence[str] | None = None,
    input_size: tuple[int, int, int] | None = None,
    device: str | None = None,
) -> Classifier:
    """Load the model ``spec`` (see the module docstring) as a :class:`Classifier` in eval mode.

    Keyword arguments override the card; ``weights="random"`` keeps a fresh initialisation.

    Raises:
        XaisecError: for an unknown spec, unreadable or unfitting weights, a missing layer, a factory that
            returns no module, a corrupt TorchScript file, or class names that do not match the output.
    """
    from xaisec.models import build, load
    from xaisec.utils.checks import resolve_device

    spec = str(spec)
    kind = _kind(spec)
    card_path: Path | None = None
    if isinstance(card, dict):
        fields = card_fields(card, "card")
    else:
        if card is not None:
            card_path = Path(card)
        elif kind in ("folder", "torchscript"):
            card_path = find_card(spec)
        fields = card_fields(read_card(card_path), str(card_path)) if card_path is not None else card_fields({})
    if classes is not None:
        classes = [str(c) for c in classes]
        if not classes:
            raise XaisecError("the class list is empty")
    n_classes = len(classes) if classes else len(fields["classes"]) if fields["classes"] else None
    n_classes = n_classes or fields["arch_options"].get("num_classes")
    info: dict[str, Any] = {}
    name = fields["name"] or Path(spec.rstrip("/")).stem if kind in ("folder", "torchscript") else spec
    hookable = True

    if kind == "zoo":
        model = load(spec, weights=weights, device="cpu")
        net = model.net
        info = {"mean": tidy_floats(model.normalize.mean), "std": tidy_floats(model.normalize.std),
                "cam_layer": model.cam_layer, "fc_layer": model.fc_layer, "classes": model.classes,
                "input_size": model.input_size}
    elif kind == "torchscript":
        if weights is not None:
            raise XaisecError(f"{spec} is TorchScript and holds its weights; drop --weights")
        net, hookable = load_torchscript(spec)
    elif kind == "folder":
        folder = Path(spec)
        if card_path is None:
            raise XaisecError(f"{folder}: no model card (card.json or card.toml) in the folder; write one "
                              "(see docs/own-model.md) or pass --card FILE")
        wfile = weights or (folder / fields["weights"] if fields["weights"] else None)
        if wfile is None:
            found = sorted(folder.glob("*.safetensors"))
            wfile = found[0] if len(found) == 1 else folder / "model.safetensors"
        if fields["model"] and not fields["arch"] and not fields["factory"]:
            from xaisec.models.registry import MODELS

            zoo_name = fields["model"] if fields["model"] in MODELS else fields["architecture"] or fields["model"]
            zoo = build(zoo_name)
            net = zoo.net
            info = {"mean": list(zoo.normalize.mean.flatten().tolist()), "std": zoo.normalize.std.flatten().tolist(),
                    "cam_layer": zoo.cam_layer, "fc_layer": zoo.fc_layer, "classes": zoo.classes,
                    "input_size": zoo.input_size}
            name = fields["model"] if fields["name"] is None else name
        elif fields["arch"]:
            opts = dict(fields["arch_options"])
            if n_classes is None:
                raise XaisecError(f"{card_path}: give classes (or arch_options.num_classes) to build {fields['arch']}")
            in_ch = int(opts.get("in_channels") or (fields["input_size"] or input_size or (3,))[0])
            net, info = build_arch(fields["arch"], num_classes=int(n_classes), in_channels=in_ch,
                                   stem=opts.get("stem_stride"), pretrained=False)
            info = {k: v for k, v in info.items() if k in ("cam_layer", "fc_layer")}
        elif fields["factory"]:
            net = load_factory(fields["factory"], fields["arch_options"], base=folder)
        else:
            raise XaisecError(f"{card_path}: the card names no architecture: add \"arch\" (e.g. \"resnet20\"), "
                              "\"factory\" (module:function) or \"model\" (a zoo name)")
        if str(wfile) != "random":
            if not Path(wfile).is_file():
                raise XaisecError(f"{folder}: no weights file {Path(wfile).name} in the model folder")
            _load_weights(net, wfile)
    elif kind == "external":
        pretrained = weights is None
        net, info = build_arch(spec, num_classes=int(n_classes or 1000), in_channels=3, pretrained=pretrained)
        info.pop("arch_options", None)
        if weights is not None and str(weights) != "random":
            _load_weights(net, weights)
    elif kind == "arch":
        if weights is None:
            raise XaisecError(f"{spec} is an architecture: pass its --weights (or --weights random), or train it "
                              f"with `xaisec train --arch {spec} --data FOLDER --out DIR` and pass --model DIR")
        if n_classes is None:
            raise XaisecError(f"{spec}: pass --classes (the class names) so the head can be built")
        c = (input_size or fields["input_size"] or (3,))[0]
        net, info = build_arch(spec, num_classes=int(n_classes), in_channels=int(c),
                               image_size=(input_size or fields["input_size"] or (0, 0, 32))[-1])
        info.pop("arch_options", None)
        if str(weights) != "random":
            _load_weights(net, weights)
    else:  # factory
        net = load_factory(spec, fields["arch_options"] if fields["factory"] == spec else None)
        if weights is not None and str(weights) != "random":
            _load_weights(net, weights)

    def pick(key: str, flag: Any) -> Any:
        return flag if flag is not None else fields[key] if fields[key] is not None else info.get(key)

    size = pick("input_size", tuple(input_size) if input_size is not None else None)
    chans = size[0] if size else None
    mean_v, std_v = pick("mean", list(mean) if mean is not None else None), pick("std", list(std) if std else None)
    if mean_v is None and std_v is None:
        log.info("%s: no mean/std given; the model gets the [0, 1] images unnormalised", name)
    mean_v = mean_v if mean_v is not None else [0.0] * (chans or 1)
    std_v = std_v if std_v is not None else [1.0] * (chans or 1)
    if len(mean_v) != len(std_v):
        raise XaisecError(f"{name}: mean has {len(mean_v)} values but std {len(std_v)}")
    if chans is not None and len(mean_v) not in (1, chans):
        raise XaisecError(f"{name}: mean/std have {len(mean_v)} values but the input has {chans} channels")
    cam = pick("cam_layer", cam_layer)
    fc = pick("fc_layer", fc_layer)
    if not hookable:
        if cam is not None:
            log.warning("%s: TorchScript modules take no hooks, so CAM-type interpreters cannot read %r; export "
                        "with forward_features/forward_head (xaisec.models.loading.export_torchscript)", name, cam)
        cam = None
    elif kind == "torchscript":
        cam = "features"
    elif cam is None:
        cam = guess_cam_layer(net)
        if cam is not None:
            log.info("%s: CAM layer %r (guessed: the last convolutional block; --cam-layer to change)", name, cam)
    if fc is None and kind not in ("zoo",):
        fc = guess_fc_layer(net)
    if cam is not None:
        cam = _resolve_layer_name(net, cam, "CAM layer", "--cam-layer")
    if fc is not None:
        fc = _resolve_layer_name(net, fc, "linear head", "--fc-layer")
    names = classes if classes is not None else fields["classes"] if fields["classes"] is not None else info.get(
        "classes")
    model = Classifier(net, mean=mean_v, std=std_v, cam_layer=cam, fc_layer=fc, classes=names,
                       input_size=tuple(size) if size else None, name=str(name))
    model = model.eval()
    _check_outputs(model, where=str(card_path) if card_path is not None and classes is None else str(name))
    return model.to(resolve_device(device)).eval()


def _check_outputs(model: Classifier, where: str) -> None:
    """Run one zero image of ``model.input_size`` through the model; the logits must be (1, len(classes))."""
    if model.input_size is None:
        k = getattr(dict(model.net.named_modules()).get(model.fc_layer or ""), "out_features", None)
        if k is not None and model.classes is not None and k != len(model.classes):
            raise XaisecError(f"{where}: {len(model.classes)} class names but the model's head has {k} outputs")
        return
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *model.input_size))
    except Exception as exc:
        raise XaisecError(f"{model.name}: the model fails on a {tuple(model.input_size)} input "
                          f"({type(exc).__name__}: {str(exc)[:200]}); check --input-size") from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise XaisecError(f"{model.name}: the model must return logits (N, classes), got "
                          f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    if model.classes is not None and out.shape[1] != len(model.classes):
        raise XaisecError(f"{where}: {len(model.classes)} class names but the model outputs {out.shape[1]} logits; "
                          "fix the class list (or the card)")


def save_model_folder(model: Classifier, out: str | Path, *, arch: str | None = None,
                      arch_options: dict | None = None, factory: str | None = None, extra: dict | None = None
                      ) -> tuple[Path, Path]:
    """Write ``out/model.safetensors`` and ``out/card.json`` so that ``load_model_spec(out)`` rebuilds ``model``."""
    from xaisec.models.weights import save_safetensors

    out = Path(out)
    weights = save_safetensors(model.net, out / "model.safetensors", metadata={"arch": str(arch or factory)})
    card = write_card(out / "card.json", name=model.name, arch=arch, factory=factory, arch_options=arch_options,
                      weights="model.safetensors", mean=tidy_floats(model.normalize.mean),
                      std=tidy_floats(model.normalize.std), cam_layer=model.cam_layer, fc_layer=model.fc_layer,
                      classes=model.classes, input_size=model.input_size, **(extra or {}))
    return weights, card
