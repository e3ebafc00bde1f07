"""``xaisec explain``: attribution maps of a model's decisions as heat-map overlays and one grid image."""

from __future__ import annotations

import argparse

from xaisec.cli.common import add_image_args, add_model_args, device_name, positive_int, seed_int

MANIFEST = "explain.json"  # the files the last run wrote; a re-run removes those it does not write again


def add_parser(p: argparse.ArgumentParser) -> None:
    from xaisec.interpreters import INTERPRETERS

    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (resized to the model's input size)")
    add_model_args(p)
    add_image_args(p)
    p.add_argument("--interpreter", default="gradcam", choices=list(INTERPRETERS), metavar="NAME",
                   help=f"one of: {', '.join(INTERPRETERS)}")
    p.add_argument("--data", default=None, help="data set name or path instead of IMAGE files (e.g. samples:cifar10)")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=positive_int, default=16,
                   help="with --data: explain N images (a seeded random sample)")
    p.add_argument("--target", default="pred", help="'pred' (predicted class), 'label' (true class) or an index")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_name, default=None, help="cpu, cuda, cuda:N, mps (default: auto)")
    p.add_argument("--out", required=True,
                   help=f"output folder for the PNG files; a re-run removes the PNGs of the previous run ({MANIFEST})")


def unique_names(stems: list[str]) -> list[str]:
    """File stems made unique: a repeated stem gets -2, -3... (a/img.png and b/img.png -> img, img-2)."""
    seen: dict[str, int] = {}
    taken = set(stems)
    out = []
    for s in stems:
        if s not in seen:
            seen[s] = 1
            out.append(s)
            continue
        k = seen[s]
        while True:
            k += 1
            cand = f"{s}-{k}"
            if cand not in taken:
                break
        seen[s] = k
        taken.add(cand)
        out.append(cand)
    return out


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
        except Image.DecompressionBombError as exc:
            raise XaisecError(f"{p}: the image is too large to decode safely (a decompression bomb?); shrink it "
                              "or remove it") from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise XaisecError(f"{p}: not a readable image ({exc})") from exc
        arrays.append(arr if arr.ndim == 3 else arr[..., None])
    return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy()).float() / 255


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from xaisec.cli.common import data_from_args, model_from_args
    from xaisec.interpreters import get as get_interpreter
    from xaisec.reports.images import display_scale, heatmap_overlay, to_png_bytes
    from xaisec.utils.checks import XaisecError
    from xaisec.utils.io import atomic_write_bytes, atomic_write_json
    from xaisec.utils.seed import seed_everything

    seed_everything(args.seed)
    if bool(args.images) == bool(args.data):
        raise XaisecError("give either IMAGE files or --data (not both, not neither)")
    model = model_from_args(args)
    if args.data:
        ds = data_from_args(args, model)  # resized to the model's input, labels mapped onto its classes
        if len(ds) == 0:
            raise XaisecError(f"{ds.name}: no images in split {args.split!r}; check --data and --split")
        ds = ds.sample(args.n, seed=args.seed)
        x, labels, names = ds.float_images(), ds.labels, [f"{i:04d}" for i in range(len(ds))]
    else:
        size = model.input_size
        if size is None:
            if args.image_size is None:
                raise XaisecError(f"{args.model} declares no input size: pass --input-size C,H,W or --image-size S")
            size = (model.in_channels or 3, args.image_size, args.image_size)
        x, labels = _load_files(args.images, size), None
        names = unique_names([Path(p).stem for p in args.images])
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
        k = model.num_classes or int(model(x[:1]).shape[1])
        if not 0 <= int(args.target) < k:
            raise XaisecError(f"--target {args.target} is not a class index of {args.model} (0..{k - 1})")
    interpreter = get_interpreter(args.interpreter, model)
    maps = interpreter(x, target).cpu()
    out = Path(args.out)
    scale = display_scale(x.shape[-1], 128)
    tiles = []
    written: list[str] = []
    for i, name in enumerate(names):
        overlay = heatmap_overlay(x[i].cpu(), maps[i])
        label = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.class_name(int(target[i])))
        fname = f"{name}_{args.interpreter}_{label}.png"
        atomic_write_bytes(out / fname, to_png_bytes(overlay, scale))
        written.append(fname)
        tiles.append(torch.cat([x[i].cpu().expand(3, -1, -1), overlay], dim=2))
    cols = min(4, len(tiles))
    rows = [torch.cat(tiles[r:r + cols] + [torch.ones_like(tiles[0])] * (cols - len(tiles[r:r + cols])), dim=2)
            for r in range(0, len(tiles), cols)]
    grid = torch.cat(rows, dim=1)
    atomic_write_bytes(out / f"grid_{args.interpreter}.png", to_png_bytes(grid, scale))
    written.append(f"grid_{args.interpreter}.png")
    _remove_stale(out, written)
    atomic_write_json(out / MANIFEST, {"files": written, "model": args.model, "interpreter": args.interpreter})
    print(f"{len(names)} {args.interpreter} maps of {args.model} written to {out}/ (grid: grid_{args.interpreter}.png)")
    return 0


def _remove_stale(out, written: list[str]) -> None:
    """Delete the PNGs the previous run into ``out`` wrote (listed in its manifest) that this run did not."""
    import json
    import logging
    from pathlib import Path

    manifest = Path(out) / MANIFEST
    try:
        old = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    stale = [f for f in old if isinstance(f, str) and f not in written and Path(f).name == f and f.endswith(".png")]
    for f in stale:
        (Path(out) / f).unlink(missing_ok=True)
    if stale:
        logging.getLogger("xaisec.explain").info("removed %d image(s) of the previous run in %s", len(stale), out)
