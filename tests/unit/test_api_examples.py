"""Every file under examples/ is valid for what reads it: configs, settings, and the bodies
that the Argo and Flagger examples make controllers send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from judge.api.auth import METADATA_TOKEN_KEY, TOKEN_PATH_PREFIX
from judge.api.kayenta import CanaryScopeIn
from judge.api.schemas import ArgoJudgeRequest, FlaggerMetadata
from judge.api.settings import Settings
from judge.config import CanaryConfig, JudgeMode

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize(
    "name",
    [
        "demo-config.yaml",
        "configs/checkout.yaml",
        "configs/checkout-kayenta.json",
        "configs/checkout-flagger.yaml",
    ],
)
def test_configs_parse(name: str) -> None:
    config = CanaryConfig.load(EXAMPLES / name)
    assert config.metrics
    if name.endswith(".json"):
        assert config.mode is JudgeMode.KAYENTA


def test_settings_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_JUDGE_SETTINGS_FILE", str(EXAMPLES / "settings.yaml"))
    settings = Settings()
    assert settings.default_source_name() == "prometheus"
    assert set(settings.source_settings()) == {"prometheus", "datadog-eu", "demo"}
    from judge.api.sources import build_source

    # The Datadog site is named as Datadog writes it, and becomes its API host.
    eu = build_source(settings.source_settings()["datadog-eu"])
    assert getattr(eu, "site", None) == "https://api.datadoghq.eu"


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


def _substitute(value: Any, args: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in args.items():
            value = value.replace("{{args." + key + "}}", replacement)
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, args) for k, v in value.items()}
    return value


def test_argo_web_template_sends_a_valid_request() -> None:
    (template,) = _documents("argo/analysistemplate-web.yaml")
    args = {a["name"]: a.get("value", "x1y2z3") for a in template["spec"]["args"]}
    (metric,) = template["spec"]["metrics"]
    web = metric["provider"]["web"]
    body = _substitute(web["jsonBody"], args)
    request = ArgoJudgeRequest.model_validate(json.loads(json.dumps(body)))
    assert request.config == "checkout"
    assert web["url"].endswith("/argo/v1/judge")
    assert web["timeoutSeconds"] >= 10
    assert metric["successCondition"] == 'result.verdict == "pass"'
    rollout = _documents("argo/rollout-web.yaml")[0]
    assert (
        rollout["spec"]["strategy"]["canary"]["analysis"]["templates"][0]["templateName"]
        == (template["metadata"]["name"])
    )


def test_argo_kayenta_template_scopes_parse() -> None:
    template, rollout = _documents("argo/analysistemplate-kayenta.yaml")
    kayenta = template["spec"]["metrics"][0]["provider"]["kayenta"]
    # The provider sends no headers: the token rides in the address, from a Secret.
    assert kayenta["address"].endswith(TOKEN_PATH_PREFIX + "{{args.api-token}}")
    (token_arg,) = [a for a in template["spec"]["args"] if a["name"] == "api-token"]
    assert token_arg["valueFrom"]["secretKeyRef"]["key"] == "token"
    assert (
        kayenta["canaryConfigName"]
        == json.loads((EXAMPLES / "configs/checkout-kayenta.json").read_text())["name"]
    )
    args = {
        "stable-hash": "abc",
        "canary-hash": "def",
        "start-time": "2024-05-01T12:00:00Z",
        "end-time": "2024-05-01T13:00:00Z",
    }
    for scope in kayenta["scopes"]:
        for side in ("controlScope", "experimentScope"):
            # Argo's ScopeDetail: scope, region and step are required by its CRD (no
            # omitempty); the provider sends `region` to Kayenta as `location`
            # (metricproviders/kayenta: Location: scope.ControlScope.Region).
            assert {"scope", "region", "step"} <= set(scope[side]), side
            sent = _substitute(scope[side], args)
            sent["location"] = sent.pop("region")
            parsed = CanaryScopeIn.model_validate(sent)
            assert parsed.start is not None and parsed.step == 60
    assert rollout["kind"] == "Rollout"


def test_flagger_canary_metadata_is_understood() -> None:
    (canary,) = _documents("flagger/canary.yaml")
    hooks = canary["spec"]["analysis"]["webhooks"]
    assert {h["type"] for h in hooks} == {"pre-rollout", "rollout", "confirm-promotion"}
    for hook in hooks:
        assert hook["url"].endswith("/flagger/v1/check")
        assert all(isinstance(v, str) for v in hook["metadata"].values())
        FlaggerMetadata.model_validate(_without_token(hook["metadata"]))


def _without_token(metadata: dict[str, str]) -> dict[str, str]:
    """What the webhook reads: the auth layer takes ``metadata.token`` out first."""
    assert METADATA_TOKEN_KEY in metadata
    return {k: v for k, v in metadata.items() if k != METADATA_TOKEN_KEY}


def test_argo_sequential_templates_send_valid_requests() -> None:
    watch, gate, rollout = _documents("argo/analysistemplate-web-sequential.yaml")
    for template, final in ((watch, False), (gate, True)):
        args = {a["name"]: a.get("value", "x1y2z3") for a in template["spec"]["args"]}
        (metric,) = template["spec"]["metrics"]
        body = _substitute(metric["provider"]["web"]["jsonBody"], args)
        request = ArgoJudgeRequest.model_validate(json.loads(json.dumps(body)))
        assert request.run_id == "x1y2z3-x1y2z3"
        assert request.final is final
        assert metric["failureCondition"] == 'result.status == "fail"'
    assert watch["spec"]["metrics"][0]["successCondition"] == (
        'result.status in ["continue", "pass"]')
    assert gate["spec"]["metrics"][0]["successCondition"] == 'result.status == "pass"'
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["analysis"]["templates"][0]["templateName"] == "canary-judge-watch"
    assert canary["steps"][-1]["analysis"]["templates"][0]["templateName"] == "canary-judge-gate"
    assert {a["name"] for a in canary["steps"][-1]["analysis"]["args"]} == {
        "rollout", "stable-hash", "canary-hash"}


def test_flagger_sequential_metadata_is_understood() -> None:
    (canary,) = _documents("flagger/canary-sequential.yaml")
    hooks = canary["spec"]["analysis"]["webhooks"]
    for hook in hooks:
        meta = FlaggerMetadata.model_validate(_without_token(hook["metadata"]))
        assert meta.sequential == "true"
    assert {h["type"]: h["metadata"].get("gate") for h in hooks} == {
        "rollout": None, "confirm-promotion": "promotion"}


@pytest.mark.parametrize("example", ["flagger/canary.yaml", "flagger/canary-sequential.yaml"])
def test_flagger_examples_name_the_config_that_selects_flaggers_pods(example: str) -> None:
    # Issue 16: `config: checkout` selected version="checkout-primary", a label Flagger's pods
    # do not carry: every hook answered 412 and every canary was rolled back.
    configs = {CanaryConfig.load(path).name: CanaryConfig.load(path)
               for path in (EXAMPLES / "configs").glob("*.yaml")}
    (canary,) = _documents(example)
    for hook in canary["spec"]["analysis"]["webhooks"]:
        config = configs[hook["metadata"]["config"]]
        for metric in config.metrics:
            promql = getattr(metric.query, "promql", "")
            assert 'pod=~"${scope}-' in promql, (hook["name"], metric.name)
            assert 'version="${scope}"' not in promql
