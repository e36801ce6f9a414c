"""The report page from the command line: ``canary-judge report ID --html FILE`` (an analysis
or run the service stored) and ``canary-judge judge ... --html FILE`` (files), each one
self-contained HTML file with the plots drawn in. The arguments are the ones the README and
docs/service.md show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from judge.api.app import create_app
from judge.api.settings import Settings
from judge.cli import EXIT_BAD_INPUT, app

ROOT = Path(__file__).resolve().parents[2]
MIXED = yaml.safe_load((ROOT / "tests" / "fixtures" / "configs" / "report-mixed.yaml").read_text())
WINDOW = {"start": "2026-12-01T10:00:00Z", "end": "2026-12-01T11:00:00Z"}
RUNNER = CliRunner()


def _self_contained(html: str) -> None:
    """Nothing to fetch: no images, stylesheets or scripts from anywhere."""
    assert "<img" not in html and "<link" not in html and "<script" not in html
    assert not re.search(r'(src|href)="https?://', html)


def test_judge_writes_the_report_page_of_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # As the README shows it (from the repository's root, files under examples/).
    args = ["judge", "--config", str(ROOT / "examples/demo-config.yaml"),
            "--baseline", str(ROOT / "examples/baseline.csv"),
            "--canary", str(ROOT / "examples/canary.csv"), "--html", "report.html"]
    result = RUNNER.invoke(app, args)
    assert result.exit_code in (0, 1, 2), result.output
    html = (tmp_path / "report.html").read_text()
    verdict = re.search(r'data-verdict="(\w+)"', html)
    assert verdict is not None
    assert result.stdout.startswith(verdict.group(1).upper())
    metrics = re.findall(r'<tr class="metric-row', html)
    assert metrics and html.count("<svg") == len(metrics)
    _self_contained(html)


def test_report_writes_a_stored_analysis_page_with_the_failing_metric_first(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path / 'canary-judge.db'}"
    with TestClient(create_app(Settings(database_url=database, log_json=False))) as client:
        answer = client.post("/argo/v1/judge", json={
            "config": MIXED, "baseline": "stable", "canary": "canary-bad", **WINDOW,
        }).json()
        for minutes in ("10:30", "11:00"):
            client.post("/argo/v1/judge", json={
                "config": "demo", "baseline": "stable", "canary": "canary-bad",
                "run_id": "cli/run", "start": WINDOW["start"], "end": f"2026-12-01T{minutes}Z",
            })
    page = tmp_path / "report.html"
    result = RUNNER.invoke(app, ["report", answer["analysis_id"], "--html", str(page),
                                 "--database-url", database])
    assert result.exit_code == 2, result.output  # fail, as `judge` exits
    assert result.stdout.startswith(f"report-mixed: analysis {answer['analysis_id']}: FAIL")
    html = page.read_text()
    assert re.findall(r'data-metric="([^"]*)" data-classification', html)[0] == "errors"
    assert html.count("<svg") == 4
    _self_contained(html)

    # A sequential run, by its id; its page carries the polls and the evidence.
    run_page = tmp_path / "run.html"
    result = RUNNER.invoke(app, ["report", "cli/run", "--html", str(run_page),
                                 "--database-url", database])
    assert result.exit_code in (0, 1, 2), result.output
    html = run_page.read_text()
    assert len(re.findall(r"<tr><td>\d+</td>", html)) == 2
    # matplotlib keeps each drawn text in an (escaped) comment next to its paths.
    assert html.count("evidence over the polls") == html.count("<svg") > 0

    unknown = RUNNER.invoke(app, ["report", "no-such-id", "--database-url", database])
    assert unknown.exit_code == EXIT_BAD_INPUT
    assert "no analysis or sequential run" in unknown.stderr
