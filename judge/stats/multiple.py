"""Many metrics at once: keep the chance that *some* metric fails by luck under a level.

With ``m`` metrics each tested at level ``alpha`` the chance that at least one fails on an A/A
canary is up to ``m * alpha`` (about ``1 - (1 - alpha)^m`` when independent: 18% for ten
metrics at 2%). Two classical corrections control this family-wise error rate (FWER) at
``level`` without assumptions on how the metrics depend on each other:

- **Bonferroni**: reject metric ``i`` when ``m * p_i <= level``.
- **Holm** (1979, "A simple sequentially rejective multiple test procedure", Scand. J.
  Statist. 6, 65-70): sort the p-values, reject the ``k``-th smallest while
  ``p_(k) <= level / (m - k + 1)`` and stop at the first that is not. Uniformly more powerful
  than Bonferroni with the same guarantee.

Adjusted p-values follow R's ``p.adjust`` (``method = "holm"`` / ``"bonferroni"``): a metric
fails when its adjusted p-value is at most ``level``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class Correction(StrEnum):
    """How p-values of several metrics are corrected (``none``: each metric alone)."""

    HOLM = "holm"
    BONFERRONI = "bonferroni"
    NONE = "none"


@dataclass(frozen=True)
class CorrectionResult:
    """Adjusted p-values (same order as the input) and which of them are at most ``level``."""

    method: Correction
    level: float
    adjusted: tuple[float, ...]
    rejected: tuple[bool, ...]

    @property
    def family_size(self) -> int:
        return len(self.adjusted)


def adjust_p_values(p_values: Sequence[float], method: Correction | str) -> tuple[float, ...]:
    """Adjusted p-values, as R's ``p.adjust(p, method)`` for ``holm``, ``bonferroni``,
    ``none``.

    >>> adjust_p_values([0.01, 0.04, 0.03], "holm")
    (0.03, 0.06, 0.06)
    """
    try:
        method = Correction(method)
    except ValueError:
        allowed = ", ".join(c.value for c in Correction)
        raise ValueError(f"method must be one of {allowed}, got {method!r}") from None
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("p_values must be a flat sequence")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p_values must be in [0, 1]")
    m = p.size
    if m == 0 or method is Correction.NONE:
        return tuple(float(v) for v in p)
    if method is Correction.BONFERRONI:
        return tuple(float(v) for v in np.minimum(1.0, m * p))
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    # Holm's adjusted p-value is the running maximum of (m - k + 1) p_(k), capped at 1.
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return tuple(float(v) for v in adjusted)


def correct(
    p_values: Sequence[float], *, method: Correction | str = Correction.HOLM, level: float
) -> CorrectionResult:
    """Apply a family-wise correction at ``level`` (0 < level < 1)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    adjusted = adjust_p_values(p_values, method)
    return CorrectionResult(
        method=Correction(method),
        level=level,
        adjusted=adjusted,
        rejected=tuple(a <= level for a in adjusted),
    )
