"""Spread and tails: is the canary's upper (or lower) tail heavier than the baseline's?

A canary whose median is unchanged but whose p90/p99 got worse passes a location test.
:func:`tail_test` compares the two sides at given quantiles with the *generalised median test*
(Mood 1950, *Introduction to the Theory of Statistics*, §16.2; Conover, *Practical
Nonparametric Statistics*, 3rd ed., §4.3 "the median test" with the quantile ``q`` in place of
the median): pool both sides, take the pooled ``q``-quantile as a threshold, and compare the
shares of canary and baseline points beyond it. Under "same distribution" the shares are equal;
the two-proportion z statistic has its variance multiplied by each side's AR(1) long-run
variance factor (see :mod:`judge.stats.autocorrelation`), which is conservative for exceedance
indicators, whose serial correlation is weaker than the series' own.

Each side's quantile also gets a distribution-free interval from order statistics
(:func:`quantile_interval`: ``[x_(l), x_(u)]`` with ``l, u`` from Binomial(n_eff, q) quantiles,
David & Nagaraja, *Order Statistics*, 3rd ed., §7.1), computed at the effective sample size and
mapped back to the series' own order statistics, so the report can show "p90 153 ms [141, 170]".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

Tail = Literal["upper", "lower"]

MIN_EXPECTED_EXCEEDANCES = 5.0
"""Below this many pooled exceedances per side (at the effective sample size) the normal
approximation of the test is not trusted and the quantile is not tested (the usual
"expected count >= 5" rule for a 2x2 table, Cochran 1954)."""


@dataclass(frozen=True)
class QuantileInterval:
    """A sample quantile (R-7 / numpy default) and its order-statistic interval."""

    quantile: float
    value: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class TailResult:
    """Generalised median test at quantile ``quantile`` for tail ``tail``.

    ``threshold``: the pooled quantile; ``canary_share``/``baseline_share``: shares of points
    beyond it (above for ``upper``, below for ``lower``); ``difference``: canary share minus
    baseline share with its interval ``low``/``high``; ``p_value``: one-sided, for "the canary
    has more points beyond the threshold"; ``tested``: ``False`` when too few exceedances are
    expected for the test to say anything (then ``p_value`` is 1).
    """

    quantile: float
    tail: Tail
    threshold: float
    canary_exceedances: int
    baseline_exceedances: int
    canary_size: int
    baseline_size: int
    difference: float
    low: float
    high: float
    confidence: float
    p_value: float
    tested: bool
    canary_quantile: QuantileInterval
    baseline_quantile: QuantileInterval

    @property
    def canary_share(self) -> float:
        return self.canary_exceedances / self.canary_size

    @property
    def baseline_share(self) -> float:
        return self.baseline_exceedances / self.baseline_size


def quantile_interval(
    values: npt.ArrayLike, quantile: float, *, confidence: float = 0.95, factor: float = 1.0
) -> QuantileInterval:
    """The ``quantile`` of ``values`` with a distribution-free interval from order statistics.

    With ``m = n / factor`` effective points, ``l = Binomial(m, q).ppf(alpha/2)`` and
    ``u = Binomial(m, q).ppf(1 - alpha/2) + 1`` are order-statistic ranks at the effective size;
    they are scaled back by ``factor`` to ranks of the ``n`` points. A rank outside ``1..n``
    leaves that end of the interval infinite (the data cannot bound it).
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        raise ValueError("values: need at least one point")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if factor < 1.0:
        raise ValueError(f"factor must be >= 1, got {factor}")
    n = x.size
    effective = max(n / factor, 1.0)
    alpha = 1.0 - confidence
    # The binomial needs an integer size: round the effective size down (a wider interval).
    m = max(math.floor(effective), 1)
    lower_rank = float(sps.binom.ppf(alpha / 2.0, m, quantile))
    upper_rank = float(sps.binom.ppf(1.0 - alpha / 2.0, m, quantile)) + 1.0
    scale = n / m
    low_index = math.floor(lower_rank * scale)
    high_index = math.ceil(upper_rank * scale)
    low = float(x[low_index - 1]) if low_index >= 1 else -math.inf
    high = float(x[high_index - 1]) if high_index <= n else math.inf
    return QuantileInterval(
        quantile=quantile,
        value=float(np.quantile(x, quantile)),
        low=low,
        high=high,
        confidence=confidence,
    )


def tail_test(
    canary: npt.ArrayLike,
    baseline: npt.ArrayLike,
    quantile: float,
    *,
    tail: Tail = "upper",
    confidence: float = 0.98,
    factor_canary: float = 1.0,
    factor_baseline: float = 1.0,
) -> TailResult:
    """Does the canary put more of its points beyond the pooled ``quantile`` than the baseline?

    ``tail="upper"`` counts points above the pooled quantile (use q = 0.9, 0.99 for "p90/p99
    got worse" on a metric where increases are bad); ``"lower"`` counts points below it (use
    q = 0.1, 0.01 when decreases are bad). Ties with the threshold do not count as beyond it.

    The statistic is ``(p_c - p_b) / sqrt(p (1 - p) (f_c / n_c + f_b / n_b))`` with the pooled
    share ``p`` and the AR(1) variance factors ``f``; the interval for ``p_c - p_b`` uses the
    unpooled variance with the same factors. When fewer than
    :data:`MIN_EXPECTED_EXCEEDANCES` exceedances are expected on the smaller effective side
    the quantile is reported but not tested (``tested=False``, ``p_value=1``).

    >>> base = [float(v) for v in range(1, 101)]
    >>> canary = [float(v) for v in range(1, 81)] + [200.0] * 20
    >>> r = tail_test(canary, base, 0.9)
    >>> r.canary_exceedances, r.baseline_exceedances, r.p_value < 0.05
    (20, 0, True)
    """
    c = np.asarray(canary, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if c.size == 0 or b.size == 0:
        raise ValueError("canary and baseline need at least one point each")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if tail not in ("upper", "lower"):
        raise ValueError(f"tail must be 'upper' or 'lower', got {tail!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    threshold = float(np.quantile(np.concatenate([c, b]), quantile))
    if tail == "upper":
        a, d = int(np.sum(c > threshold)), int(np.sum(b > threshold))
    else:
        a, d = int(np.sum(c < threshold)), int(np.sum(b < threshold))
    n_c, n_b = c.size, b.size
    share_c, share_b = a / n_c, d / n_b
    pooled = (a + d) / (n_c + n_b)
    difference = share_c - share_b
    expected_share = quantile if tail == "lower" else 1.0 - quantile
    smaller_effective = min(n_c / factor_canary, n_b / factor_baseline)
    tested = expected_share * smaller_effective >= MIN_EXPECTED_EXCEEDANCES
    null_var = pooled * (1.0 - pooled) * (factor_canary / n_c + factor_baseline / n_b)
    if tested and null_var > 0:
        p_value = float(sps.norm.sf(difference / math.sqrt(null_var)))
    else:
        p_value = 1.0
    critical = float(sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    spread = math.sqrt(
        factor_canary * share_c * (1.0 - share_c) / n_c
        + factor_baseline * share_b * (1.0 - share_b) / n_b
    )
    # The unpooled variance is 0 when both shares are 0 or 1; fall back to the null variance.
    spread = spread if spread > 0 else math.sqrt(max(null_var, 0.0))
    return TailResult(
        quantile=quantile,
        tail=tail,
        threshold=threshold,
        canary_exceedances=a,
        baseline_exceedances=d,
        canary_size=n_c,
        baseline_size=n_b,
        difference=difference,
        low=difference - critical * spread,
        high=difference + critical * spread,
        confidence=confidence,
        p_value=p_value,
        tested=tested,
        canary_quantile=quantile_interval(c, quantile, confidence=confidence, factor=factor_canary),
        baseline_quantile=quantile_interval(
            b, quantile, confidence=confidence, factor=factor_baseline
        ),
    )
