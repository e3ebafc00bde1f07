"""Small shared helpers: seeding, atomic file writes, input validation, devices."""

from xaisec.utils.checks import XaisecError, check_images, check_targets
from xaisec.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from xaisec.utils.seed import seed_everything

__all__ = [
    "XaisecError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_images",
    "check_targets",
    "seed_everything",
]
