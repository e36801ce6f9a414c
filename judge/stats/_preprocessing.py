"""Preprocessing of a metric's values before the test: NaN handling and IQR outlier removal.

Both follow Kayenta's NetflixACAJudge (``judge/preprocessing/Transforms.scala`` and
``judge/detectors/IQRDetector.scala`` in spinnaker/kayenta), which the ``kayenta`` compatibility
mode must reproduce.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from judge.stats._validation import as_array, check_bool, check_choice

NanStrategy = Literal["remove", "replace"]
NAN_STRATEGIES: tuple[str, ...] = ("remove", "replace")

#: Kayenta's judge runs the IQR detector with factor 3 and ``reduceSensitivity = true``.
DEFAULT_IQR_FACTOR = 3.0


def apply_nan_strategy(values: npt.ArrayLike, strategy: NanStrategy) -> tuple[np.ndarray, int]:
    """Remove NaN values or replace them with 0, as Kayenta's ``removeNaNs``/``replaceNaNs``.

    Args:
        values: the metric's values; may contain NaN, may be empty.
        strategy: ``"remove"`` drops NaN values, ``"replace"`` turns each into 0.0.

    Returns:
        ``(cleaned, nan_count)``: a new float64 array and how many NaN values were seen.
        Infinities are not NaN and pass through unchanged (as in Kayenta).

    Raises:
        ValueError: for an unknown ``strategy`` or values that are not a 1-D sequence of numbers.

    Example:
        >>> apply_nan_strategy([1.0, float("nan"), 3.0], "replace")
        (array([1., 0., 3.]), 1)
    """
    array = as_array(values, "values")
    strategy_checked = check_choice(strategy, "strategy", NAN_STRATEGIES)
    missing = np.isnan(array)
    nan_count = int(missing.sum())
    if strategy_checked == "remove":
        return array[~missing].copy(), nan_count
    return np.where(missing, 0.0, array), nan_count


def remove_outliers_iqr(
    values: npt.ArrayLike,
    factor: float = DEFAULT_IQR_FACTOR,
    *,
    reduce_sensitivity: bool = True,
) -> np.ndarray:
    """Drop values outside Kayenta's widened Tukey fences.

    The fences are ``min(P1, Q1 - factor * IQR)`` and ``max(P99, Q3 + factor * IQR)`` with
    percentiles by Hyndman & Fan's definition 7 (R's default, numpy's ``"linear"``, Kayenta's
    ``DescriptiveStatistics.percentile``): Tukey's test (Tukey 1977, *Exploratory Data
    Analysis*) made less sensitive by never cutting inside the 1st/99th percentile, as Kayenta's
    ``IQRDetector(factor, reduceSensitivity = true)`` which its judge uses. Values equal to a
    fence are kept.

    Args:
        values: finite values (NaN must be handled first); may be empty.
        factor: multiple of the interquartile range, > 0 (Kayenta's judge uses 3).
        reduce_sensitivity: widen the fences to the 1st/99th percentiles (Kayenta's judge);
            ``False`` gives Tukey's plain fences ``Q1 - factor * IQR``, ``Q3 + factor * IQR``.

    Returns:
        The kept values, in their original order (a new array).

    Raises:
        ValueError: when ``factor`` is not positive or ``values`` contain NaN.

    Example:
        >>> float(remove_outliers_iqr([1.0, 2.0, 3.0, 4.0, 1000.0] * 20 + [1e5], factor=3.0).max())
        1000.0
    """
    array = as_array(values, "values")
    if isinstance(factor, bool) or not isinstance(factor, int | float | np.floating):
        raise ValueError(f"`factor` must be a positive number; got {factor!r}")
    if not factor > 0.0:
        raise ValueError(f"`factor` must be greater than zero; got {factor!r}")
    if np.isnan(array).any():
        raise ValueError("`values` must not contain NaN; apply a NaN strategy first")
    reduce_sensitivity = check_bool(reduce_sensitivity, "reduce_sensitivity")
    if array.size == 0:
        return array.copy()
    p01, q1, q3, p99 = np.percentile(array, [1.0, 25.0, 75.0, 99.0], method="linear")
    spread = q3 - q1
    lower_fence = q1 - factor * spread
    upper_fence = q3 + factor * spread
    if reduce_sensitivity:
        lower_fence = min(p01, lower_fence)
        upper_fence = max(p99, upper_fence)
    keep = (array >= lower_fence) & (array <= upper_fence)
    kept: np.ndarray = array[keep]
    return kept.copy()
