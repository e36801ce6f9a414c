"""Package metadata a user (and a licence scanner) reads: the licence, the extras."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_licence_is_apache_2_as_an_spdx_expression_with_its_text() -> None:
    # An SPDX string (PEP 639): setuptools' license table is deprecated (an error from
    # 2027-02-18). Apache-2.0, like Kayenta, Argo Rollouts and Flagger.
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_server_extra_holds_what_serving_imports() -> None:
    # `pip install 'canary-judge[server]'` (README) must be enough for `canary-judge serve`.
    server = {requirement.split(">")[0].split("=")[0] for requirement in
              PROJECT["optional-dependencies"]["server"]}
    assert {"fastapi", "uvicorn", "sqlalchemy", "pydantic-settings",
            "prometheus-client"} <= server
    assert "canary-judge[server" in " ".join(PROJECT["optional-dependencies"]["dev"])
