"""Input checks shared by the statistics functions.

Every public function validates its arguments in one step up front, with messages that name the
parameter and, for choices, list the allowed values (the scipy.stats style).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import numpy.typing as npt


def as_array(values: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array (NaN allowed, may be empty)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a sequence of numbers") from exc
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional, got shape {array.shape}")
    return array


def as_sample(values: npt.ArrayLike, name: str, *, allow_empty: bool = False) -> np.ndarray:
    """Return ``values`` as a finite 1-D float64 array, or raise ``ValueError`` naming ``name``."""
    array = as_array(values, name)
    if array.size == 0 and not allow_empty:
        raise ValueError(f"`{name}` must contain at least one value, got an empty sample")
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"`{name}` must contain only finite values; "
            "clean NaN first with apply_nan_strategy (infinities are not allowed)"
        )
    return array


def check_choice(value: object, name: str, allowed: Collection[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; else raise ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(choice) for choice in allowed)
        raise ValueError(f"`{name}` must be one of {choices}; got {value!r}")
    return value


def check_open_unit(value: float, name: str) -> float:
    """Return ``value`` as float if 0 < value < 1, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ValueError(f"`{name}` must be a number strictly between 0 and 1; got {value!r}")
    number = float(value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"`{name}` must be strictly between 0 and 1; got {value!r}")
    return number


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool, else raise ``ValueError``."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"`{name}` must be True or False; got {value!r}")
    return bool(value)


def per_row(values: npt.ArrayLike, rows: int) -> npt.NDArray[np.float64]:
    """``np.broadcast_to(np.asarray(values, dtype=np.float64), (rows,))``, but an array that
    already holds one float per row is returned as it is: broadcast_to's Python wrapper costs
    a small judgment several microseconds a call (the same values either way)."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape == (rows,):
        return array
    out: npt.NDArray[np.float64] = np.broadcast_to(array, (rows,))
    return out
