"""The generator's "meaningful" regression sizes are detectable, and its A/A pairs are clean.

Each kind is checked with a reference test that knows the scenario's AR(1) coefficient (from
``meta["phi"]``), at a per-metric level of 0.2% (family-wise 2% over ten metrics):

- shift: Mann-Whitney's normal approximation (tie-corrected variance, Hollander & Wolfe,
  *Nonparametric Statistical Methods*, 3rd ed., §4.1) with its variance inflated by
  ``(1 + phi) / (1 - phi)``, the long-run variance factor of an AR(1) mean (Box, Jenkins &
  Reinsel, *Time Series Analysis*, §2.1.6);
- spread: the same rank test on absolute deviations from each side's median (a rank version
  of Brown & Forsythe, JASA 1974), inflated by ``(1 + phi^2) / (1 - phi^2)``, the factor for
  squared/absolute AR(1) Gaussian deviations;
- tail: Fisher's exact test on the minutes above 1.5x the pooled median;
- errors: the conditional binomial test of the canary's share of all errors against its share
  of all requests (Przyborowski & Wilenski, Biometrika 1940).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from judge.lab.scenarios import (
    DEFAULT_TARGET,
    MEANINGFUL_SIZE,
    Scenario,
    ScenarioKind,
    generate_canary,
)

LEVEL = 0.002
N_SCENARIOS = 200


def _mann_whitney_z(baseline: np.ndarray, canary: np.ndarray) -> float:
    """Standardised U of the canary over the baseline (positive: canary larger)."""
    n_c, n_b = len(canary), len(baseline)
    pooled = np.concatenate([canary, baseline])
    ranks = stats.rankdata(pooled)
    u = ranks[:n_c].sum() - n_c * (n_c + 1) / 2
    _, ties = np.unique(pooled, return_counts=True)
    n = n_c + n_b
    variance = n_c * n_b / 12 * ((n + 1) - (ties**3 - ties).sum() / (n * (n - 1)))
    return float((u - n_c * n_b / 2) / np.sqrt(variance))


def _sides(scenario: Scenario, metric: str) -> tuple[np.ndarray, np.ndarray]:
    return (
        scenario.baseline[metric].dropna().to_numpy(float),
        scenario.canary[metric].dropna().to_numpy(float),
    )


def shift_p(scenario: Scenario, metric: str) -> float:
    baseline, canary = _sides(scenario, metric)
    phi = scenario.meta["phi"]
    z = _mann_whitney_z(baseline, canary) / np.sqrt((1 + phi) / (1 - phi))
    return float(stats.norm.sf(z))


def spread_p(scenario: Scenario, metric: str) -> float:
    baseline, canary = (np.log(side) for side in _sides(scenario, metric))
    phi = scenario.meta["phi"]
    z = _mann_whitney_z(
        np.abs(baseline - np.median(baseline)), np.abs(canary - np.median(canary))
    ) / np.sqrt((1 + phi**2) / (1 - phi**2))
    return float(stats.norm.sf(z))


def tail_p(scenario: Scenario, metric: str) -> float:
    baseline, canary = _sides(scenario, metric)
    threshold = 1.5 * np.median(np.concatenate([baseline, canary]))
    above_b, above_c = int((baseline > threshold).sum()), int((canary > threshold).sum())
    table = [[above_c, len(canary) - above_c], [above_b, len(baseline) - above_b]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def errors_p(scenario: Scenario, metric: str) -> float:
    errors_b, errors_c = int(scenario.baseline[metric].sum()), int(scenario.canary[metric].sum())
    if errors_b + errors_c == 0:
        return 1.0
    requests_b = scenario.baseline["requests"].sum()
    requests_c = scenario.canary["requests"].sum()
    share = requests_c / (requests_b + requests_c)
    return float(
        stats.binomtest(errors_c, errors_b + errors_c, share, alternative="greater").pvalue
    )


REFERENCE: dict[ScenarioKind, Callable[[Scenario, str], float]] = {
    ScenarioKind.SHIFTED_MEAN: shift_p,
    ScenarioKind.WIDER_SPREAD: spread_p,
    ScenarioKind.HEAVIER_TAIL: tail_p,
    ScenarioKind.NEW_ERRORS: errors_p,
}


@pytest.mark.parametrize("kind", list(REFERENCE))
def test_meaningful_size_is_caught_at_least_90_percent(kind: ScenarioKind) -> None:
    target = DEFAULT_TARGET[kind]
    p_values = np.array(
        [REFERENCE[kind](generate_canary(kind, seed=seed), target) for seed in range(N_SCENARIOS)]
    )
    # Measured 0.95-1.0 per kind at these seeds; below 0.9 the size is not "meaningful".
    assert (p_values < LEVEL).mean() >= 0.9


@pytest.mark.parametrize("kind", list(REFERENCE))
def test_half_the_meaningful_size_is_clearly_harder(kind: ScenarioKind) -> None:
    # Guards against sizes so large that any test catches them: halving the regression (for
    # the spread, halving its excess over 1) must lose a good share of the detections.
    target = DEFAULT_TARGET[kind]
    size = MEANINGFUL_SIZE[kind]
    half = 1 + (size - 1) / 2 if kind is ScenarioKind.WIDER_SPREAD else size / 2
    full = np.array(
        [REFERENCE[kind](generate_canary(kind, seed=s), target) for s in range(N_SCENARIOS)]
    )
    halved = np.array(
        [
            REFERENCE[kind](generate_canary(kind, seed=s, size=half), target)
            for s in range(N_SCENARIOS)
        ]
    )
    assert (halved < LEVEL).mean() < (full < LEVEL).mean() - 0.1


@pytest.mark.parametrize("kind", list(REFERENCE))
def test_aa_pairs_trigger_the_reference_tests_at_most_at_their_level(kind: ScenarioKind) -> None:
    # On A/A pairs with the strongest autocorrelation the generator draws, each reference test
    # stays near its nominal level: the generator puts no difference between the sides.
    target = DEFAULT_TARGET[kind]
    p_values = np.array(
        [
            REFERENCE[kind](generate_canary("aa", seed=10_000 + seed, phi=0.7), target)
            for seed in range(N_SCENARIOS)
        ]
    )
    # Binomial(200, 0.002) exceeds 3 with probability < 0.1%.
    assert (p_values < LEVEL).sum() <= 3
    # And at a loose 10% level the rate is near 10% (not systematically one-sided).
    assert (p_values < 0.10).mean() < 0.18
