"""Interpreter throughput: images/second of every registered xaisec interpreter on the CIFAR-10 ResNet-20,
next to torchcam's CAM / GradCAM / GradCAMpp and Captum's LayerGradCam / Saliency on the same inputs.

    .venv/bin/python benchmarks/interpreters.py                  # batch 64, all interpreters
    .venv/bin/python benchmarks/interpreters.py --interpreters gradcam,cam --repeats 10

Each method is warmed up, then all methods are timed round-robin (one call of each per round, so a
background load affects them alike) and the median time per call is reported. A method whose call takes
longer than ``--budget`` seconds is timed fewer times (at least once) and its warm-up is the small sanity
call, so the multi-pass interpreters (integrated gradients, SmoothGrad, MASK) do not dominate the run.
Every method gets the same images and explicit target classes (the model's predictions), so no
method pays for an extra forward pass to find the target. xaisec's timings include upsampling to
32 x 32 and min-max normalisation; torchcam's include its min-max normalisation at layer resolution; Captum's are raw.
Not a test: it prints a Markdown table and one comparison line per peer.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import statistics
import sys
import time
from collections.abc import Callable

import torch

from xaisec._compat.torchvision import import_torchvision
from xaisec.interpreters import INTERPRETERS, get
from xaisec.models import Classifier, load
from xaisec.utils.checks import XaisecError

log = logging.getLogger("benchmarks.interpreters")

# which xaisec interpreter each peer method is compared with
PEERS = {
    "torchcam CAM": "cam",
    "torchcam GradCAM": "gradcam",
    "torchcam GradCAMpp": "gradcam_pp",
    "Captum LayerGradCam": "gradcam",
    "Captum Saliency": "grad",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64, help="images per call (default 64)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds; the median is reported (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per method first (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input images (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, or auto (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--interpreters", default=None,
                   help="comma-separated xaisec interpreter names (default: all registered)")
    p.add_argument("--mask-iterations", type=int, default=10,
                   help="Adam steps for the 'mask' interpreter (default 10; its own default is 300)")
    p.add_argument("--set", action="append", default=[], metavar="NAME.OPTION=VALUE",
                   help="an interpreter option, e.g. --set integrated_gradients.steps=16 (repeatable)")
    p.add_argument("--budget", type=float, default=15.0,
                   help="seconds of timed calls per method before its repeats are cut (default 15)")
    p.add_argument("--no-peers", action="store_true", help="time xaisec only, not torchcam / Captum")
    return p.parse_args(argv)


def parse_options(pairs: list[str], mask_iterations: int) -> dict[str, dict[str, object]]:
    options: dict[str, dict[str, object]] = {"mask": {"iterations": mask_iterations}}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        name, dot, option = key.partition(".")
        if not (sep and dot and name and option):
            raise SystemExit(f"--set expects NAME.OPTION=VALUE, got {pair!r}")
        try:
            value: object = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        options.setdefault(name, {})[option] = value
    return options


def load_model(device: str) -> tuple[Classifier, str]:
    try:
        return load("cifar10_resnet20", device=device), "shipped weights"
    except XaisecError as exc:
        log.warning("%s", exc)
        random = load("cifar10_resnet20", weights="random", device=device)
        return random, "RANDOM weights (no shipped weights yet)"


def xaisec_methods(
    model: Classifier,
    names: list[str],
    options: dict[str, dict[str, object]],
    x: torch.Tensor,
    t: torch.Tensor,
) -> tuple[dict[str, Callable[[], object]], dict[str, float], list[str]]:
    """The callables to time, the seconds of each one's sanity call on two images, and notes."""
    methods: dict[str, Callable[[], object]] = {}
    probe: dict[str, float] = {}
    notes: list[str] = []
    for name in names:
        if name not in INTERPRETERS:
            notes.append(f"{name}: not a registered interpreter (known: {', '.join(INTERPRETERS)})")
            continue
        module = INTERPRETERS[name][0].split(":")[0]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            notes.append(f"{name}: skipped, module {module} does not exist yet ({exc.name})")
            continue
        opts = options.get(name, {})
        try:
            g = get(name, model, **opts)
            t0 = time.perf_counter()
            g(x[:2], t[:2])  # fails fast on interpreters that need something this setup lacks
            probe[name] = time.perf_counter() - t0
        except Exception as exc:  # report and go on: one broken interpreter must not stop the benchmark
            notes.append(f"{name}: skipped, {type(exc).__name__}: {exc}")
            continue
        methods[name] = (lambda g=g: g(x, t))
        if opts:
            notes.append(f"{name}: options {opts}")
        if name == "mask":
            iterations = int(opts.get("iterations", 300))
            notes.append(f"mask: {iterations} Adam iterations per call (its default is 300: "
                         f"about {300 / max(iterations, 1):.0f}x slower)")
    return methods, probe, notes


def peer_methods(model: Classifier, x: torch.Tensor, t: torch.Tensor) -> tuple[dict, list[str]]:
    """torchcam and Captum on the same layer, inputs and targets. Extractors are built inside the timed
    call (their usual ``with`` usage) so their hooks never stay on the model during other timings."""
    methods: dict[str, Callable[[], object]] = {}
    notes: list[str] = []
    import_torchvision()  # captum / torchcam import torchvision
    layer = f"net.{model.cam_layer}"
    fc = f"net.{model.fc_layer}"
    idx = t.tolist()
    try:
        import torchcam
        from torchcam.methods import CAM, GradCAM, GradCAMpp

        shape = tuple(x.shape[1:])

        def tc_cam() -> object:
            with CAM(model, layer, fc, input_shape=shape) as ext, torch.no_grad():
                return ext(class_idx=idx, scores=model(x))

        def tc_grad(cls: type) -> Callable[[], object]:
            def run() -> object:
                with cls(model, layer, input_shape=shape) as ext:
                    return ext(class_idx=idx, scores=model(x))
            return run

        methods["torchcam CAM"] = tc_cam
        methods["torchcam GradCAM"] = tc_grad(GradCAM)
        methods["torchcam GradCAMpp"] = tc_grad(GradCAMpp)
        notes.append(f"torchcam {torchcam.__version__}")
    except ImportError as exc:
        notes.append(f"torchcam not installed ({exc}); its rows are missing")
    try:
        import captum
        from captum.attr import LayerGradCam, Saliency

        lgc = LayerGradCam(model, model.layer())
        sal = Saliency(model)
        methods["Captum LayerGradCam"] = lambda: lgc.attribute(x, target=t, relu_attributions=True)
        methods["Captum Saliency"] = lambda: sal.attribute(x, target=t, abs=True)
        notes.append(f"captum {captum.__version__}")
    except ImportError as exc:
        notes.append(f"captum not installed ({exc}); its rows are missing")
    return methods, notes


def _timed(f: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    f()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def time_round_robin(
    methods: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    budget: float,
    estimate: dict[str, float],
) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """Median and best seconds per call of each method, timed in interleaved rounds; timed calls per method.

    ``estimate``: a rough seconds-per-call guess; methods over 3 x ``budget`` skip the warm-up; each method
    is timed ``max(1, min(repeats, budget // seconds per call))`` times.
    """
    counts: dict[str, int] = {}
    for name, f in methods.items():
        guess = estimate.get(name, 0.0)
        if guess <= 3 * budget:  # the estimate is rough (first-call overheads): warm up unless it is far over
            for _ in range(warmup):
                guess = _timed(f)
        counts[name] = max(1, min(repeats, int(budget // max(guess, 1e-9))))
        log.info("%s: about %.3f s per call, %d timed calls", name, guess, counts[name])
    times: dict[str, list[float]] = {k: [] for k in methods}
    for r in range(repeats):
        for name, f in methods.items():
            if r < counts[name]:
                times[name].append(_timed(f))
    return {k: statistics.median(v) for k, v in times.items()}, {k: min(v) for k, v in times.items()}, counts


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    if device == "auto":
        device = "cpu"
    model, weights = load_model(device)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, *model.input_size, generator=g).to(device)
    with torch.no_grad():
        t = model(x).argmax(1)
    names = args.interpreters.split(",") if args.interpreters else list(INTERPRETERS)
    options = parse_options(args.set, args.mask_iterations)
    ours, probe, notes = xaisec_methods(model, [n.strip() for n in names if n.strip()], options, x, t)
    # a full batch costs about batch / 2 times the two-image sanity call
    estimate = {f"xaisec {k}": v * args.batch / 2 for k, v in probe.items()}
    peers: dict[str, Callable[[], object]] = {}
    if not args.no_peers:
        peers, peer_notes = peer_methods(model, x, t)
        notes += peer_notes
    methods = {f"xaisec {k}": v for k, v in ours.items()} | peers
    seconds, best, counts = time_round_robin(methods, args.repeats, args.warmup, args.budget, estimate)

    out = sys.stdout
    out.write(f"\n## Interpreter throughput: cifar10_resnet20 ({weights}), batch {args.batch}, {device}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads\n\n")
    out.write("| method | images/s (median) | ms / batch (median) | ms / batch (best) | timed calls |\n"
              "|---|---:|---:|---:|---:|\n")
    for name, s in seconds.items():
        out.write(f"| {name} | {args.batch / s:.1f} | {1000 * s:.1f} | {1000 * best[name]:.1f} | {counts[name]} |\n")
    out.write("\n")
    for note in notes:
        out.write(f"- {note}\n")
    out.write("\n")
    for peer, ours_name in PEERS.items():
        key = f"xaisec {ours_name}"
        if peer in seconds and key in seconds:
            a, b = args.batch / seconds[key], args.batch / seconds[peer]
            ratio_best = best[peer] / best[key]
            out.write(f"{ours_name} vs {peer}: xaisec {a:.1f} img/s, {peer.split()[0]} {b:.1f} img/s "
                      f"(median ratio xaisec / peer = {a / b:.2f}; best-run ratio {ratio_best:.2f})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
