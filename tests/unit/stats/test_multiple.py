"""Holm and Bonferroni, as R's p.adjust."""

from __future__ import annotations

import pytest

from judge.stats.multiple import adjust_p_values, correct

# R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.2), "holm") -> 0.05 0.08 0.09 0.09 0.20
#    p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.2), "bonferroni") -> 0.05 0.10 0.15 0.20 1.00
P = [0.01, 0.02, 0.03, 0.04, 0.2]


def test_holm_matches_r() -> None:
    assert adjust_p_values(P, "holm") == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.2])


def test_bonferroni_matches_r() -> None:
    assert adjust_p_values(P, "bonferroni") == pytest.approx([0.05, 0.1, 0.15, 0.2, 1.0])


def test_holm_rejects_at_least_what_bonferroni_rejects() -> None:
    p = [0.001, 0.004, 0.006, 0.3]
    holm = correct(p, method="holm", level=0.02).rejected
    bonf = correct(p, method="bonferroni", level=0.02).rejected
    assert all(h or not b for h, b in zip(holm, bonf, strict=True))
    assert holm == (True, True, True, False) and bonf == (True, True, False, False)


def test_bad_method_named() -> None:
    with pytest.raises(ValueError, match="holm"):
        adjust_p_values([0.1], "sidak")
