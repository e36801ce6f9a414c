"""Finding what a test needs that is not in the repository — real components (Rscript,
prometheus) and the shared data beside the checkout (../shared/data: Kayenta's own configs and
recorded answers, real series): skip locally, FAIL in CI (``CI=true``), so a CI machine
without them cannot pass by skipping."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def missing(message: str) -> NoReturn:
    """``pytest.fail`` when ``CI=true``, else ``pytest.skip``."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_binary(name: str) -> str:
    """The path of ``name`` on PATH (see module doc)."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name!r} is not installed (scripts/setup installs it)")
    return path


def require_shared(name: str) -> Path:
    """``../shared/data/<name>`` beside the checkout (see module doc)."""
    path = SHARED_DATA / name
    if not path.exists():
        missing(f"{path} is missing: the shared data (../shared/data/{name}) must sit beside "
                "the checkout")
    return path


def require_root(reason: str) -> None:
    """Running as root (the test machines run as root). Not: ``pytest.fail`` when
    ``CI=true``, else skip, giving ``reason``."""
    if os.geteuid() != 0:
        message = f"needs root: {reason}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
