"""Every fenced block of README.md, docs/ and examples/ is run by a test or marked with the
reason it cannot be (tests/support/docblocks.py); the data blocks are checked here.

- shell blocks: tests/integration/test_docs_shell.py (a live server, a real Prometheus);
- python blocks: tests/integration/test_docs_python.py (a subprocess per document);
- controller manifests and their excerpts: tests/unit/test_manifests.py (the CRDs);
- configs, query excerpts, Kayenta config excerpts, request and answer bodies, CSV: here;
- ``<!-- signature: ... -->`` listings: compared with the code they describe, here.
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import re
import time
from importlib import import_module
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from judge import CanaryConfig
from judge.api.app import create_app
from judge.cli import app as cli_app
from metricsources.files import FrameSource
from tests.support import docblocks
from tests.support.clock import service_settings

ROOT = docblocks.ROOT
ALL = docblocks.all_blocks()


def _unrun(blocks: list[docblocks.Block]) -> list[str]:
    return [f"{b.where} ({b.language or 'no language'}){_parse_error(b)}" for b in blocks
            if b.marker is None and docblocks.runner(b) is None]


def _parse_error(block: docblocks.Block) -> str:
    if block.language not in docblocks.DATA_LANGUAGES:
        return ""
    try:
        docblocks.load_data(block)
    except (ValueError, yaml.YAMLError) as error:  # json.JSONDecodeError is a ValueError
        return f": does not parse: {str(error).splitlines()[0]}"
    return ""


def test_every_block_is_run_by_a_test_or_marked_with_a_reason() -> None:
    assert len(ALL) >= 50
    assert {b.path for b in ALL} >= {"README.md", "docs/service.md", "docs/recipes/flagger.md"}
    unrun = _unrun(list(ALL))
    assert unrun == [], (
        "no test runs these blocks; make them runnable, or put `<!-- not run: <reason> -->` "
        "on the line before the fence:\n" + "\n".join(unrun))


def test_a_new_unmarked_block_is_named_by_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# x\n\n```sh\necho hi\n```\n")
    (tmp_path / "docs" / "new.md").write_text(
        "text\n\n```text\nsomething\n```\n\n<!-- not run: a diagram -->\n```\nA -> B\n```\n")
    found = [b for path in docblocks.documents(tmp_path)
             for b in docblocks.read_blocks(path, tmp_path)]
    assert [(b.where, b.language) for b in found] == [
        ("README.md:3", "sh"), ("docs/new.md:3", "text"), ("docs/new.md:8", "")]
    assert found[2].marker == docblocks.Marker("not run", "a diagram")
    assert _unrun(found) == ["docs/new.md:3 (text)"]
    broken = docblocks.Block("docs/x.md", 5, "json", '{"a": 1,, }}', None)
    assert _unrun([broken])[0].startswith("docs/x.md:5 (json): does not parse: ")


@pytest.mark.parametrize("line", ["<!-- not run -->", "<!-- not run: -->", "<!-- notrun: x -->",
                                  "<!-- signature:   -->"])
def test_a_marker_needs_its_reason(tmp_path: Path, line: str) -> None:
    (tmp_path / "README.md").write_text(f"# x\n\n{line}\n```sh\necho hi\n```\n")
    with pytest.raises(docblocks.MarkerError, match=r"README\.md:3"):
        docblocks.read_blocks(tmp_path / "README.md", tmp_path)


def test_only_the_two_markers_exempt_a_block(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# x\n\n<!-- skip this -->\n```sh\necho hi\n```\n")
    (block,) = docblocks.read_blocks(tmp_path / "README.md", tmp_path)
    assert block.marker is None and docblocks.runner(block) is not None


def test_shell_blocks_follow_the_address_and_token_convention() -> None:
    # One spelling for the service (the harness substitutes the live server's address), and
    # no <placeholder> (bash reads `<x>` as a redirection).
    problems = []
    for block in docblocks.blocks(docblocks.SHELL_LANGUAGES):
        for command in docblocks.commands(block):
            code = command.text.split("#", 1)[0]
            for other in re.findall(r"(?:127\.0\.0\.1|canary-judge[\w.-]*|0\.0\.0\.0):\d+",
                                    code):
                problems.append(f"{block.where}: {other} (use localhost:8080)")
            if re.search(r"<[\w-]+>", code):
                problems.append(f"{block.where}: a <placeholder> (use $ID, $TOKEN, a file name)")
    assert problems == []


def test_the_docs_show_curl_commands_with_tokens_in_headers_and_paths() -> None:
    curls = [c.text for b in docblocks.blocks(docblocks.SHELL_LANGUAGES)
             for c in docblocks.commands(b) if c.text.lstrip().startswith("curl ")]
    assert len(curls) >= 6
    assert any("/t/$TOKEN/" in c for c in curls) and any("Bearer $ADMIN_TOKEN" in c for c in curls)


def test_shell_commands_and_their_shown_output_are_read() -> None:
    block = docblocks.Block("x.md", 1, "sh", (
        "curl -s localhost:8080/a \\\n    -d '{}'\n# {\"verdict\":\"pass\",...}\n"
        "# a comment\ncanary-judge judge --config c.yaml     # exits 2: the canary fails\n"), None)
    first, second = docblocks.commands(block)
    assert (first.line, first.expected_output, first.expected_status) == (
        2, '{"verdict":"pass",...}', 0)
    assert first.text.endswith("-d '{}'")
    assert (second.line, second.expected_output, second.expected_status) == (6, None, 2)
    console = docblocks.Block("x.md", 10, "console", (
        "$ canary-judge config validate my-config.yaml\nOK: 'checkout', ...\n"
        "$ echo \\\n  two\ntwo\n"), None)
    validate, echo = docblocks.commands(console)
    assert (validate.text, validate.line, validate.expected_output) == (
        "canary-judge config validate my-config.yaml", 11, "OK: 'checkout', ...")
    assert (echo.text, echo.line, echo.expected_output) == ("echo \\\n  two", 13, "two")


# --- data blocks ------------------------------------------------------------------------------

def _data_documents(check: str) -> list[tuple[str, Any]]:
    found = []
    for block in docblocks.blocks(docblocks.DATA_LANGUAGES):
        for document in docblocks.load_data(block):
            if docblocks.is_manifest(document) or docblocks.is_manifest_excerpt(document):
                continue  # tests/unit/test_manifests.py
            if _kind(document) == check:
                found.append((block.where, document))
    return found


def _kind(document: Any) -> str:
    if docblocks.is_config(document):
        return "config"
    if isinstance(document, dict) and set(document) <= {"query", "promql"}:
        return "query"
    if isinstance(document, dict) and set(document) == {"judge"}:
        return "kayenta excerpt"
    return "api"


def test_every_data_block_is_parsed_and_checked() -> None:
    kinds = {_kind(document)
             for block in docblocks.blocks(docblocks.DATA_LANGUAGES)
             for document in docblocks.load_data(block)}
    assert kinds == {"config", "query", "kayenta excerpt", "api"}


CONFIGS = _data_documents("config")


@pytest.mark.parametrize(("where", "document"), CONFIGS, ids=[w for w, _ in CONFIGS])
def test_documented_config_is_valid(where: str, document: Any) -> None:
    config = CanaryConfig.from_dict(document)
    assert [m.name for m in config.metrics] == [m["name"] for m in document["metrics"]], where


def test_the_readme_config_judges_counts_as_counts() -> None:
    (readme_config,) = [d for w, d in CONFIGS if w.startswith("README.md")]
    kinds = {m.test.kind for m in CanaryConfig.from_dict(readme_config).metrics}
    assert "rate_ratio" in kinds


QUERIES = _data_documents("query")


@pytest.mark.parametrize(("where", "document"), QUERIES, ids=[w for w, _ in QUERIES])
def test_documented_query_is_valid_in_a_metric(where: str, document: Any) -> None:
    query = document.get("query") or {"type": "prometheus", "promql": document["promql"]}
    config = CanaryConfig.from_dict({"name": "docs", "metrics": [
        {"name": "m", "direction": "increase", "query": query}]})
    assert config.metrics[0].query.type == query["type"], where


KAYENTA_EXCERPTS = _data_documents("kayenta excerpt")


@pytest.mark.parametrize(("where", "document"), KAYENTA_EXCERPTS,
                         ids=[w for w, _ in KAYENTA_EXCERPTS])
def test_documented_kayenta_judge_imports(where: str, document: Any) -> None:
    # The excerpt put into the shipped Kayenta config, which then imports.
    raw = json.loads((ROOT / "examples" / "configs" / "checkout-kayenta.json").read_text())
    raw = {**raw, **copy.deepcopy(document)}
    config = CanaryConfig.from_kayenta(raw)
    assert config.metrics, where


API_BODIES = _data_documents("api")


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app(service_settings()).openapi()


def _strict(schema: Any) -> Any:
    """No ``required`` (the docs abbreviate), no unknown fields in an object with properties
    (answers' models allow them; the docs must not show a field that does not exist)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if k != "required"}
        if (out.get("type") == "object" and "properties" in out
                and "additionalProperties" not in out):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def api_problems(openapi: dict[str, Any], document: Any) -> str | None:
    """Why ``document`` is no request or answer of the API (``None``: it is one)."""
    components = _strict(openapi["components"])
    candidates = [name for name, schema in components["schemas"].items()
                  if set(document) <= set(schema.get("properties", {}))]
    if not candidates:
        return f"no request or answer of the API has all of {sorted(document)}"
    problems = {}
    for name in candidates:
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": components})
        problems[name] = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                          for e in validator.iter_errors(document)]
        if not problems[name]:
            return None
    return str(problems)


@pytest.mark.parametrize(("where", "document"), API_BODIES, ids=[w for w, _ in API_BODIES])
def test_documented_request_or_answer_matches_the_api(
        openapi: dict[str, Any], where: str, document: Any) -> None:
    """A body the docs show is valid against one of the service's request or answer models:
    every field it names exists there, with a value of the right type."""
    problem = api_problems(openapi, document)
    assert problem is None, f"{where}: {problem}"


def test_the_api_check_catches_unknown_fields_and_wrong_types(openapi: dict[str, Any]) -> None:
    answer = {"verdict": "fail", "score": 40.0, "failed_metrics": ["p99 latency"],
              "metrics": [{"name": "p99 latency", "classification": "high", "low": 0.1}]}
    assert api_problems(openapi, answer) is None
    assert api_problems(openapi, {**answer, "scor": 40.0}) is not None
    assert api_problems(openapi, {**answer, "metrics": [{"name": "x", "critcal": True}]})
    assert api_problems(openapi, {**answer, "score": "high"}) is not None


def test_documented_csv_is_a_file_source_table() -> None:
    (block,) = [b for b in docblocks.blocks("csv")]
    table = pd.read_csv(io.StringIO(block.text))
    source = FrameSource(table)
    assert set(table["side"]) == {"baseline", "canary"}
    assert "latency" in table.columns and repr(source)


# --- signature listings -------------------------------------------------------------------------

def _python_signature(block: docblocks.Block) -> None:
    target = block.marker.detail if block.marker else ""
    module, _, name = target.rpartition(".")
    documented = ast_signature(block.text)
    actual = inspect.signature(getattr(import_module(module), name))
    shown = [(p.name, p.kind, p.default) for p in documented.parameters.values()]
    real = [(p.name, p.kind, p.default) for p in actual.parameters.values()]
    assert shown == real, f"{block.where}: {target}{documented} is {target}{actual}"


def ast_signature(text: str) -> inspect.Signature:
    """The signature a ``Name(a, *, b=1)`` listing shows, read as a ``def``."""
    namespace: dict[str, Any] = {}
    listed = text.strip()
    exec(f"def _listed{listed[listed.index('('):]}:\n    pass", {"time": time}, namespace)
    return inspect.signature(namespace["_listed"])


def _cli_synopsis(block: docblocks.Block) -> None:
    runner = CliRunner()
    for line in block.text.splitlines():
        words = line.split()
        assert words[0] == "canary-judge", f"{block.where}: {line}"
        command = [w for w in words[1:] if re.fullmatch(r"[a-z][a-z-]*", w)]
        command = command[:2] if command[:1] == ["config"] else command[:1]
        shown = runner.invoke(cli_app, [*command, "--help"], terminal_width=200)
        assert shown.exit_code == 0, f"{block.where}: canary-judge {' '.join(command)}"
        for option in re.findall(r"--[a-z][a-z-]*", line):
            assert option in shown.output, f"{block.where}: {option} of {' '.join(command)}"
        for choice in re.findall(r"\b\w+(?:\|\w+)+\b", line):
            for value in choice.split("|"):
                assert value in shown.output, f"{block.where}: {value} in {line}"


SIGNATURES = docblocks.signature_blocks()


@pytest.mark.parametrize("block", SIGNATURES, ids=[b.where for b in SIGNATURES])
def test_signature_listing_matches_the_code(block: docblocks.Block) -> None:
    assert block.marker is not None
    if block.marker.detail == "canary-judge":
        _cli_synopsis(block)
    else:
        _python_signature(block)


def test_signature_listings_are_found() -> None:
    assert {b.marker.detail for b in SIGNATURES if b.marker} >= {
        "canary-judge", "metricsources.prometheus.PrometheusSource"}


def test_yaml_with_left_out_lines_and_abbreviated_json_parse() -> None:
    assert docblocks.loads_abbreviated_json(
        '{"a": [1, ...], "b": "x // y...", // why\n ..., "c": {...}}') == {
        "a": [1], "b": "x // y...", "c": {}}
    assert docblocks.loads_abbreviated_json('"judge": {"name": "x"}') == {"judge": {"name": "x"}}
    block = docblocks.Block("x.md", 1, "yaml", "a: 1\n...\nb: 2\n", None)
    assert docblocks.load_data(block) == [{"a": 1, "b": 2}]
