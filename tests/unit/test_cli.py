"""The ``canary-judge`` command (typer's CliRunner, plus the installed console script once)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from judge import CanaryConfig
from judge.cli import EXIT_BAD_INPUT, app

FIXTURES = Path(__file__).parents[1] / "fixtures"
CHECKOUT = FIXTURES / "configs" / "checkout.yaml"
KAYENTA_MODE = FIXTURES / "configs" / "kayenta-mode.yaml"
RUNNER = CliRunner()


def write_data(directory: Path, shift: float = 0.0) -> tuple[Path, Path]:
    """Baseline and canary CSVs; the canary is the baseline with ``shift`` added to latency
    (and its rows shuffled), so only latency can move."""
    rng = np.random.default_rng(11)
    baseline = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-11-28", periods=30, freq="1min"),
            "latency_p99_ms": rng.normal(100, 5, 30),
            "error rate": rng.uniform(0, 0.01, 30),
            "requests": rng.normal(1000, 20, 30),
            "gc pauses": rng.normal(5, 1, 30),
            "cpu": rng.normal(0.5, 0.02, 30),
        }
    )
    canary = baseline.sample(frac=1.0, random_state=3).reset_index(drop=True)
    canary["timestamp"] = baseline["timestamp"]
    canary["latency_p99_ms"] += shift
    baseline_path, canary_path = directory / "baseline.csv", directory / "canary.csv"
    baseline.to_csv(baseline_path, index=False)
    canary.to_csv(canary_path, index=False)
    return baseline_path, canary_path


def _file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def run(*args: str | Path) -> tuple[int, str, str]:
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_pass_exits_0_with_a_table(tmp_path: Path) -> None:
    baseline, canary = write_data(tmp_path)
    code, out, _ = run("judge", "--config", CHECKOUT, "--baseline", baseline, "--canary", canary)
    assert code == 0, out
    assert out.startswith("PASS  score 100")
    assert "p99 latency" in out and "shift [CI]" in out
    assert "requests: Canary p10" in out


def test_fail_exits_2_and_json_format(tmp_path: Path) -> None:
    baseline, canary = write_data(tmp_path, shift=40)
    code, out, _ = run("judge", "-c", CHECKOUT, "--baseline", baseline, "--canary", canary,
                       "--format", "json")
    assert code == 2
    report = json.loads(out)
    assert report["verdict"] == "fail"
    assert report["score"] == 0.0
    assert report["metrics"][0]["classification"] == "high"


def test_marginal_exits_1_via_threshold_overrides(tmp_path: Path) -> None:
    baseline, canary = write_data(tmp_path, shift=40)
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump({
        "mode": "kayenta",
        "metrics": [{"name": "latency_p99_ms", "direction": "increase"}, {"name": "cpu"}],
    }))
    code, out, _ = run("judge", "-c", config, "--baseline", baseline, "--canary", canary,
                       "--pass", "90", "--marginal", "50", "-f", "json")
    assert code == 1
    assert json.loads(out)["score"] == 50.0


def test_parquet_and_json_inputs(tmp_path: Path) -> None:
    baseline_csv, canary_csv = write_data(tmp_path)
    baseline = tmp_path / "baseline.parquet"
    pd.read_csv(baseline_csv).to_parquet(baseline)
    canary_frame = pd.read_csv(canary_csv).drop(columns=["timestamp"])
    canary = tmp_path / "canary.json"
    canary.write_text(json.dumps({c: canary_frame[c].tolist() for c in canary_frame.columns}))
    code, out, _ = run("judge", "-c", CHECKOUT, "--baseline", baseline, "--canary", canary)
    assert code == 0, out
    records = tmp_path / "records.json"
    records.write_text(canary_frame.to_json(orient="records"))
    code, out, _ = run("judge", "-c", CHECKOUT, "--baseline", baseline, "--canary", records)
    assert code == 0, out


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: d / "missing.csv", "canary file"),
        (lambda d: _file(d, "data.txt", "x"), "unknown format '.txt'"),
        (lambda d: _file(d, "bad.json", "{"), "cannot read canary"),
        (lambda d: _file(d, "odd.json", '{"a": 1}'),
         "JSON must be {metric: [values]} or a list of records"),
        (lambda d: _file(d, "empty.csv", ""), "cannot read canary"),
    ],
)
def test_bad_data_files_exit_3(tmp_path: Path, make: object, fragment: str) -> None:
    baseline, _ = write_data(tmp_path)
    canary = make(tmp_path)  # type: ignore[operator]
    code, _, err = run("judge", "-c", CHECKOUT, "--baseline", baseline, "--canary", canary)
    assert code == EXIT_BAD_INPUT
    assert fragment in err


def test_invalid_config_exits_3_naming_the_field(tmp_path: Path) -> None:
    baseline, canary = write_data(tmp_path)
    config = FIXTURES / "configs" / "malformed-unknown-field.yaml"
    code, _, err = run("judge", "-c", config, "--baseline", baseline, "--canary", canary)
    assert code == EXIT_BAD_INPUT
    assert "metrics.0.test.mann_whitney.confidance: Extra inputs are not permitted" in err


def test_missing_config_and_unparsable_config_exit_3(tmp_path: Path) -> None:
    baseline, canary = write_data(tmp_path)
    code, _, err = run("judge", "-c", tmp_path / "nope.yaml", "--baseline", baseline,
                       "--canary", canary)
    assert code == EXIT_BAD_INPUT
    assert "cannot read config" in err and "nope.yaml" in err
    code, _, err = run("judge", "-c", FIXTURES / "configs" / "malformed-not-yaml.yaml",
                       "--baseline", baseline, "--canary", canary)
    assert code == EXIT_BAD_INPUT
    assert "cannot parse config" in err


def test_usage_errors_exit_3_not_2(tmp_path: Path) -> None:
    code, _, err = run("judge", "--bogus")
    assert code == EXIT_BAD_INPUT
    assert "No such option" in err
    code, _, _ = run("judge", "--config", CHECKOUT)  # --baseline and --canary missing
    assert code == EXIT_BAD_INPUT
    code, _, _ = run("judge", "-c", CHECKOUT, "--baseline", "b", "--canary", "c", "-f", "xml")
    assert code == EXIT_BAD_INPUT


def test_bad_threshold_override_exits_3(tmp_path: Path) -> None:
    baseline, canary = write_data(tmp_path)
    code, _, err = run("judge", "-c", CHECKOUT, "--baseline", baseline, "--canary", canary,
                       "--pass", "50", "--marginal", "80")
    assert code == EXIT_BAD_INPUT
    assert "must not be above 'pass'" in err


def test_config_validate() -> None:
    code, out, _ = run("config", "validate", CHECKOUT)
    assert code == 0
    assert out.startswith("OK: 'checkout', mode default, 4 metric(s)")
    code, _, err = run("config", "validate", FIXTURES / "configs" / "malformed-bad-direction.yaml")
    assert code == EXIT_BAD_INPUT
    assert "metrics.0.direction: Input should be 'increase', 'decrease' or 'either'" in err
    code, _, err = run("config", "validate", FIXTURES / "configs" / "malformed-group-typo.yaml")
    assert code == EXIT_BAD_INPUT
    assert "groups: ['errors'] have a weight but no metric is in them" in err
    assert "['errros', 'latency']" in err


def test_config_validate_kayenta_config_names_obsolete_fields() -> None:
    code, _, err = run("config", "validate", FIXTURES / "kayenta" / "obsolete-fields.json")
    assert code == EXIT_BAD_INPUT
    assert "metrics.0.query.sumByFields: unknown or obsolete Kayenta field" in err


def test_config_validate_warns_about_fields_kayenta_ignores() -> None:
    code, out, err = run("config", "validate", FIXTURES / "kayenta" / "extensions.json")
    assert code == 0, err
    assert out.startswith("OK: 'with-extensions', mode kayenta, 2 metric(s)")
    assert err.splitlines() == [
        f"warning: metrics.{i}.extensions: ignored (Kayenta ignores it too; it holds no setting)"
        for i in (0, 1)
    ]


def test_import_kayenta_prints_native_yaml_that_loads_back() -> None:
    source = FIXTURES / "kayenta" / "prometheus-full.json"
    code, out, _ = run("config", "import-kayenta", source)
    assert code == 0
    native = CanaryConfig.parse_text(out)
    assert native == CanaryConfig.from_kayenta(json.loads(source.read_text()))
    assert yaml.safe_load(out)["mode"] == "kayenta"


def test_import_kayenta_errors() -> None:
    code, _, err = run("config", "import-kayenta", FIXTURES / "kayenta" / "other-judge.json")
    assert code == EXIT_BAD_INPUT
    assert "judge.name" in err
    code, _, err = run("config", "import-kayenta", CHECKOUT)
    assert code == EXIT_BAD_INPUT
    assert "is not JSON" in err


def test_export_kayenta() -> None:
    code, out, _ = run("config", "export-kayenta", FIXTURES / "kayenta" / "datadog.json")
    assert code == 0
    assert json.loads(out)["metrics"][1]["analysisConfigurations"]["canary"]["critical"] is True
    code, _, err = run("config", "export-kayenta", CHECKOUT)
    assert code == EXIT_BAD_INPUT
    assert "has no Kayenta equivalent" in err


def test_console_script_in_a_subprocess(tmp_path: Path) -> None:
    """The installed ``canary-judge`` entry point (pyproject's console script), for real."""
    script = shutil.which("canary-judge", path=str(Path(sys.executable).parent))
    assert script is not None, "canary-judge is not installed in this environment"
    baseline, canary = write_data(tmp_path, shift=40)
    completed = subprocess.run(
        [script, "judge", "--config", str(KAYENTA_MODE), "--baseline", str(baseline),
         "--canary", str(canary), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr  # cpu did not move
    assert json.loads(completed.stdout)["verdict"] == "pass"
    failing = subprocess.run(
        [script, "judge", "--config", str(KAYENTA_MODE), "--baseline", str(baseline),
         "--canary", str(tmp_path / "nothing.csv")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert failing.returncode == EXIT_BAD_INPUT
    assert "does not exist" in failing.stderr


@pytest.mark.parametrize("output", ["table", "json"])
def test_a_reader_that_stops_early_keeps_the_exit_code(tmp_path: Path, output: str) -> None:
    # `canary-judge judge ... | head`: the reader is gone before anything is written (its end
    # of the pipe is closed at once); the exit code is still the verdict's (click gave 1).
    script = shutil.which("canary-judge", path=str(Path(sys.executable).parent))
    assert script is not None, "canary-judge is not installed in this environment"
    baseline, canary = write_data(tmp_path, shift=40)
    process = subprocess.Popen(
        [script, "judge", "--config", str(CHECKOUT), "--baseline", str(baseline),
         "--canary", str(canary), "--format", output],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 2, errors  # fail: latency moved by 40
    assert errors == ""  # no traceback, no "Exception ignored ... BrokenPipeError"


def test_serve_refuses_unknown_settings_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "settings.yaml"
    # `serve --settings` sets the variable; monkeypatch removes it after the test.
    monkeypatch.setenv("CANARY_JUDGE_SETTINGS_FILE", str(settings))
    settings.write_text("databse_url: sqlite:///x.db\n")
    code, _, err = run("serve", "--settings", settings)
    assert code == EXIT_BAD_INPUT
    assert err == ("error: invalid settings: 'databse_url' is not a setting (did you mean "
                   "'database_url'?) (every setting: docs/service.md)\n")
    settings.write_text("sources: [\n")
    code, _, err = run("serve", "--settings", settings)
    assert code == EXIT_BAD_INPUT
    assert err == f"error: settings file {settings} is not valid YAML or JSON (line 2, column 1)\n"
    monkeypatch.delenv("CANARY_JUDGE_SETTINGS_FILE")
    monkeypatch.setenv("CANARY_JUDGE_PROMETEUS_URL", "http://prometheus:9090")
    code, _, err = run("serve")
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1
    assert ("environment variable CANARY_JUDGE_PROMETEUS_URL is not a setting (did you mean "
            "CANARY_JUDGE_PROMETHEUS_URL?)") in err
    monkeypatch.delenv("CANARY_JUDGE_PROMETEUS_URL")
    monkeypatch.setenv("CANARY_JUDGE_MAX_REQUEST_BYTES", "lots")
    code, _, err = run("serve")
    assert code == EXIT_BAD_INPUT
    assert err.startswith("error: invalid settings: max_request_bytes: Input should be a valid "
                          "integer") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("variable", "value", "where"),
    [("CANARY_JUDGE_DATADOG_URL", "datadoghq.co", ""),
     ("CANARY_JUDGE_SOURCES", '{"eu": {"type": "datadog", "url": "datadoghq.eux"}}',
      "sources.eu")],
)
def test_serve_refuses_a_bad_datadog_site_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, where: str
) -> None:
    # Refused before the server starts (it used to fail each query as UnsupportedProtocol).
    monkeypatch.setenv(variable, value)
    code, out, err = run("serve", "--port", "1")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: invalid settings: {where}")
    assert "unknown Datadog site" in err and "datadoghq.eu" in err


def test_a_datadog_source_without_url_takes_dd_site(monkeypatch: pytest.MonkeyPatch) -> None:
    from judge.api.settings import Settings
    from judge.api.sources import build_source

    monkeypatch.setenv("DD_SITE", "ap1.datadoghq.com")
    monkeypatch.setenv("DD_API_KEY", "dd-env-api-key")
    settings = Settings(sources={"dd": {"type": "datadog"}})
    source = build_source(settings.source_settings()["dd"])
    assert getattr(source, "site", None) == "https://api.ap1.datadoghq.com"
    # Keys read from the environment are redacted like configured ones.
    assert "dd-env-api-key" in settings.secret_values()
    monkeypatch.setenv("DD_SITE", "datadoghq.xyz")
    with pytest.raises(ValueError, match=r"unknown Datadog site 'datadoghq\.xyz'"):
        Settings(sources={"dd": {"type": "datadog"}})


def test_db_commands_upgrade_and_report_the_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'judge.db'}"
    behind = RUNNER.invoke(app, ["db", "current", "--database-url", url])
    assert behind.exit_code == 1  # an empty database is behind this release
    assert behind.output.strip() == f"{url}: revision none (head 0002)"
    upgraded = RUNNER.invoke(app, ["db", "upgrade", "--database-url", url])
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output.strip() == f"{url}: upgraded from revision none to 0002"
    again = RUNNER.invoke(app, ["db", "upgrade", "--database-url", url])
    assert again.output.strip() == f"{url}: already at revision 0002 (head 0002)"
    current = RUNNER.invoke(app, ["db", "current", "--database-url", url])
    assert (current.exit_code, current.output.strip()) == (0, f"{url}: revision 0002 (head 0002)")


def test_db_commands_name_a_database_they_cannot_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'judge.db'}"
    result = RUNNER.invoke(app, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == EXIT_BAD_INPUT
    assert f"database {url} is unavailable: unable to open database file" in result.output
    assert "Traceback" not in result.output
