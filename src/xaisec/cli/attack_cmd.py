"""``xaisec attack``: attack a model + interpreter pair on real images; write results.json and report.html."""

from __future__ import annotations

import argparse

from xaisec.cli.common import (
    EPS_HELP,
    add_image_args,
    add_model_args,
    device_name,
    finite_float,
    parse_eps,
    positive_int,
    seed_int,
)


def add_parser(p: argparse.ArgumentParser) -> None:
    from xaisec.attacks import FRAMEWORKS, describe
    from xaisec.attacks.targets import TARGET_MAPS
    from xaisec.interpreters import INTERPRETERS

    add_model_args(p)
    add_image_args(p)
    p.add_argument("--interpreter", default="gradcam", choices=list(INTERPRETERS), metavar="NAME",
                   help=f"one of: {', '.join(INTERPRETERS)}")
    p.add_argument("--attack", default="adv2", choices=list(describe()), metavar="NAME",
                   help=f"one of: {', '.join(describe())}")
    p.add_argument("--framework", default=None, choices=list(FRAMEWORKS),
                   help="perturbation model of the joint attacks (default pgd)")
    p.add_argument("--target-map", default="benign", choices=list(TARGET_MAPS),
                   help="map the attack aims for: the benign map, a random patch, or another class's map")
    p.add_argument("--target-class", default="random",
                   help="'random' (another class), 'untargeted', or a class index")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", default=None, help="data set name or path (e.g. cifar10, a folder, a .tar)")
    src.add_argument("--samples", default=None, help="bundled sample images: cifar10, cifar100, imagenet")
    p.add_argument("--split", default="test",
                   help="split folder (test, train), or a fraction such as 0.8: the held-out part of a seeded split")
    p.add_argument("--n", type=positive_int, default=20, help="number of correctly classified images to attack")
    p.add_argument("--eps", type=parse_eps, default=None,
                   help=f"L-inf budget of the pgd framework (default 8/255): {EPS_HELP}. cw and stadv have their own "
                        "budgets: --max-l2, --max-flow")
    p.add_argument("--alpha", type=parse_eps, default=None, help="PGD step (default 1/255), same rule as --eps")
    p.add_argument("--max-l2", type=finite_float(0, low_open=True), default=None,
                   help="cw framework: hard L2 budget per image, ||x_adv - x||_2 in [0, 1] pixel units over all "
                        "C*H*W values (e.g. 0.5); default: none, the L2 distance is only penalised")
    p.add_argument("--max-flow", type=finite_float(0, low_open=True), default=None,
                   help="stadv framework: hard flow budget, pixels per axis (e.g. 1); default: none, the flow's "
                        "roughness is only penalised")
    p.add_argument("--steps-scale", type=finite_float(0, low_open=True), default=1.0,
                   help="multiply the paper's step counts (e.g. 0.25 for quick runs on 32x32 images)")
    p.add_argument("--batch-size", type=positive_int, default=50)
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_name, default=None, help="cpu, cuda, cuda:N, mps (default: auto)")
    p.add_argument("--out", required=True, help="output folder for results.json and report.html")
    add_patch_arguments(p)
    add_blackbox_arguments(p)
    from xaisec.cli.detect_cmd import add_defense_arguments

    add_defense_arguments(p)


def budget_options(framework: str | None, eps: float | None, alpha: float | None, max_l2: float | None,
                   max_flow: float | None) -> dict[str, float]:
    """The attack options of the budget flags; a flag that the framework would ignore is an error."""
    from xaisec.utils.checks import XaisecError

    fw = framework or "pgd"
    given = {"--eps": eps, "--alpha": alpha, "--max-l2": max_l2, "--max-flow": max_flow}
    allowed = {"pgd": ("--eps", "--alpha"), "cw": ("--max-l2",), "stadv": ("--max-flow",)}.get(fw)
    if allowed is not None:
        wrong = [f for f, v in given.items() if v is not None and f not in allowed]
        if wrong:
            own = {"pgd": "--eps (L-inf)", "cw": "--max-l2 (L2 per image)", "stadv": "--max-flow (pixels)"}[fw]
            verb = "does" if len(wrong) == 1 else "do"
            raise XaisecError(f"{', '.join(wrong)} {verb} not apply to the {fw} framework, which would ignore it; "
                              f"its budget flag is {own}")
    opts: dict[str, float] = {}
    if fw == "pgd" or allowed is None:
        opts["eps"] = eps if eps is not None else 8 / 255
        opts["alpha"] = alpha if alpha is not None else 1 / 255
    if max_l2 is not None:
        opts["cw_max_l2"] = max_l2
    if max_flow is not None:
        opts["stadv_max_flow"] = max_flow
    return opts


def add_patch_arguments(p: argparse.ArgumentParser, *, universal: bool = False) -> None:
    """The flags of ``--attack patch`` (Grad-CAM adversarial patch, :mod:`xaisec.attacks.patch`); with
    ``universal``, those of ``xaisec universal --method patch`` (no preset or step count; ``random`` position)."""
    from xaisec.attacks.patch import MAP_MODES, PRESETS

    g = p.add_argument_group("universal patch (--method patch)" if universal else "patch attack (--attack patch)")
    g.add_argument("--patch-mode", default=None, choices=list(MAP_MODES),
                   help=("hide: Grad-CAM off the patch (default); attract: on it; none: a plain CE patch" if universal
                         else "hide: Grad-CAM off the patch; attract: on it (default); none: a plain CE patch"))
    g.add_argument("--patch-size", type=finite_float(0, low_open=True), default=None,
                   help="patch side as a fraction of the image side (default 0.25: 8 px of 32)")
    g.add_argument("--patch-ratio", type=finite_float(0, low_open=True), default=None,
                   help="blend inside the patch, in (0, 1] (default 1: the patch replaces the pixels)")
    g.add_argument("--patch-position", default=None,
                   help="top-right (default), top-left, bottom-left, bottom-right, center, paper, or ROW,COL (pixels)"
                        + ("; random: a new place per image" if universal else ""))
    if universal:
        g.add_argument("--patch-step-size", type=finite_float(0, low_open=True), default=None,
                       help="first signed step in [0, 1] pixel units (default 0.01), decaying over the epochs")
        return
    g.add_argument("--patch-preset", default=None, choices=list(PRESETS), help="the papers' settings")
    g.add_argument("--patch-steps", type=positive_int, default=None, help="signed steps (default 300)")
    g.add_argument("--patch-step-size", type=finite_float(0, low_open=True), default=None,
                   help="step in [0, 1] pixel units (default 0.01)")


def patch_options(args: argparse.Namespace) -> dict[str, object]:
    """The PatchAttack options of the ``--patch-*`` flags (only those given); other budgets are an error."""
    from xaisec.utils.checks import XaisecError

    wrong = [f for f, v in {"--eps": getattr(args, "eps", None), "--alpha": getattr(args, "alpha", None),
                            "--max-l2": getattr(args, "max_l2", None), "--max-flow": getattr(args, "max_flow", None),
                            "--framework": getattr(args, "framework", None)}.items() if v is not None]
    if wrong:
        raise XaisecError(f"{', '.join(wrong)} do(es) not apply to --attack patch; use the --patch-* flags")
    opts: dict[str, object] = {}
    for flag, key in (("patch_mode", "map_mode"), ("patch_size", "size"), ("patch_ratio", "ratio"),
                      ("patch_preset", "preset"), ("patch_steps", "steps"), ("patch_step_size", "step_size")):
        if getattr(args, flag, None) is not None:
            opts[key] = getattr(args, flag)
    pos = getattr(args, "patch_position", None)
    if pos is not None:
        if "," in pos:
            try:
                row, col = (int(v) for v in pos.split(","))
            except ValueError as exc:
                raise XaisecError(f"--patch-position must be a corner name or ROW,COL in pixels, got {pos!r}") from exc
            opts["position"] = (row, col)
        else:
            opts["position"] = pos
    return opts


BLACKBOX_ATTACKS = ("attaxai", "dombrowski", "mga")


def add_blackbox_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of the black-box attacks (:mod:`xaisec.blackbox`): attaxai, mga (and the dombrowski baseline)."""
    g = p.add_argument_group("black-box attacks (--attack attaxai | mga | dombrowski)")
    g.add_argument("--queries", type=positive_int, default=None,
                   help="query budget per image (attaxai: population x generations, default 50000; mga: 10000)")
    g.add_argument("--population", type=positive_int, default=None, help="attaxai: NES population (default 125); "
                   "mga: GA population (default 5)")
    g.add_argument("--oracle-output", default=None, choices=["probs", "logits"],
                   help="attaxai: what the system returns besides the map (default probs)")
    g.add_argument("--surrogate", default=None,
                   help="mga: the attacker's surrogate model (a zoo name, model.pt, a folder with weights + card, "
                        "or file.py:func)")
    g.add_argument("--seed-attack", default=None, choices=["advedge", "pgd", "mifgsm"],
                   help="mga: the attack crafted on the surrogate (default advedge)")
    g.add_argument("--iterations", type=positive_int, default=None, help="dombrowski: Adam steps (default 1500)")


def blackbox_options(args: argparse.Namespace) -> dict[str, object]:
    """The options of the black-box attacks from their flags (only those given); --eps bounds attaxai / mga.
    attaxai and dombrowski aim at the map of another image of the batch (the --target-map flag does not apply)."""
    from xaisec.utils.checks import XaisecError

    opts: dict[str, object] = {}
    if args.eps is not None:
        opts["eps"] = args.eps
    if args.attack == "mga":
        if args.surrogate is None:
            raise XaisecError("--attack mga needs --surrogate MODEL (e.g. cifar10_vgg11_bn)")
        opts["surrogate"] = args.surrogate
        for flag, key in (("queries", "budget"), ("population", "population"), ("seed_attack", "seed_attack")):
            if getattr(args, flag) is not None:
                opts[key] = getattr(args, flag)
    elif args.attack == "attaxai":
        for flag, key in (("queries", "queries"), ("population", "population"), ("oracle_output", "output")):
            if getattr(args, flag) is not None:
                opts[key] = getattr(args, flag)
    elif args.iterations is not None:
        opts["iterations"] = args.iterations
    return opts


def run(args: argparse.Namespace) -> int:
    import logging
    import time
    import uuid
    from pathlib import Path

    from xaisec.cli.common import data_from_args, default_data, model_from_args
    from xaisec.data import samples
    from xaisec.data.labels import align_labels
    from xaisec.experiments import attack_record, correctly_classified, run_attack
    from xaisec.reports.attack_report import attack_report_html
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_replace_together, to_json
    from xaisec.utils.seed import seed_everything

    log = logging.getLogger("xaisec.attack")
    seed_everything(args.seed)
    target_class: str | int = args.target_class
    if target_class not in ("random", "untargeted"):
        try:
            target_class = int(target_class)
        except ValueError as exc:
            raise XaisecError(
                f"--target-class must be random, untargeted or an int, got {args.target_class!r}"
            ) from exc
    budget = (patch_options(args) if args.attack == "patch" else blackbox_options(args)
              if args.attack in BLACKBOX_ATTACKS
              else budget_options(args.framework, args.eps, args.alpha, args.max_l2, args.max_flow))
    model = model_from_args(args)
    if isinstance(target_class, int) and not 0 <= target_class < (model.num_classes or 2**62):
        raise XaisecError(f"--target-class {target_class} is not a class of {args.model} "
                          f"(0..{(model.num_classes or 1) - 1})")
    data = samples(args.samples) if args.samples else data_from_args(args, model,
                                                                     source=args.data or default_data(args.model))
    if len(data) == 0:
        raise XaisecError(f"{data.name}: no images in split {args.split!r}; check --data and --split")
    data = align_labels(data, model)
    if tuple(data.images.shape[1:]) != tuple(model.input_size or data.images.shape[1:]):
        raise XaisecError(f"images are {tuple(data.images.shape[1:])} but {args.model} takes {model.input_size}")
    data = correctly_classified(model, data, args.n, seed=args.seed)
    x = data.float_images(model.device)
    log.info("attacking %d correctly classified images from %s", len(data), data.name)
    from xaisec.cli.detect_cmd import defended_models, defense_summary

    attacked, defended = defended_models(model, args)  # --defense / --adaptive
    t0 = time.time()
    res = run_attack(attacked, args.interpreter, args.attack, x, data.labels.to(model.device), framework=args.framework,
                     batch_size=args.batch_size, seed=args.seed, progress=not args.quiet,
                     **({} if args.attack in BLACKBOX_ATTACKS else
                        {"steps_scale": args.steps_scale, "target_map": args.target_map,
                         "target_class": target_class}), **budget)
    out = Path(args.out)
    run_id = uuid.uuid4().hex[:12]
    config = {"model": args.model, "weights": args.weights or "shipped", "data": data.name, "n": len(res),
              "steps_scale": args.steps_scale, "batch_size": args.batch_size}
    record = attack_record(res, config=config, seed=args.seed, class_name=model.class_name)
    record["run_id"] = run_id
    if defended is not None:
        record["defense"] = defense_summary(defended, res, args.adaptive)
    framework = args.framework or ("patch" if args.attack == "patch" else res.config.get("framework", "pgd"))
    title = f"{args.attack} ({framework}) vs {args.interpreter} on {args.model}"
    html = attack_report_html([(f"{args.attack}-{framework}", res)], title=title, class_name=model.class_name,
                              meta={"data": data.name, "seed": args.seed, "target map": args.target_map,
                                    "run id": run_id})
    # both files are written, then moved into place together: they always come from the same run
    atomic_replace_together({out / "results.json": (to_json(record) + "\n").encode(),
                             out / "report.html": html.encode()})
    m = record["mean"]
    print(f"{title}: {len(res)} images in {time.time() - t0:.1f} s")
    print(f"threat model: {record['threat_model']}")
    print("| success | confidence | L1 | L2 | IoU | noise rate | L-inf | L2 dist | s/image |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {m['success'] * 100:.1f}% | {m['confidence']:.3f} | {m['l1']:.4f} | {m['l2']:.4f} | {m['iou']:.3f} "
          f"| {m['noise_rate']:.4f} | {m.get('linf', float('nan')) * 255:.1f}/255 "
          f"| {m.get('l2_dist', float('nan')):.3f} "
          f"| {m['seconds_per_image']:.3f} |")
    if res.queries is not None:
        print(f"queries: {res.queries_total} in total, {float(res.queries.float().mean()):.0f} per image (mean), "
              f"{float(res.queries.float().median()):.0f} (median)")
    print(f"results: {out / 'results.json'}\nreport: {out / 'report.html'}")
    return 0
