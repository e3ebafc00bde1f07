"""Input-transform throughput: xaisec's median smoothing and bit squeezing vs the Adversarial Robustness
Toolbox's SpatialSmoothing and FeatureSqueezing, on the same 1,024 CIFAR-10 test images in one run.

    .venv/bin/python benchmarks/defenses.py                   # 1,024 images, median 2 and 3, bits 3 and 5
    .venv/bin/python benchmarks/defenses.py --n 256 --repeats 3

Both sides start from and end with a torch tensor on the model's device (the defended model's pipeline):
ART's time includes the tensor -> NumPy -> tensor round trip it needs. Methods are timed round-robin (one
call each per round, so background load hits them alike) and the median per call is reported, with
``speedup: S`` = ART time / xaisec time, and a check that the outputs agree.

Conventions (identical on both sides, so the outputs agree exactly): median windows of even size k put the
centre at the lower right and take the upper median (scipy.ndimage.median_filter, which ART calls); borders
are mirrored with the edge repeated (scipy ``reflect``). Bits: round-half-to-even of x * (2^b - 1).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cifar_batch

from xaisec.defenses import BitDepth, MedianSmoothing

log = logging.getLogger("benchmarks.defenses")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1024, help="images (default 1024)")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds; the median is reported")
    p.add_argument("--median", default="2,3", help="median sizes (default 2,3)")
    p.add_argument("--bits", default="3,5", help="bit depths (default 3,5)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from art.defences.preprocessor import FeatureSqueezing, SpatialSmoothing
    except ImportError:
        print("the Adversarial Robustness Toolbox is missing: .venv/bin/pip install -c constraints.txt "
              "adversarial-robustness-toolbox")
        return 2
    device = torch.device(args.device)
    x, _ = cifar_batch(args.n, device)
    pairs: list[tuple[str, Callable[[], torch.Tensor], Callable[[], torch.Tensor]]] = []

    def art_call(defence: object) -> Callable[[], torch.Tensor]:
        def f() -> torch.Tensor:
            out, _ = defence(x.detach().cpu().numpy())  # type: ignore[operator]
            return torch.from_numpy(out).to(device)
        return f

    def ours(module: torch.nn.Module) -> Callable[[], torch.Tensor]:
        def f() -> torch.Tensor:
            with torch.no_grad():
                return module(x)
        return f

    for k in (int(v) for v in args.median.split(",") if v):
        pairs.append((f"median {k}x{k}", ours(MedianSmoothing(k)),
                      art_call(SpatialSmoothing(window_size=k, channels_first=True, clip_values=(0.0, 1.0)))))
    for b in (int(v) for v in args.bits.split(",") if v):
        pairs.append((f"bits {b}", ours(BitDepth(b)), art_call(FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=b))))
    times: dict[str, list[float]] = {}
    agree: dict[str, float] = {}
    for name, a, b in pairs:  # warm-up and agreement
        agree[name] = float((a() - b()).abs().max())
    for _ in range(args.repeats):
        for name, a, b in pairs:
            for side, f in (("xaisec", a), ("ART", b)):
                t0 = time.perf_counter()
                f()
                times.setdefault(f"{name}|{side}", []).append(time.perf_counter() - t0)
    print(f"{args.n} CIFAR-10 images {tuple(x.shape[1:])} on {device}, torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats} rounds")
    print("| transform | xaisec (s) | ART (s) | speedup | max abs difference |")
    print("|---|---|---|---|---|")
    lines = []
    for name, _, _ in pairs:
        ta = statistics.median(times[f"{name}|xaisec"])
        tb = statistics.median(times[f"{name}|ART"])
        print(f"| {name} | {ta:.4f} | {tb:.4f} | {tb / ta:.1f}x | {agree[name]:.2e} |")
        lines.append(f"{name}: xaisec {ta:.4f} s, ART {tb:.4f} s, speedup: {tb / ta:.1f}; outputs "
                     f"{'agree' if agree[name] < 1e-6 else 'DIFFER'} (max abs difference {agree[name]:.1e})")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
