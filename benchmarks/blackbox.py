"""AttaXAI generation: batched (xaisec) vs one member at a time (the reference code's way).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/blackbox.py [--explainer grad] [--population 125]

Prints the seconds of one generation both ways, ``speedup: S``, the seconds of a 50,000-query attack per image
when 1, 2, 4... images' populations share one batch, and checks that the batched and the one-by-one fitness
agree (rtol 1e-4) for the same noise. The reference evaluates every member with its own forward pass for the
output and its own explainer call (forward + backward) at batch 1, then its fitness in Python.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cifar_batch, resnet20

from xaisec.blackbox import Oracle, abs_sum_maps
from xaisec.blackbox.attaxai import default_alpha, fitness, model_scale, sample_noise

log = logging.getLogger("benchmarks.blackbox")


def candidates(x: torch.Tensor, noise: torch.Tensor, scale: torch.Tensor, sigma: float = 0.1) -> torch.Tensor:
    """x (P, C, H, W), noise (P, L, d) -> (P * L, C, H, W) candidates clamped to [0, 1]."""
    p, c, h, w = x.shape
    z = x.view(p, 1, -1) + scale.expand(1, c, h, w).reshape(1, 1, -1) * sigma * noise
    return z.clamp(0, 1).view(-1, c, h, w)


def batched_generation(oracle: Oracle, x: torch.Tensor, noise: torch.Tensor, scale: torch.Tensor,
                       cls: torch.Tensor, mt: torch.Tensor, p0: torch.Tensor, alpha: float) -> torch.Tensor:
    p, lam = noise.shape[:2]
    probs, maps = oracle(candidates(x, noise, scale), cls.repeat_interleave(lam))
    f, _, _ = fitness(maps.view(p, lam, *x.shape[-2:]), probs.view(p, lam, -1), mt, p0, alpha, 1e6)
    return f


def reference_generation(model: torch.nn.Module, interp, x: torch.Tensor, noise: torch.Tensor, scale: torch.Tensor,
                         cls: torch.Tensor, mt: torch.Tensor, p0: torch.Tensor, alpha: float) -> torch.Tensor:
    """One member at a time: a forward for the probabilities, an explainer call (forward + backward), the fitness."""
    p, lam = noise.shape[:2]
    z = candidates(x, noise, scale)
    out = torch.empty(p, lam)
    for i in range(p):
        for k in range(lam):
            zk = z[i * lam + k:i * lam + k + 1]
            with torch.no_grad():
                probs = model(zk).softmax(1)
            m = abs_sum_maps(interp.attributions(zk, cls[i:i + 1]))
            out[i, k] = float(alpha * (m - mt[i:i + 1]).pow(2).mean() + 1e6 * (probs - p0[i:i + 1]).pow(2).mean())
    return out


CAPTUM = {"grad": "Saliency", "grad_x_input": "InputXGradient", "guided_backprop": "GuidedBackprop",
          "deeplift": "DeepLift"}


def captum_reference(model: torch.nn.Module, explainer: str):
    """The reference code's explainer: a Captum method called on one image at a time (None if unavailable)."""
    if explainer not in CAPTUM:
        return None
    try:
        from xaisec._compat.torchvision import import_torchvision

        import_torchvision()
        import captum.attr
    except ImportError:
        return None
    method = getattr(captum.attr, CAPTUM[explainer])(model)

    class _Captum:
        def attributions(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            z = z.detach().requires_grad_(True)
            kw = {"abs": False} if explainer == "grad" else {}
            return method.attribute(z, target=int(c[0]), **kw).detach()

    return _Captum()


CPU_TIMES: dict[float, float] = {}


def timed(fn, reps: int) -> float:
    """Median wall seconds of ``fn`` over ``reps`` runs; its median process CPU seconds go to CPU_TIMES[wall]
    (on a shared machine the CPU time is the steadier measure)."""
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    wall = statistics.median(times)
    CPU_TIMES[wall] = statistics.median(cpu)
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--explainer", default="grad")
    ap.add_argument("--population", type=int, default=125)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-images", default="1,2,4", help="images whose populations share one batch")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, weights = resnet20("cpu")
    for prm in model.parameters():
        prm.requires_grad_(False)
    sizes = [int(s) for s in args.batch_images.split(",")]
    x, _ = cifar_batch(max(sizes) + 1, torch.device("cpu"))
    oracle = Oracle(model, args.explainer, budget=None)
    lam, h, w = args.population, x.shape[-2], x.shape[-1]
    alpha = default_alpha(h, w)
    scale = model_scale(model, x.shape[1], x.device)
    xs, xt = x[:max(sizes)], x[1:max(sizes) + 1]
    p0, _ = oracle(xs)
    cls = p0.argmax(1)
    _, mt = oracle(xt)
    gen = torch.Generator().manual_seed(0)
    noise = sample_noise(max(sizes), lam, x[0].numel(), "lhs", gen, x.device)
    print(f"model cifar10_resnet20 ({weights}), explainer {args.explainer}, population {lam}, "
          f"threads {torch.get_num_threads()}")

    one = slice(0, 1)
    f_b = batched_generation(oracle, xs[one], noise[one], scale, cls[one], mt[one], p0[one], alpha)
    # the same system queried one member at a time (batch 1 through the same oracle)
    z = candidates(xs[one], noise[one], scale)
    singles = [oracle(z[k:k + 1], cls[:1]) for k in range(lam)]
    ps, ms = torch.cat([a for a, _ in singles]), torch.cat([b for _, b in singles])
    f_s, _, _ = fitness(ms.view(1, lam, h, w), ps.view(1, lam, -1), mt[one], p0[one], alpha, 1e6)
    agree = torch.allclose(f_b, f_s, rtol=1e-4, atol=1e-8)
    worst = float(((f_b - f_s).abs() / f_s.abs().clamp_min(1e-12)).max())
    print(f"fitness batched vs one-by-one, same noise: {'agree' if agree else 'DIFFER'} (rtol 1e-4; max relative "
          f"difference {worst:.2e})")
    f_r = reference_generation(model, oracle.interpreter, xs[one], noise[one], scale, cls[one], mt[one], p0[one],
                               alpha)
    worst_r = float(((f_b - f_r).abs() / f_r.abs().clamp_min(1e-12)).max())
    print(f"fitness batched vs the reference's way (separate forward for the output, explainer at batch 1): max "
          f"relative difference {worst_r:.2e} (float32 probabilities, error ~1e-7, weighted by beta = 1e6)")

    t_ref = timed(lambda: reference_generation(model, oracle.interpreter, xs[one], noise[one], scale, cls[one],
                                               mt[one], p0[one], alpha), max(1, args.reps // 2))
    cap = captum_reference(model, args.explainer)
    t_cap = None
    if cap is not None:
        f_c = reference_generation(model, cap, xs[one], noise[one], scale, cls[one], mt[one], p0[one], alpha)
        worst_c = float(((f_b - f_c).abs() / f_c.abs().clamp_min(1e-12)).max())
        print(f"fitness batched vs Captum one-by-one: max relative difference {worst_c:.2e}")
        t_cap = timed(lambda: reference_generation(model, cap, xs[one], noise[one], scale, cls[one], mt[one],
                                                   p0[one], alpha), max(1, args.reps // 2))
    t_bat = timed(lambda: batched_generation(oracle, xs[one], noise[one], scale, cls[one], mt[one], p0[one], alpha),
                  args.reps)
    print(f"one generation, one image: reference (one member at a time) {t_ref:.3f} s (CPU {CPU_TIMES[t_ref]:.3f} s), "
          f"batched {t_bat:.3f} s (CPU {CPU_TIMES[t_bat]:.3f} s); CPU-time speedup "
          f"{CPU_TIMES[t_ref] / CPU_TIMES[t_bat]:.1f}")
    if t_cap is not None:
        print(f"reference with Captum {CAPTUM[args.explainer]} one member at a time (as the reference "
              f"code): {t_cap:.3f} s (CPU {CPU_TIMES[t_cap]:.3f} s); speedup vs Captum: {t_cap / t_bat:.1f} "
              f"(CPU time: {CPU_TIMES[t_cap] / CPU_TIMES[t_bat]:.1f})")
    print(f"speedup: {t_ref / t_bat:.1f} (vs xaisec's own explainer one member at a time)")
    print("| images per batch | rows per batch | s per generation | s per 50,000-query attack per image "
          "| CPU s per attack per image |")
    print("|---|---|---|---|---|")
    gens = 50_000 // lam
    for p in sizes:
        sl = slice(0, p)
        t = timed(lambda sl=sl: batched_generation(oracle, xs[sl], noise[sl], scale, cls[sl], mt[sl], p0[sl], alpha),
                  args.reps)
        print(f"| {p} | {p * lam} | {t:.3f} | {t * gens / p:.0f} | {CPU_TIMES[t] * gens / p:.0f} |")
    print(f"(reference: {t_ref * gens:.0f} s per 50,000-query attack per image)")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
