"""Finding real components (Rscript, prometheus) a test needs: skip locally, fail in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str) -> str:
    """The path of ``name`` on PATH. Missing: ``pytest.fail`` when ``CI=true``, else skip."""
    path = shutil.which(name)
    if path is None:
        message = f"{name!r} is not installed (scripts/setup installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_root(reason: str) -> None:
    """Running as root (the test machines run as root). Not: ``pytest.fail`` when
    ``CI=true``, else skip, giving ``reason``."""
    if os.geteuid() != 0:
        message = f"needs root: {reason}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
