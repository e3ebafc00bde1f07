"""``xaisec detect``: train / calibrate a detector of adversarial inputs and evaluate it on fresh attacks.

``--detector squeeze``: feature squeezing, thresholds calibrated on ``--train`` benign images at ``--fpr``.
``--detector ensemble``: the ensemble-of-interpreters detector on the stacked maps of ``--interpreters``,
trained and tested on ``--train`` + ``--eval`` source images (benign + adversarial, split by source).
Writes detector files, ``results.json`` and ``report.html`` (ROC curve, score histograms, threshold) to --out.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
from pathlib import Path
from typing import Any

import torch

from xaisec.cli.common import add_image_args, add_model_args, parse_eps


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", choices=("squeeze", "ensemble"), required=True)
    add_model_args(p)
    add_image_args(p)
    p.add_argument("--interpreters", default="grad,cam",
                   help="comma-separated interpreters: the ensemble's maps; the first is attacked (squeeze)")
    p.add_argument("--attack-interpreter", default=None,
                   help="interpreter the adversarial inputs are made against (default: the first of --interpreters)")
    p.add_argument("--squeezers", default="median:2,bits:5,nlm:13-3-2",
                   help="feature squeezers, e.g. median:2,bits:5,nlm:13-3-2 (squeeze detector)")
    p.add_argument("--variant", default="maps", choices=("maps", "product"), help="ensemble channels")
    p.add_argument("--attack", default="adv2", help="attack that makes the adversarial inputs (pgd, adv2, advedge)")
    p.add_argument("--train", type=int, default=300,
                   help="benign calibration images (squeeze) or training source images (ensemble)")
    p.add_argument("--eval", type=int, default=100, help="source images attacked for the evaluation")
    p.add_argument("--fpr", type=float, default=0.05, help="false-positive rate of the threshold")
    p.add_argument("--data", default=None, help="data set name or path, e.g. an image folder (default: the model's)")
    p.add_argument("--split", default="test",
                   help="split folder (test, train), or a fraction such as 0.8: the held-out part of a seeded split")
    p.add_argument("--eps", type=parse_eps, default=8 / 255)
    p.add_argument("--steps-scale", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=30, help="CNN epochs (ensemble)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="output folder")


def _roc_uri(curves: dict[str, tuple[Any, Any]], title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xaisec.reports.plots import PALETTE

    fig, ax = plt.subplots(figsize=(3.6, 3.4), dpi=110)
    for i, (label, (fpr, tpr)) in enumerate(curves.items()):
        ax.plot(fpr, tpr, label=label, color=PALETTE[i % len(PALETTE)])
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.axvline(0.05, ls="--", color="grey", lw=0.8)
    ax.set_xlabel("false-positive rate", fontsize=9)
    ax.set_ylabel("true-positive rate", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _report(path: Path, title: str, rows: list[tuple[str, str]], figures: list[str]) -> None:
    from xaisec.utils.io import atomic_write_text

    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    imgs = "".join(f'<img src="{u}" alt="figure">' for u in figures)
    atomic_write_text(path, f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:left}"
                            "img{margin:8px}</style></head><body>"
                            f"<h1>{html.escape(title)}</h1><table>{table}</table>{imgs}</body></html>\n")


def run(args: argparse.Namespace) -> int:
    import logging

    from sklearn.metrics import roc_auc_score, roc_curve

    from xaisec.attacks import describe
    from xaisec.cli.common import data_from_args, default_data, model_from_args
    from xaisec.experiments import correctly_classified, run_attack
    from xaisec.interpreters import INTERPRETERS
    from xaisec.reports.plots import histogram_uri
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_write_json
    from xaisec.utils.seed import seed_everything

    log = logging.getLogger("xaisec.detect")
    seed_everything(args.seed)
    names = [s.strip() for s in args.interpreters.split(",") if s.strip()]
    for n in names + ([args.attack_interpreter] if args.attack_interpreter else []):
        if n not in INTERPRETERS:
            raise XaisecError(f"unknown interpreter {n!r}; known: {', '.join(INTERPRETERS)}")
    if not names:
        raise XaisecError("--interpreters names no interpreter (e.g. grad,cam)")
    if args.attack not in describe():
        raise XaisecError(f"unknown attack {args.attack!r}; known: {', '.join(describe())}")
    if args.train < 1 or args.eval < 1:
        raise XaisecError("--train and --eval must be >= 1")
    attack_interp = args.attack_interpreter or names[0]
    model = model_from_args(args)
    data = data_from_args(args, model, source=args.data or default_data(args.model))
    out = Path(args.out)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))
    quiet = getattr(args, "quiet", False)
    if args.detector == "squeeze":
        from xaisec.defenses import squeeze_detector

        det = squeeze_detector(model, [s for s in args.squeezers.split(",") if s])
        cal = data.subset(order[: args.train])
        det.calibrate(cal.float_images(model.device), fpr=args.fpr)
        det.save(out / "detector.json")
        ev = correctly_classified(model, data.subset(order[args.train:]), args.eval, seed=args.seed)
        x, y = ev.float_images(model.device), ev.labels.to(model.device)
        res = run_attack(model, attack_interp, args.attack, x, y, batch_size=args.batch_size, seed=args.seed,
                         progress=not quiet, eps=args.eps, steps_scale=args.steps_scale)
        ok = res.success.bool()
        s_b, s_a = det.scores(res.x), det.scores(res.x_adv[ok])
        rates = det.detection_rates(res.x_adv, ok)
        aucs, curves = {}, {}
        for k in s_b:
            lab = torch.cat([torch.zeros(len(s_b[k])), torch.ones(len(s_a[k]))]).numpy()
            sc = torch.cat([s_b[k], s_a[k]]).numpy()
            if len(s_a[k]):
                aucs[k] = float(roc_auc_score(lab, sc))
                fpr, tpr, _ = roc_curve(lab, sc)
                curves[f"{k} (AUC {aucs[k]:.2f})"] = (fpr, tpr)
        fp_eval = {k: float((v > det.thresholds[k]).float().mean()) for k, v in s_b.items()}
        record = {"detector": "squeeze", "model": args.model, "squeezers": det.names, "thresholds": det.thresholds,
                  "fpr": args.fpr, "n_calibration": det.n_calibration, "attack": args.attack,
                  "interpreter": attack_interp, "n_eval": len(res), "n_success": int(ok.sum()),
                  "detection_rate": rates, "false_positive_rate_eval": fp_eval, "auc": aucs}
        figs = [_roc_uri(curves, "ROC, benign vs adversarial")] if curves else []
        for k in s_b:
            hi = float(max(s_b[k].max(), s_a[k].max() if len(s_a[k]) else 0, 1e-6))
            figs.append(histogram_uri({"benign": s_b[k], "adversarial": s_a[k]}, title=f"{k} score "
                                      f"(threshold {det.thresholds[k]:.3f})", xlabel="L1 softmax distance",
                                      value_range=(0.0, hi)))
        rows = [("threshold " + k, f"{v:.4f}") for k, v in det.thresholds.items()]
        rows += [("detection rate " + k, f"{100 * v:.1f}%") for k, v in rates.items()]
        summary = ", ".join(f"{k} {100 * v:.1f}%" for k, v in rates.items())
    else:
        from xaisec.defenses import EnsembleDetector

        n = args.train + args.eval
        ev = correctly_classified(model, data, n, seed=args.seed)
        x, y = ev.float_images(model.device), ev.labels.to(model.device)
        res = run_attack(model, attack_interp, args.attack, x, y, batch_size=args.batch_size, seed=args.seed,
                         progress=not quiet, eps=args.eps, steps_scale=args.steps_scale)
        ok = res.success.bool()
        det = EnsembleDetector(model, names, args.variant, epochs=args.epochs, seed=args.seed)
        groups = torch.cat([torch.arange(len(res)), torch.arange(len(res))[ok]])
        rep = det.fit(res.x, res.x_adv[ok], groups=groups, test_fraction=args.eval / n, fpr=args.fpr)
        det.save(out / "detector")
        scores, labels = det._last_test
        fpr, tpr, _ = roc_curve(labels.numpy(), scores.numpy())
        record = {"detector": "ensemble", "model": args.model, "interpreters": names, "variant": args.variant,
                  "attack": args.attack, "attack_interpreter": attack_interp, "n_sources": len(res),
                  "n_success": int(ok.sum()), **rep}
        figs = [_roc_uri({f"{'+'.join(names)} (AUC {rep['test']['auc']:.2f})": (fpr, tpr)}, "ROC (test split)"),
                histogram_uri({"benign": scores[labels == 0], "adversarial": scores[labels == 1]},
                              title=f"P(adversarial), threshold at {100 * args.fpr:.0f}% FPR "
                                    f"{rep['threshold_at_fpr']:.3f}", xlabel="probability")]
        m = rep["test"]
        rows = [("accuracy", f"{m['accuracy']:.3f}"), ("ROC AUC", f"{m['auc']:.3f}"),
                (f"TPR at {100 * args.fpr:.0f}% FPR", f"{100 * m['tpr_at_fpr']:.1f}%"),
                ("threshold", f"{rep['threshold_at_fpr']:.4f}"),
                ("train / test", f"{rep['n_train']} / {rep['n_test']}")]
        summary = (f"accuracy {m['accuracy']:.3f}, AUC {m['auc']:.3f}, "
                   f"TPR@{100 * args.fpr:.0f}%FPR {m['tpr_at_fpr']:.3f}")
    atomic_write_json(out / "results.json", _finite(record))
    title = f"{args.detector} detector on {args.model}: {args.attack} vs {attack_interp}"
    _report(out / "report.html", title, rows, figs)
    log.info("wrote %s", out)
    print(f"{title}: {summary}\nresults: {out / 'results.json'}\nreport: {out / 'report.html'}")
    return 0


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# -- `xaisec attack --defense SPEC [--adaptive]` (used by attack_cmd) ---------------------------------------------
def add_defense_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("defense (input transform in front of the model)")
    g.add_argument("--defense", default=None, metavar="SPEC",
                   help="median:K, bits:B or nlm:S-P-H (e.g. median:2); the attack is measured on the defended model")
    g.add_argument("--adaptive", action="store_true",
                   help="attack through the defense with a straight-through (BPDA) backward; default: oblivious "
                        "(crafted on the undefended model)")


def defended_models(model: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """(model to attack, defended model or None) from ``--defense`` / ``--adaptive``."""
    from xaisec.utils.checks import XaisecError

    spec = getattr(args, "defense", None)
    if spec is None:
        if getattr(args, "adaptive", False):
            raise XaisecError("--adaptive needs --defense SPEC (e.g. --defense median:2)")
        return model, None
    from xaisec.defenses import defend

    defended = defend(model, spec, bpda=bool(args.adaptive))
    return (defended if args.adaptive else model), defended


def defense_summary(defended: Any, res: Any, adaptive: bool) -> dict[str, Any]:
    """Clean accuracy and attack success on the defended model; printed and returned for results.json."""
    device = defended.device
    with torch.no_grad():
        pred_clean = defended(res.x.to(device)).argmax(1).cpu()
        pred_adv = defended(res.x_adv.to(device)).argmax(1).cpu()
    goal = (pred_adv == res.target) if res.target is not None else (pred_adv != res.y)
    out = {"defense": defended.transform.spec, "mode": "adaptive (BPDA)" if adaptive else "oblivious",
           "clean_accuracy_defended": float((pred_clean == res.y).float().mean()),
           "success_defended": float(goal.float().mean())}
    print(f"defense {out['defense']} ({out['mode']}): clean accuracy {100 * out['clean_accuracy_defended']:.1f}% "
          f"on these images, attack success on the defended model {100 * out['success_defended']:.1f}%")
    return out
