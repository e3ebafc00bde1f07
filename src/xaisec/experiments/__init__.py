"""Experiments: running attacks over data sets, result records, and benchmark grids."""

from xaisec.experiments.records import attack_record, versions
from xaisec.experiments.runner import correctly_classified, run_attack

__all__ = ["attack_record", "correctly_classified", "run_attack", "versions"]
