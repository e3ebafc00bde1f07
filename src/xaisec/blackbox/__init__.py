"""Black-box attacks: the attacker only queries the deployed system through an :class:`Oracle`.

=============== ================================================================================
``Oracle``      batched query access (probabilities or logits + maps) with a budget and per-image counts
``AttaXAI``     NES with Latin hypercube sampling moving the explanation to a target map (Tamam et al. 2023)
``Dombrowski``  the white-box baseline AttaXAI borrows its loss from (Dombrowski et al. 2019)
``MGA``         a surrogate attack refined by a microbial genetic algorithm on the target's probabilities
=============== ================================================================================

Registered as ``xaisec.attacks.get("attaxai" | "dombrowski" | "mga", model, interpreter, ...)``.
"""

from __future__ import annotations

from xaisec.blackbox.oracle import BudgetExceeded, Oracle, abs_sum_maps

__all__ = ["BudgetExceeded", "Oracle", "abs_sum_maps"]
