"""Compiled merge counts for large judgments, when numba is installed (the ``fast`` extra).

The batch paths count, for a shift d, how many distinct baseline values lie below
``fl(v - d)`` for every distinct canary value v of a pair (:class:`PairedSamples.count` in
``_selection``, the dense evaluation of R's root search in ``_lockstep``) and list the
differences inside a bracket (``_selection._list_candidates``). In numpy each count is a
``searchsorted``: O(n log m) with a binary search per value, about 35 ns a value on the
development machine, and the selection and the root search need a few dozen of them per pair.
The canary values are sorted and ``fl(v - d)`` is monotone in v, so the positions only move
right: one merge of the two sorted rows gives them all in O(n + m), a few ns a value compiled.
The kernels compute the same integers as the numpy code (the same float subtraction, the same
strict comparison as ``searchsorted(side="left")``), so every result is the same to the bit;
``tests/unit/stats/test_compiled.py`` holds them to the numpy paths. Two more merges serve the
default judge's spread and tail checks (``quantiles._sorted_deviations``, ``_pooled_rows``):
sorted absolute deviations from a sorted row's median, and two sorted rows merged, each
linear where numpy sorts.

Loading costs something (importing numba, then each kernel from its on-disk cache, or compiling
it the first time: about a second). A process therefore loads the kernels only once it has done
enough of this work in numpy to have paid for them (``LOAD_WORK`` comparisons, counted over the
calls of at least ``USE_WORK``: a root search on 200 metrics x 1,440 points makes a few dozen
calls of about 1.7 million each, so it loads them at its third). Small judgments (5 metrics x
30 points: a few hundred comparisons a call) never count, never load numba, and stay in numpy
even where the kernels are loaded, where numpy's fixed costs are small. Without numba, or with
``CANARY_JUDGE_COMPILED=0``, everything runs in numpy as before.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

#: Work (values compared, summed over calls' rows and shifts) done in numpy after which a
#: process loads the kernels: numpy's binary searches over that much take a few hundred
#: milliseconds, more than importing numba and loading the kernels.
LOAD_WORK = 5_000_000
#: Work from which a call uses the kernels, and counts towards LOAD_WORK while they are not
#: loaded (below it numpy's fixed costs are small).
USE_WORK = 20_000

_state: dict[str, Any] = {"kernels": None, "failed": False, "work": 0}


def enabled() -> bool:
    """Whether compiled kernels may be used (numba installed, not switched off)."""
    return os.environ.get("CANARY_JUDGE_COMPILED", "1") != "0" and not _state["failed"]


def loaded() -> bool:
    """Whether this process has loaded the kernels (and uses them, unless switched off)."""
    return _state["kernels"] is not None and enabled()


def kernels(work: int) -> ModuleType | None:
    """The kernels module for a call of ``work`` comparisons, or None to stay in numpy (which
    loads them once the process has done LOAD_WORK in numpy)."""
    if work < USE_WORK or not enabled():
        return None
    present: ModuleType | None = _state["kernels"]
    if present is not None:
        return present
    _state["work"] += work
    if _state["work"] < LOAD_WORK:
        return None
    try:
        from judge.stats import _kernels
    except ImportError:
        # numba is an optional extra: without it the numpy paths are the whole story.
        _state["failed"] = True
        return None
    _state["kernels"] = _kernels
    return _kernels


def load() -> ModuleType | None:
    """Load the kernels now, whatever work this process has done (None without numba or
    switched off)."""
    return kernels(LOAD_WORK)
