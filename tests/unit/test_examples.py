"""Every file under examples/ is run or validated, and a new file is not left out:

- canary configs: ``canary-judge config validate`` (the command README gives) accepts them;
- the settings file: the service's settings read it (tests/unit/test_api_examples.py checks
  what it configures);
- controller manifests: tests/unit/test_manifests.py (the CRDs) and test_api_examples.py (the
  requests they make the controllers send);
- the CSV pair: ``canary-judge judge`` with examples/demo-config.yaml gives the verdict and exit
  code that config's comment announces;
- Markdown: its fenced blocks are the docs' (tests/support/docblocks.py).

The commands the examples' comments give (``canary-judge ...``) run as written, from the
repository's root.
"""

from __future__ import annotations

import os
import re
import shlex

import pytest
import yaml
from typer.testing import CliRunner

from judge.api.settings import Settings
from judge.cli import app as cli_app
from tests.support import docblocks

ROOT = docblocks.ROOT
EXAMPLES = ROOT / "examples"
FILES = sorted(str(p.relative_to(ROOT)) for p in EXAMPLES.rglob("*") if p.is_file())


def _kind(name: str) -> str:
    path = ROOT / name
    if path.suffix == ".md":
        return "markdown"
    if path.suffix == ".csv":
        return "data"
    if path.name == "settings.yaml":
        return "settings"
    if path.suffix in (".yaml", ".yml", ".json"):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        if documents and all(docblocks.is_manifest(d) for d in documents):
            return "manifest"
        if len(documents) == 1 and isinstance(documents[0], dict) and (
                "metrics" in documents[0]):
            return "config"
    return "unknown"


CONFIGS = [name for name in FILES if _kind(name) == "config"]


def test_every_example_is_checked() -> None:
    kinds = {name: _kind(name) for name in FILES}
    assert [name for name, kind in kinds.items() if kind == "unknown"] == [], (
        "a file under examples/ that no test checks: give it a check in this module")
    assert set(kinds.values()) >= {"config", "settings", "manifest", "data"}


@pytest.mark.parametrize("name", CONFIGS)
def test_example_config_validates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    done = CliRunner().invoke(cli_app, ["config", "validate", name])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("OK: "), done.output


def test_example_settings_file_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("CANARY_JUDGE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CANARY_JUDGE_SETTINGS_FILE", str(EXAMPLES / "settings.yaml"))
    settings = Settings()
    assert settings.database_url.startswith("sqlite:///")
    assert settings.default_source_name() == "prometheus"


def _commented_commands() -> list[tuple[str, list[str]]]:
    """``canary-judge ...`` commands in the examples' comments (continuation lines joined)."""
    found = []
    for name in FILES:
        text = (ROOT / name).read_text()
        comments = [re.sub(r"^#\s?", "", line) for line in text.splitlines()
                    if line.startswith("#")]
        joined = re.sub(r"\\\n\s*", " ", "\n".join(comments))
        for match in re.finditer(r"(?:^|\s)(canary-judge (?:judge|config) [^`\n]*)", joined):
            found.append((name, shlex.split(match.group(1))[1:]))
    return found


COMMANDS = _commented_commands()


def test_the_examples_give_commands() -> None:
    assert any(args[0] == "judge" for _, args in COMMANDS)


@pytest.mark.parametrize(("name", "args"), COMMANDS,
                         ids=[f"{n}:{' '.join(a[:2])}" for n, a in COMMANDS])
def test_commented_command_runs(name: str, args: list[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    done = CliRunner().invoke(cli_app, args, terminal_width=200)
    if args[0] == "judge" and name == "examples/demo-config.yaml":
        # Its comment: the canary's p99 latency is ~25% higher, "fail" (exit code 2).
        assert done.exit_code == 2, done.output
        assert "fail" in done.output and "p99_latency_ms" in done.output
    else:
        assert done.exit_code == 0, done.output


def test_the_example_data_is_what_the_demo_config_reads() -> None:
    config = yaml.safe_load((EXAMPLES / "demo-config.yaml").read_text())
    for side in ("baseline.csv", "canary.csv"):
        header = (EXAMPLES / side).read_text().splitlines()[0].split(",")
        assert header[0] == "time"
        assert {m["name"] for m in config["metrics"]} <= set(header[1:])
