"""``OUT/index.html`` of a ``xaisec bench reproduce`` results folder: every paper's tables and plots, one page.

:func:`build_index` finds each paper's folder (``OUT/<paper>/tables.md``; ``adv2`` run alone writes into ``OUT``
itself), renders its ``tables.md`` as HTML tables, draws its plots from ``tables.json`` (PNG files under
``<paper>/plots/``, also embedded in the page, so it is self-contained: no CDN, no script) and links its
``tables.md`` / ``tables.json`` and every cell's JSON record and HTML report that exists.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Plot = tuple[str, bytes]  # (title, PNG bytes)
_BLOB_SUFFIXES = (".card.json", ".detector.json")  # binary outputs' JSON cards next to cell records


# -- Markdown -> HTML ------------------------------------------------------------------------------------------
def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


_ITEM = re.compile(r"^\s*[-*]\s+")
_NUMERIC = re.compile(r"^[-+]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?%?$|^n/a$|^-$", re.IGNORECASE)


def _table(rows: list[str]) -> str:
    head, body = _cells(rows[0]), [r for r in rows[1:] if not re.fullmatch(r"[\s|:-]+", r)]
    parts = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
    for r in body:
        parts.append("<tr>" + "".join(f'<td{" class=num" if _NUMERIC.match(c) else ""}>{_inline(c)}</td>'
                                      for c in _cells(r)) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def markdown_html(md: str, *, heading_offset: int = 2) -> str:
    """The Markdown of a paper's ``tables.md`` (headings, pipe tables, paragraphs, ``-`` lists, `code`,
    **bold**) as HTML; headings move down ``heading_offset`` levels (``#`` becomes ``<h3>``)."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
        elif line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block))
        elif m := re.match(r"^(#{1,6})\s+(.*)$", line):
            level = min(6, len(m.group(1)) + heading_offset)
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif _ITEM.match(line):
            items = []
            while i < len(lines) and (item := _ITEM.match(lines[i])):
                items.append(f"<li>{_inline(lines[i][item.end():])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].lstrip().startswith(("|", "#")):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


# -- plots -----------------------------------------------------------------------------------------------------
def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def bars(groups: dict[str, dict[str, float | None]], *, ylabel: str, percent: bool = False) -> bytes | None:
    """Grouped bars: one group per key of ``groups``, one bar per series within it (None values are gaps).
    None when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xaisec.reports.plots import PALETTE

    groups = {g: {k: v for k, v in s.items() if isinstance(v, (int, float))} for g, s in groups.items()}
    groups = {g: s for g, s in groups.items() if s}
    if not groups:
        return None
    series = list(dict.fromkeys(k for s in groups.values() for k in s))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(4.6, 0.5 * len(groups) * max(1, len(series)) + 1.5), 2.9), dpi=100)
    for j, name in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i, s in enumerate(groups.values()) if name in s]
        ys = [s[name] * (100 if percent else 1) for s in groups.values() if name in s]
        ax.bar(xs, ys, width=width * 0.95, label=name, color=PALETTE[j % len(PALETTE)])
    tilt = len(groups) > 4 or max(len(g) for g in groups) > 12
    ax.set_xticks(range(len(groups)), list(groups), rotation=20 if tilt else 0, ha="right" if tilt else "center",
                  fontsize=8)
    ax.set_ylabel(ylabel + (" (%)" if percent else ""), fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    if len(series) > 1:
        ax.legend(fontsize=7, frameon=False, ncol=min(4, len(series)))
    return _png(fig)


def lines(series: dict[str, tuple[list[float], list[float | None]]], *, xlabel: str, ylabel: str) -> bytes | None:
    """Line plots, one per named (x values, y values) series (None values are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xaisec.reports.plots import PALETTE

    clean = {k: [(x, y) for x, y in zip(xs, ys, strict=True) if isinstance(y, (int, float))]
             for k, (xs, ys) in series.items()}
    clean = {k: v for k, v in clean.items() if v}
    if not clean:
        return None
    fig, ax = plt.subplots(figsize=(4.6, 2.9), dpi=100)
    for i, (label, pts) in enumerate(clean.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=label,
                color=PALETTE[i % len(PALETTE)], linewidth=1.4)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    if len(clean) > 1:
        ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def _adv2_plots(t: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    cells = t.get("cells") or []
    models = list(dict.fromkeys(c["cell"]["model"] for c in cells))
    main = "cifar10_resnet20" if "cifar10_resnet20" in models else (models[0] if models else None)
    sel = [c for c in cells if c["cell"]["model"] == main and c["cell"]["framework"] == "pgd"]

    def by(key: str) -> dict[str, dict[str, float | None]]:
        g: dict[str, dict[str, float | None]] = {}
        for c in sel:
            g.setdefault(c["cell"]["interpreter"], {})[c["cell"]["attack"]] = c["mean"].get(key)
        return g

    return [(f"Attack success rate ({main}, pgd framework)", bars(by("success"), ylabel="ASR", percent=True)),
            (f"IoU of adversarial vs benign map, top 20% ({main})", bars(by("iou"), ylabel="IoU"))]


def _juap_plots(t: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    fr: dict[str, dict[str, float | None]] = {}
    for r in t.get("table_ii_fooling") or []:
        fr.setdefault(r["method"], {})[r["norm"]] = r["fooling_ratio"]
    iou: dict[str, dict[str, float | None]] = {}
    for r in t.get("table_v") or []:
        if r["norm"] == "linf":
            iou.setdefault(r["interpreter"], {})[r["method"]] = r["iou"]
    return [("Fooling ratio (Table II analogue)", bars(fr, ylabel="fooling ratio", percent=True)),
            ("IoU of the perturbed vs benign map, L-inf (Table V analogue)", bars(iou, ylabel="IoU"))]


def _patch_plots(t: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    ok: dict[str, dict[str, float | None]] = {}
    mass: dict[str, dict[str, float | None]] = {}
    for r in t.get("rows") or []:
        ok.setdefault(r["config"], {})[r["model"]] = r.get("success")
        mass.setdefault(r["config"], {})[r["model"]] = r.get("patch_mass")
    return [("Targeted success per configuration", bars(ok, ylabel="success", percent=True)),
            ("Grad-CAM mass on the patch", bars(mass, ylabel="patch mass"))]


def _attaxai_plots(t: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    g: dict[str, dict[str, float | None]] = {}
    for key, r in (t.get("rows") or {}).items():
        attack, _, explainer = key.partition("/")
        g.setdefault(explainer, {})[attack] = r.get("median_ratio")
    return [("Median map-MSE ratio (adversarial / benign distance to the target map; lower is better)",
             bars(g, ylabel="median ratio"))]


def _mga_plots(t: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    g = {sa: {"surrogate": r.get("surrogate_success"), "pure transfer": r.get("transfer_success"),
              "after search": r.get("success")} for sa, r in (t.get("rows") or {}).items() if r.get("n")}
    return [("Untargeted success on the target", bars(g, ylabel="success", percent=True))]


def _defenses_plots(t: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    fs = {f"{r['interpreter']} {r['attack']}" + (f" ad. {r['adaptive']}" if r.get("adaptive") else ""):
          {"attack success": r.get("success"), "joint detection": (r.get("detection") or {}).get("joint")}
          for r in t.get("feature_squeezing") or []}
    acc = (t.get("clean_accuracy") or {}).get("accuracy") or {}
    obl = (t.get("ms_oblivious") or {}).get("success") or {}
    bpda = {r["transform"]: r.get("success") for r in t.get("ms_bpda") or []}
    ms = {spec: {"clean accuracy": acc.get(spec), "oblivious success": obl.get(spec), "BPDA success": bpda.get(spec)}
          for spec in dict.fromkeys([*acc, *obl, *bpda])}
    return [("Feature squeezing: attack success and joint detection rate", bars(fs, ylabel="rate", percent=True)),
            ("Median smoothing / bit squeezing vs AdvEdge", bars(ms, ylabel="rate", percent=True))]


def _robust_plots(t: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    eps = (t.get("settings") or {}).get("eps") or []
    rows = t.get("rows") or {}
    pgd = {m: (list(eps), [r.get(f"pgd_{e}") for e in eps]) for m, r in rows.items()}
    tau = {m: (list(eps[1:]), [r.get(f"tau_{e}") for e in eps[1:]]) for m, r in rows.items()}
    return [("PGD accuracy against eps", lines(pgd, xlabel="eps (/255)", ylabel="accuracy")),
            ("Kendall tau of benign vs attacked CAM", lines(tau, xlabel="eps (/255)", ylabel="tau"))]


PLOTS: dict[str, Callable[[dict[str, Any]], list[tuple[str, bytes | None]]]] = {
    "adv2": _adv2_plots, "juap": _juap_plots, "patch": _patch_plots, "attaxai": _attaxai_plots, "mga": _mga_plots,
    "defenses": _defenses_plots, "robust-training": _robust_plots}


def paper_plots(name: str, tables: dict[str, Any]) -> list[Plot]:
    """The plots of one paper's tables (``tables.json``) as (title, PNG bytes); a plot that cannot be drawn
    from partial tables is left out (with a warning)."""
    try:
        made = PLOTS[name](tables) if name in PLOTS else []
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("index: no plots for %s (%s)", name, exc)
        return []
    return [(title, png) for title, png in made if png]


# -- the page --------------------------------------------------------------------------------------------------
def paper_folders(out: str | Path) -> dict[str, Path]:
    """Each paper with results under ``out``: ``out/<paper>`` holding ``tables.md``, or ``out`` itself for the
    adv2 grid run alone."""
    from xaisec.experiments.papers import PAPERS

    out = Path(out)
    found = {}
    for name in PAPERS:
        if (out / name / "tables.md").exists():
            found[name] = out / name
        elif name == "adv2" and (out / "tables.md").exists():
            found[name] = out
    return found


def _cell_files(folder: Path) -> list[tuple[str, list[Path]]]:
    """(cell key, [its record and report files]) for every cell of the paper that exists."""
    cells = folder / "cells"
    try:
        keys = json.loads((folder / "manifest.json").read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        keys = sorted(p.name[:-5] for p in cells.glob("*.json") if not p.name.endswith(_BLOB_SUFFIXES))
    rows = []
    for key in keys:
        files = [p for p in (cells / f"{key}.json", cells / f"{key}.html") if p.exists()]
        if files:
            rows.append((key, files))
    return rows


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "plot"


def _plot_files(name: str, folder: Path, tables: dict[str, Any]) -> list[tuple[str, Path]]:
    """The paper's plots as PNG files under ``folder/plots`` (title, path), redrawn only when its tables changed
    (``plots/plots.json`` holds the tables' hash and the titles)."""
    import hashlib

    from xaisec.utils.io import atomic_write_bytes, atomic_write_json

    plots = folder / "plots"
    digest = hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()[:16]
    try:
        made = json.loads((plots / "plots.json").read_text())
        if made["tables"] == digest and all((plots / f).exists() for _, f in made["plots"]):
            return [(title, plots / f) for title, f in made["plots"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    files = [(title, atomic_write_bytes(plots / f"{_slug(title)}.png", png))
             for title, png in paper_plots(name, tables)]
    atomic_write_json(plots / "plots.json", {"tables": digest, "plots": [[t, p.name] for t, p in files]})
    return files


def build_index(out: str | Path) -> Path:
    """Write ``out/index.html`` (and each paper's ``plots/*.png``) for every paper found under ``out``."""
    from xaisec.experiments.papers import PAPERS
    from xaisec.reports.html import render

    out = Path(out)
    papers = []
    for name, folder in paper_folders(out).items():
        try:
            tables = json.loads((folder / "tables.json").read_text())
        except (OSError, ValueError) as exc:
            log.warning("index: %s has no readable tables.json (%s)", folder, exc)
            tables = {}
        plots = [{"title": title, "href": path.relative_to(out).as_posix(),
                  "src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")}
                 for title, path in _plot_files(name, folder, tables)]
        rel = folder.relative_to(out).as_posix()
        prefix = "" if rel == "." else rel + "/"
        cells = [{"key": key, "links": [(p.suffix[1:], p.relative_to(out).as_posix()) for p in files]}
                 for key, files in _cell_files(folder)]
        papers.append({"name": name, "about": PAPERS[name][1], "folder": prefix or "./",
                       "tables_md": prefix + "tables.md",
                       "tables_json": prefix + "tables.json" if (folder / "tables.json").exists() else None,
                       "body": markdown_html((folder / "tables.md").read_text()), "plots": plots, "cells": cells})
    return render("papers_index.html", out / "index.html", papers=papers,
                  made=time.strftime("%Y-%m-%d %H:%M:%S"), out=str(out))


__all__ = ["bars", "build_index", "lines", "markdown_html", "paper_folders", "paper_plots"]
