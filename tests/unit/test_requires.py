"""What a test needs from outside the repository fails it in CI and skips it elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import requires


def test_missing_shared_data_fails_in_ci_and_skips_elsewhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requires, "SHARED_DATA", tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="kayenta-configs"):
        requires.require_shared("kayenta-configs")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="kayenta-configs"):
        requires.require_shared("kayenta-configs")
    (tmp_path / "kayenta-configs").mkdir()
    assert requires.require_shared("kayenta-configs") == tmp_path / "kayenta-configs"


def test_missing_binary_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(pytest.fail.Exception, match="scripts/setup installs it"):
        requires.require_binary("prometheus")


def test_the_shared_data_is_beside_the_checkout() -> None:
    assert requires.SHARED_DATA.parts[-2:] == ("shared", "data")
    assert requires.SHARED_DATA.parent.parent == Path(__file__).resolve().parents[3]
