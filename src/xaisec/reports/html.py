"""Rendering report templates (Jinja2, auto-escaped) and writing them atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from xaisec.utils.io import atomic_write_text

_ENV = Environment(loader=PackageLoader("xaisec.reports", "templates"), autoescape=select_autoescape(["html"]))


def render(template: str, path: str | Path, **context: Any) -> Path:
    """Render ``templates/<template>`` with ``context`` into ``path`` (atomic write)."""
    return atomic_write_text(path, _ENV.get_template(template).render(**context))
