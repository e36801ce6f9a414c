"""Settings: environment, settings file, source selection, and the settings reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from judge.api.settings import Settings


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_JUDGE_DATABASE_URL", "postgresql://db/judge")
    monkeypatch.setenv("CANARY_JUDGE_API_TOKENS", "a, b,,c")
    monkeypatch.setenv("CANARY_JUDGE_PROMETHEUS_URL", "http://prometheus:9090")
    monkeypatch.setenv("CANARY_JUDGE_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.database_url == "postgresql://db/judge"
    assert [token.get_secret_value() for token in settings.api_tokens] == ["a", "b", "c"]
    assert "'a'" not in repr(settings)
    assert settings.log_level == "DEBUG"
    assert settings.default_source_name() == "prometheus"
    assert set(settings.source_settings()) == {"prometheus", "demo"}


def test_settings_file_below_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(
        "database_url: sqlite:///from-file.db\n"
        "max_concurrent_analyses: 2\n"
        "sources:\n"
        "  prod: {type: prometheus, url: 'http://prod:9090', scope_label: pod}\n"
        "  eu: {type: datadog, url: 'https://api.datadoghq.eu',\n"
        "       api_key: dd-secret-key, app_key: dd-app-secret}\n"
        "default_source: prod\n"
    )
    monkeypatch.setenv("CANARY_JUDGE_SETTINGS_FILE", str(settings_file))
    monkeypatch.setenv("CANARY_JUDGE_MAX_CONCURRENT_ANALYSES", "7")
    settings = Settings()
    assert settings.database_url == "sqlite:///from-file.db"
    assert settings.max_concurrent_analyses == 7
    assert settings.default_source_name() == "prod"
    assert settings.source_settings()["prod"].scope_label == "pod"
    assert "dd-secret-key" not in repr(settings.source_settings()["eu"])  # secrets stay hidden


def test_several_sources_need_a_default() -> None:
    settings = Settings(
        sources={
            "a": {"type": "prometheus", "url": "http://a"},
            "b": {"type": "prometheus", "url": "http://b"},
        },
    )
    assert settings.default_source_name() is None
    assert Settings().default_source_name() == "demo"
    assert Settings(demo_source=False).default_source_name() is None


def test_invalid_settings_name_the_field() -> None:
    with pytest.raises(ValidationError, match="default_source"):
        Settings(default_source="missing")
    with pytest.raises(ValidationError, match="needs 'url'"):
        Settings(sources={"p": {"type": "prometheus"}})
    with pytest.raises(ValidationError, match="max_request_bytes"):
        Settings(max_request_bytes=0)
    with pytest.raises(ValidationError, match=r"unknown_field|Extra inputs"):
        Settings(unknown_field=1)  # type: ignore[call-arg]


def test_every_setting_is_documented() -> None:
    reference = (Path(__file__).parents[2] / "docs" / "service.md").read_text()
    for name in Settings.model_fields:
        assert f"CANARY_JUDGE_{name.upper()}" in reference, name
    assert "CANARY_JUDGE_SETTINGS_FILE" in reference


def test_unknown_names_are_errors_naming_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_JUDGE_PROMETEUS_URL", "http://prometheus:9090")
    monkeypatch.setenv("canary_judge_log_levle", "debug")  # variables are case-insensitive
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = str(caught.value)
    assert ("environment variable CANARY_JUDGE_LOG_LEVLE is not a setting (did you mean "
            "CANARY_JUDGE_LOG_LEVEL?)") in message
    assert ("environment variable CANARY_JUDGE_PROMETEUS_URL is not a setting (did you mean "
            "CANARY_JUDGE_PROMETHEUS_URL?)") in message
    monkeypatch.delenv("CANARY_JUDGE_PROMETEUS_URL")
    monkeypatch.delenv("canary_judge_log_levle")
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("max_concurent_analyses: 2\n")
    monkeypatch.setenv("CANARY_JUDGE_SETTINGS_FILE", str(settings_file))
    with pytest.raises(ValidationError, match=r"'max_concurent_analyses' is not a setting "
                                              r"\(did you mean 'max_concurrent_analyses'\?\)"):
        Settings()


def test_the_labs_variables_are_not_settings_and_not_errors(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CANARY_JUDGE_REAL_SERIES", "CANARY_JUDGE_SAMPLE_EVERY", "CANARY_JUDGE_OUT"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("CANARY_JUDGE_LOG_LEVEL", "debug")
    assert Settings().log_level == "DEBUG"
