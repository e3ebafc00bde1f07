"""``xaisec explain``: attribution maps of a model's decisions as heat-map overlays and one grid image."""

from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    from xaisec.interpreters import INTERPRETERS

    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (resized to the model's input size)")
    p.add_argument("--model", default="cifar10_resnet20", help="registered model (see `xaisec info models`)")
    p.add_argument("--weights", default=None, help="weights file instead of the shipped ones")
    p.add_argument("--interpreter", default="gradcam", choices=list(INTERPRETERS), metavar="NAME",
                   help=f"one of: {', '.join(INTERPRETERS)}")
    p.add_argument("--data", default=None, help="data set name or path instead of IMAGE files (e.g. samples:cifar10)")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=16, help="with --data: explain N images (a seeded random sample)")
    p.add_argument("--target", default="pred", help="'pred' (predicted class), 'label' (true class) or an index")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="output folder for the PNG files")


def _load_files(paths: list[str], size: tuple[int, int, int]):
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    from xaisec.utils.checks import XaisecError

    c, h, w = size
    arrays = []
    for p in paths:
        if not Path(p).is_file():
            raise XaisecError(f"{p}: no such image file")
        try:
            with Image.open(p) as im:
                im = im.convert("RGB" if c == 3 else "L").resize((w, h), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise XaisecError(f"{p}: not a readable image ({exc})") from exc
        arrays.append(arr if arr.ndim == 3 else arr[..., None])
    return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy()).float() / 255


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from xaisec.data import load as load_data
    from xaisec.interpreters import get as get_interpreter
    from xaisec.models import load, spec
    from xaisec.reports.images import display_scale, heatmap_overlay, to_png_bytes
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_write_bytes
    from xaisec.utils.seed import seed_everything

    seed_everything(args.seed)
    if bool(args.images) == bool(args.data):
        raise XaisecError("give either IMAGE files or --data (not both, not neither)")
    if args.data:
        ds = load_data(args.data, args.split).sample(args.n, seed=args.seed)
        x, labels, names = ds.float_images(), ds.labels, [f"{i:04d}" for i in range(len(ds))]
    else:  # read the files first: a bad file is reported before any model is loaded
        x, labels = _load_files(args.images, spec(args.model).input_size), None
        names = [Path(p).stem for p in args.images]
    model = load(args.model, weights=args.weights, device=args.device)
    x = x.to(model.device)
    with torch.no_grad():
        pred = model(x).argmax(1)
    if args.target == "pred":
        target = pred
    elif args.target == "label":
        if labels is None:
            raise XaisecError("--target label needs --data (image files carry no labels)")
        target = labels.to(model.device)
    else:
        try:
            target = torch.full_like(pred, int(args.target))
        except ValueError as exc:
            raise XaisecError(f"--target must be pred, label or a class index, got {args.target!r}") from exc
    interpreter = get_interpreter(args.interpreter, model)
    maps = interpreter(x, target).cpu()
    out = Path(args.out)
    scale = display_scale(x.shape[-1], 128)
    tiles = []
    for i, name in enumerate(names):
        overlay = heatmap_overlay(x[i].cpu(), maps[i])
        label = model.class_name(int(target[i]))
        atomic_write_bytes(out / f"{name}_{args.interpreter}_{label}.png", to_png_bytes(overlay, scale))
        tiles.append(torch.cat([x[i].cpu().expand(3, -1, -1), overlay], dim=2))
    cols = min(4, len(tiles))
    rows = [torch.cat(tiles[r:r + cols] + [torch.ones_like(tiles[0])] * (cols - len(tiles[r:r + cols])), dim=2)
            for r in range(0, len(tiles), cols)]
    grid = torch.cat(rows, dim=1)
    atomic_write_bytes(out / f"grid_{args.interpreter}.png", to_png_bytes(grid, scale))
    print(f"{len(names)} {args.interpreter} maps of {args.model} written to {out}/ (grid: grid_{args.interpreter}.png)")
    return 0
