"""Argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse


def parse_eps(text: str) -> float:
    """'8/255', '0.031' or '8' (read as 8/255 when > 1) -> a float budget in [0, 1] units."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
            if value > 1:
                value /= 255
    except (ValueError, ZeroDivisionError) as exc:
        raise argparse.ArgumentTypeError(f"not a budget: {text!r} (use e.g. 8/255 or 0.031)") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"the budget must be >= 0, got {text}")
    return value
