"""The README stays true: its Argo snippet has both conditions, its files exist, and CI runs
exactly the test command it gives. (Its blocks are run or validated with the docs':
tests/unit/test_docs_blocks.py, tests/integration/test_docs_shell.py, test_docs_python.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_argo_snippet_is_valid_yaml_with_both_conditions() -> None:
    snippets = [yaml.safe_load(b) for b in _blocks("yaml") if b.startswith("metrics:")]
    assert snippets
    metric = snippets[0]["metrics"][0]
    assert metric["successCondition"] == 'result.verdict == "pass"'
    assert metric["provider"]["web"]["url"].endswith("/argo/v1/judge")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert "scripts/test\n" in README and "scripts/serve\n" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec scripts/test$", ci, flags=re.MULTILINE)


def test_linked_files_exist() -> None:
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" in link:
            continue
        assert (ROOT / link).exists(), link
    for path in re.findall(r"(examples/[\w./-]+\.(?:yaml|csv))", README):
        assert (ROOT / path).exists(), path
