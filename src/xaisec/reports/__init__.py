"""Reports: self-contained HTML pages (images embedded) that people read instead of JSON."""

from xaisec.reports.images import heatmap_overlay, to_data_uri, to_png_bytes

__all__ = ["heatmap_overlay", "to_data_uri", "to_png_bytes"]
