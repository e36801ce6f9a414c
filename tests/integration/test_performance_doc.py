"""docs/performance.md: every benchmark its table names runs, at the reduced size its smoke
block shows, and prints the figures the table quotes.

The block is read from the document and each line run as written (the scripts' ``--quick``
options: seconds, not minutes). Timings are not asserted (a shared machine would make that
flaky); what is asserted is that each run ends well and prints the line its figure comes from.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.requires import require_binary

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "performance.md"

PRINTS = {
    "bench_service.py": ["ratio POST /v1/judge / ceiling:", "/healthz p99 under load",
                         "service CPU per judged request:"],
    "bench_fetch.py": ["ratio end to end / (judgment + 3 x slowest query + 100 ms",
                       "CPU per analysis: service"],
    "bench_small.py": ["5 metrics x 30 (default mode)", "import judge"],
    "bench_poll.py": ["10th poll ms", "A/A (no shift)"],
    "bench_batch.py": ["kayenta-mode judgment / sort floor:",
                       "peak memory of the whole default-mode judgment:"],
}
"""What each script must print: the lines the document's figures come from."""


def _smoke_commands() -> list[str]:
    text = DOCUMENT.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, "docs/performance.md has one sh block: the smoke run"
    return [line.strip() for line in blocks[0].splitlines() if line.strip()]


def _table_scripts() -> set[str]:
    rows = [line for line in DOCUMENT.read_text().splitlines() if line.startswith("| ")]
    return set(re.findall(r"benchmarks/(bench_\w+\.py)", "\n".join(rows)))


def test_every_benchmark_of_the_table_has_a_smoke_command() -> None:
    smoke = {re.search(r"benchmarks/(bench_\w+\.py)", line).group(1)  # type: ignore[union-attr]
             for line in _smoke_commands()}
    assert _table_scripts() == smoke == set(PRINTS)


@pytest.mark.parametrize("command", _smoke_commands())
def test_smoke_command_runs_and_prints_its_figures(command: str) -> None:
    arguments = shlex.split(command)
    assert arguments[0] == ".venv/bin/python", command
    script = Path(arguments[1]).name
    if script == "bench_fetch.py":  # a real Prometheus: skipped without it, failed in CI
        require_binary("prometheus")
        require_binary("promtool")
    done = subprocess.run([sys.executable, *arguments[1:]], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for expected in PRINTS[script]:
        assert expected in done.stdout, (expected, done.stdout)
    # Every figure line carries numbers.
    assert re.search(r"\d+\.\d+", done.stdout)
