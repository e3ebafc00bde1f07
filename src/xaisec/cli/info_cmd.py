"""``xaisec info``: the registered models, data sets and other components, one line each."""

from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", default="all",
                   help="all, models, data, interpreters, attacks, frameworks, papers, metrics (default: all)")


def _sections() -> dict[str, list[tuple[str, str]]]:
    from xaisec.data import DATASETS
    from xaisec.models import MODELS, model_card, shipped_weights

    models = []
    for name, s in MODELS.items():
        card = model_card(name)
        if shipped_weights(name) and card:
            status = f"shipped weights, test acc {card['test_accuracy'] * 100:.1f}%"
        elif s.imagenet_arch:
            status = "pretrained weights downloaded when online"
        else:
            status = "no shipped weights (train with `xaisec train`)"
        models.append((name, f"{s.description}; CAM layer {s.cam_layer}; {status}"))
    from xaisec.attacks import FRAMEWORKS, describe
    from xaisec.experiments.papers import PAPERS
    from xaisec.interpreters import INTERPRETERS
    from xaisec.metrics import METRICS

    return {
        "models": models,
        "data": list(DATASETS.items()),
        "interpreters": [(n, d) for n, (_, d) in INTERPRETERS.items()],
        "attacks": list(describe().items()),
        "frameworks": [(n, f.description) for n, f in FRAMEWORKS.items()],
        "papers": [(n, d) for n, (_, d) in PAPERS.items()],
        "metrics": [(n, f"{s.description}; {'higher' if s.higher_is_better else 'lower'} is better")
                    for n, s in METRICS.items()],
    }


def run(args: argparse.Namespace) -> int:
    from xaisec.utils.checks import XaisecError

    sections = _sections()
    if args.what != "all" and args.what not in sections:
        raise XaisecError(f"unknown section {args.what!r}; choose from all, {', '.join(sections)}")
    for title, rows in sections.items():
        if args.what not in ("all", title):
            continue
        print(f"{title}:")
        width = max(len(n) for n, _ in rows)
        for name, text in rows:
            print(f"  {name:<{width}}  {text}")
    return 0
