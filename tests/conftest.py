"""Suite-wide settings: nothing depends on luck.

Hypothesis draws its examples from a fixed seed (``derandomize``) with no per-example deadline:
a property test gives the same verdict on every run, and a loaded shared machine cannot turn a
slow example into a failure. (The service's clock is pinned by ``tests.support.clock``.)
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("pinned", derandomize=True, deadline=None, database=None)
settings.load_profile("pinned")
