"""(canary, baseline) pairs of every kind the Hodges-Lehmann searches must handle, for the
tests of ``judge.stats._lockstep`` and ``judge.stats._selection``.

Six kinds in turn: continuous, rounded lognormal (ties across the samples), Poisson counts
(heavy ties), three-valued counts against a two-valued baseline, separated samples (the limits
stop at an end of the search interval) and a constant canary. Sizes are drawn from
``[2, largest)`` per side, so pairs of one batch have different sizes (padding).
"""

from __future__ import annotations

import numpy as np

from judge.stats._selection import PairedSamples


def mixed_pairs(
    seed: int, count: int, largest: int, lognormal_sigma: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` pairs of the six kinds in turn, reproducible from ``seed``."""
    generator = np.random.default_rng(seed)
    pairs = []
    for index in range(count):
        n, m = (int(size) for size in generator.integers(2, largest, size=2))
        kind = index % 6
        if kind == 0:
            canary, baseline = generator.normal(0.2, 1, n), generator.normal(0, 1, m)
        elif kind == 1:
            canary = np.round(generator.lognormal(3, lognormal_sigma, n), 1)
            baseline = np.round(generator.lognormal(3.05, lognormal_sigma, m), 1)
        elif kind == 2:
            canary = generator.poisson(2.0, n).astype(float)
            baseline = generator.poisson(2.5, m).astype(float)
        elif kind == 3:
            canary = generator.integers(0, 3, n).astype(float)
            baseline = np.where(np.arange(m) < m // 2, 1.0, 0.0)
        elif kind == 4:
            canary, baseline = generator.normal(100, 1, n), generator.normal(0, 1, m)
        else:
            canary = np.full(n, 3.0)
            baseline = np.round(generator.normal(3, 1, m), 2)
        pairs.append((canary, baseline))
    return pairs


def paired_samples(pairs: list[tuple[np.ndarray, np.ndarray]]) -> PairedSamples:
    """``pairs`` as the searches take them: each side sorted, padded with +inf to the longest
    side of the batch."""
    n = np.array([canary.size for canary, _ in pairs])
    m = np.array([baseline.size for _, baseline in pairs])
    canaries = np.full((len(pairs), int(n.max())), np.inf)
    baselines = np.full((len(pairs), int(m.max())), np.inf)
    for row, (canary, baseline) in enumerate(pairs):
        canaries[row, : canary.size] = np.sort(canary)
        baselines[row, : baseline.size] = np.sort(baseline)
    return PairedSamples(canaries, n, baselines, m)
