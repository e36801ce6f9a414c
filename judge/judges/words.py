"""Numbers in the sentences judges write (reasons are read by people at 3 a.m.)."""

from __future__ import annotations

import math

__all__ = ["figure", "number", "percent"]


def number(value: float, *, signed: bool = False, name_infinities: bool = False) -> str:
    """4 significant digits, a sign when asked; NaN is "n/a", and so are infinities unless
    ``name_infinities`` (then "inf" / "-inf")."""
    if not math.isfinite(value):
        if name_infinities and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return "n/a"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def percent(share: float) -> str:
    """A share as a percentage with 3 significant digits: 0.0123 -> "1.23%"."""
    return f"{share * 100:.3g}%"


def figure(value: float, *, signed: bool = False) -> str:
    """:func:`number` that names infinities ("inf"), as the default judge's reasons do (a rate
    ratio over zero baseline events is infinite, and saying so is the point)."""
    return number(value, signed=signed, name_infinities=True)
