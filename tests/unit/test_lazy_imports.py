"""Heavy libraries are imported where they are used, not with the package (issue 18).

``import judge`` and the ``canary-judge`` command start fast because the package re-exports
its public names lazily (PEP 562) and the CLI imports pandas, pydantic's models and the judges
inside the commands that need them. These tests pin that architecture by the modules a fresh
interpreter has loaded, not by timings (a loaded machine would make those flaky).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import judge

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "scipy", "matplotlib", "httpx", "fastapi", "sqlalchemy", "numba")


def _loaded_after(code: str) -> set[str]:
    """Top-level names of the modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT,
        timeout=120,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_judge_loads_no_heavy_library() -> None:
    loaded = _loaded_after("import judge")
    assert not {name for name in loaded if name.split(".")[0] in (*HEAVY, "numpy")}
    assert "judge.judges" not in loaded


def test_cli_loads_no_numerical_library_nor_the_judges() -> None:
    loaded = _loaded_after("import judge.cli")
    assert not {name for name in loaded if name.split(".")[0] in (*HEAVY, "numpy")}
    assert not {name for name in loaded if name.startswith(("judge.judges", "judge.config"))}


def test_a_small_judgment_loads_no_plotting_nor_http_client() -> None:
    loaded = _loaded_after(
        "import judge\n"
        "config = judge.CanaryConfig.from_dict({'name': 'x', 'metrics': [{'name': 'm'}]})\n"
        "report = judge.judge_series(config, {'m': ([1.0, 2.0, 3.0] * 10, [2.0, 3.0, 4.0] * 10)})\n"
        "assert report.verdict is not None"
    )
    assert "judge.judges" in loaded  # the judgment did run
    # numba (the fast extra) only for calls large enough to pay for it (judge.stats._compiled).
    assert not {name for name in loaded
                if name.split(".")[0] in ("matplotlib", "httpx", "numba")}


def test_public_names_resolve_to_their_modules() -> None:
    from judge.config import CanaryConfig
    from judge.judging import judge as judge_function

    assert judge.judge is judge_function
    assert judge.CanaryConfig is CanaryConfig
    assert set(judge.__all__) <= set(dir(judge))
    for name in judge.__all__:
        assert getattr(judge, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        _ = judge.not_a_name
