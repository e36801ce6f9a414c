"""Kayenta canary configs: read into a :class:`~judge.config.CanaryConfig`, and written back.

Kayenta stores a canary config as JSON (``CanaryConfig`` in ``kayenta-core``)::

    {name, description, configVersion, applications, judge: {name, judgeConfigurations},
     metrics: [{name, query: {type, ...}, groups, analysisConfigurations: {canary: {...}},
                scopeName}],
     templates: {NAME: filter}, classifier: {groupWeights, scoreThresholds: {pass, marginal}}}

and reads ``analysisConfigurations.canary`` as an untyped map in ``NetflixACAJudge.scala``
(``direction``, ``nanStrategy``, ``critical``, ``mustHaveData``, ``muted``, ``effectSize``,
``outliers``), turning unknown strings into defaults. Here every field is checked: a field
current Kayenta reads is mapped to the native model; an unknown or obsolete one (such as the
``sumByFields`` of early sample configs) is an error naming its path, e.g.
``metrics.0.query.sumByFields``. All problems of a config are reported at once, as one
pydantic ``ValidationError``, like a native config's. The one exception is a field current
Kayenta ignores and that holds no setting: a metric's ``extensions`` with only empty objects
(``{"canary": {}}``, the pre-``analysisConfigurations`` place of its settings, still in
Kayenta's own sample configs) is dropped with a :class:`KayentaIgnoredFieldWarning` naming it;
with settings inside it is an error (they would be lost, as Kayenta loses them).

The imported config has ``mode: kayenta``, so it is judged as NetflixACAJudge judges it
(confidence 0.98, tolerance 0.25). Fields that do not change a judgment (``judge``,
``configVersion``, ``id``, timestamps) are kept in ``CanaryConfig.extras`` and written back by
:func:`config_to_kayenta`, so ``config_to_kayenta(config_from_kayenta(raw))`` means what ``raw``
means. Queries for sources this project does not serve (SignalFx, Graphite, New Relic,
Stackdriver, Atlas, InfluxDB, Wavefront) are kept whole as
:class:`~judge.queries.UnsupportedQuery`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from judge.config.enums import EffectMeasure, JudgeMode, NanStrategy, OutlierStrategy
from judge.config.queries import (
    UNSERVED_QUERY_TYPES,
    DatadogQuery,
    PrometheusQuery,
    UnsupportedQuery,
)
from judge.errors import ConfigError

if TYPE_CHECKING:
    # Types only: the models read Kayenta JSON through kayenta_to_native, so this module must
    # not import them at run time.
    from judge.config.models import CanaryConfig, MetricConfig

__all__ = [
    "KAYENTA_CONFIDENCE",
    "KAYENTA_JUDGE_NAME",
    "KAYENTA_TOLERANCE",
    "KayentaIgnoredFieldWarning",
    "config_to_kayenta",
    "kayenta_to_native",
    "looks_like_kayenta",
]

KAYENTA_JUDGE_NAME = "NetflixACAJudge-v1.0"
"""The only Kayenta judge reproduced (``judge.name`` of an imported config)."""
REMOTE_JUDGE_NAME = "RemoteJudge-v1.0"
"""Kayenta's remote judge: a config naming it is judged by canary-judge (docs/recipes/
spinnaker.md), in the mode its ``judgeConfigurations.mode`` names (``default`` when unset)."""
KAYENTA_CONFIDENCE = 0.98
"""NetflixACAJudge's Mann-Whitney confidence level (fixed in ``NetflixACAJudge.scala``)."""
KAYENTA_TOLERANCE = 0.25
"""NetflixACAJudge's tolerance: the interval must clear 25% of |estimate| to count."""

# Top-level fields of Kayenta's CanaryConfig that change no judgment: kept in ``extras``.
_KEPT_TOP_LEVEL = (
    "id",
    "configVersion",
    "createdTimestamp",
    "updatedTimestamp",
    "createdTimestampIso",
    "updatedTimestampIso",
    "judge",
)
_TOP_LEVEL = frozenset(
    ("name", "description", "applications", "metrics", "templates", "classifier", *_KEPT_TOP_LEVEL)
)
_METRIC = frozenset(("name", "query", "groups", "analysisConfigurations", "scopeName"))
_IGNORED_METRIC_FIELDS = frozenset(("extensions",))
"""Metric fields Kayenta ignores that may be dropped when they hold nothing (see module doc)."""


class KayentaIgnoredFieldWarning(UserWarning):
    """A field of a Kayenta config that Kayenta ignores too was dropped on import."""


def _holds_nothing(value: Any) -> bool:
    """Only (nested) empty objects: ``{}``, ``{"canary": {}}``."""
    return isinstance(value, Mapping) and all(_holds_nothing(v) for v in value.values())

_CANARY = frozenset(
    ("direction", "nanStrategy", "critical", "mustHaveData", "muted", "effectSize", "outliers")
)
_EFFECT_SIZE = frozenset(
    ("measure", "allowedIncrease", "allowedDecrease", "criticalIncrease", "criticalDecrease")
)
_OUTLIERS = frozenset(("strategy", "outlierFactor"))
_CLASSIFIER = frozenset(("groupWeights", "scoreThresholds"))
_THRESHOLDS = frozenset(("pass", "marginal"))
_JUDGE = frozenset(("name", "judgeConfigurations"))
# The query fields each served source reads in current Kayenta
# (PrometheusCanaryMetricSetQueryConfig, DatadogCanaryMetricSetQueryConfig).
_QUERY_FIELDS: dict[str, frozenset[str]] = {
    "prometheus": frozenset(
        (
            "type",
            "serviceType",
            "metricName",
            "labelBindings",
            "groupByFields",
            "customFilter",
            "customFilterTemplate",
            "customInlineTemplate",
            "resourceType",
        )
    ),
    "datadog": frozenset(
        ("type", "serviceType", "metricName", "customFilterTemplate", "customInlineTemplate")
    ),
}
_DIRECTIONS = ("increase", "decrease", "either")

Loc = tuple[str | int, ...]


class _Problems:
    """Collects every problem of a config, so one error lists them all."""

    def __init__(self) -> None:
        self.details: list[InitErrorDetails] = []

    def add(self, loc: Loc, message: str, value: Any) -> None:
        # Braces would be read as placeholders by pydantic's message templates.
        text = message.replace("{", "(").replace("}", ")")
        self.details.append(
            InitErrorDetails(type=PydanticCustomError("kayenta_config", text), loc=loc, input=value)
        )

    def unknown_fields(self, loc: Loc, raw: Mapping[str, Any], known: frozenset[str]) -> None:
        for key in raw:
            if key not in known:
                self.add(
                    (*loc, key),
                    f"unknown or obsolete Kayenta field {key!r}; "
                    f"fields read here: {', '.join(sorted(known))}",
                    raw[key],
                )

    def raise_if_any(self) -> None:
        if self.details:
            raise ValidationError.from_exception_data("KayentaCanaryConfig", self.details)


def _mapping(problems: _Problems, loc: Loc, value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add(loc, f"{what} must be an object, not {type(value).__name__}", value)
        return {}
    return value


def _boolean(problems: _Problems, loc: Loc, value: Any) -> bool:
    # Kayenta's MapUtils.getAsBooleanWithDefault also parses the strings "true"/"false".
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.add(loc, "must be true or false", value)
    return False


def _number(problems: _Problems, loc: Loc, value: Any) -> float | None:
    # Kayenta's MapUtils.getAsDoubleWithDefault accepts numbers and numeric strings.
    if isinstance(value, bool):
        problems.add(loc, "must be a number", value)
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    problems.add(loc, "must be a number", value)
    return None


def _choice(problems: _Problems, loc: Loc, value: Any, allowed: Sequence[str]) -> str | None:
    if isinstance(value, str) and value in allowed:
        return value
    problems.add(loc, f"must be one of {', '.join(allowed)}", value)
    return None


def _strings(problems: _Problems, loc: Loc, value: Any) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    problems.add(loc, "must be a list of strings", value)
    return []


def _query(problems: _Problems, loc: Loc, raw: Any) -> dict[str, Any] | None:
    if raw is None:
        problems.add(loc, "every Kayenta metric needs a typed 'query'", raw)
        return None
    query = _mapping(problems, loc, raw, "'query'")
    kind = query.get("type")
    if kind in _QUERY_FIELDS:
        problems.unknown_fields(loc, query, _QUERY_FIELDS[kind])
        return {k: v for k, v in query.items() if k in _QUERY_FIELDS[kind]}
    if kind in UNSERVED_QUERY_TYPES:
        return dict(query)  # kept whole: this project does not know that source's fields
    served = sorted((*_QUERY_FIELDS, *UNSERVED_QUERY_TYPES))
    problems.add((*loc, "type"), f"unknown query type; Kayenta types: {', '.join(served)}", kind)
    return None


def _canary_settings(problems: _Problems, loc: Loc, raw: Mapping[str, Any]) -> dict[str, Any]:
    """``analysisConfigurations.canary`` as native MetricConfig fields."""
    problems.unknown_fields(loc, raw, _CANARY)
    native: dict[str, Any] = {}
    if "direction" in raw:
        native["direction"] = _choice(problems, (*loc, "direction"), raw["direction"], _DIRECTIONS)
    if "nanStrategy" in raw:
        native["nan_strategy"] = _choice(
            problems, (*loc, "nanStrategy"), raw["nanStrategy"], [s.value for s in NanStrategy]
        )
    for kayenta_name, native_name in (
        ("critical", "critical"),
        ("mustHaveData", "must_have_data"),
        ("muted", "muted"),
    ):
        if kayenta_name in raw:
            native[native_name] = _boolean(problems, (*loc, kayenta_name), raw[kayenta_name])

    effect_raw = _mapping(problems, (*loc, "effectSize"), raw.get("effectSize"), "'effectSize'")
    problems.unknown_fields((*loc, "effectSize"), effect_raw, _EFFECT_SIZE)
    effect: dict[str, Any] = {}
    if "measure" in effect_raw:
        effect["measure"] = _choice(
            problems,
            (*loc, "effectSize", "measure"),
            effect_raw["measure"],
            [m.value for m in EffectMeasure],
        )
    for key in ("allowedIncrease", "allowedDecrease", "criticalIncrease", "criticalDecrease"):
        if key in effect_raw:
            effect[key] = _number(problems, (*loc, "effectSize", key), effect_raw[key])

    outliers_raw = _mapping(problems, (*loc, "outliers"), raw.get("outliers"), "'outliers'")
    problems.unknown_fields((*loc, "outliers"), outliers_raw, _OUTLIERS)
    outliers: dict[str, Any] = {}
    if "strategy" in outliers_raw:
        outliers["strategy"] = _choice(
            problems,
            (*loc, "outliers", "strategy"),
            outliers_raw["strategy"],
            [s.value for s in OutlierStrategy],
        )
    if "outlierFactor" in outliers_raw:
        outliers["factor"] = _number(
            problems, (*loc, "outliers", "outlierFactor"), outliers_raw["outlierFactor"]
        )

    native["outliers"] = outliers
    native["test"] = {
        "kind": "mann_whitney",
        "confidence": KAYENTA_CONFIDENCE,
        "tolerance": KAYENTA_TOLERANCE,
        "effect_size": effect,
    }
    return native


def _metric(problems: _Problems, loc: Loc, raw: Any) -> dict[str, Any]:
    metric = _mapping(problems, loc, raw, "a metric")
    for key in _IGNORED_METRIC_FIELDS & set(metric):
        path = ".".join(str(part) for part in (*loc, key))
        if _holds_nothing(metric[key]):
            warnings.warn(
                f"{path}: ignored (Kayenta ignores it too; it holds no setting)",
                KayentaIgnoredFieldWarning, stacklevel=2,
            )
        else:
            problems.add((*loc, key), f"obsolete Kayenta field {key!r} holds settings that "
                         "current Kayenta ignores; move them to analysisConfigurations",
                         metric[key])
    problems.unknown_fields(loc, metric, _METRIC | _IGNORED_METRIC_FIELDS)
    native: dict[str, Any] = {}
    name = metric.get("name")
    if not isinstance(name, str) or not name:
        problems.add((*loc, "name"), "every metric needs a non-empty 'name'", name)
    native["name"] = name
    groups = _strings(problems, (*loc, "groups"), metric.get("groups", []))
    if not groups:
        problems.add((*loc, "groups"), "a metric needs at least one group", metric.get("groups"))
    native["groups"] = groups
    if "scopeName" in metric:
        native["scope_name"] = metric["scopeName"]
    native["query"] = _query(problems, (*loc, "query"), metric.get("query"))
    analysis = _mapping(
        problems,
        (*loc, "analysisConfigurations"),
        metric.get("analysisConfigurations"),
        "'analysisConfigurations'",
    )
    # Other judges may read other keys; NetflixACAJudge reads only "canary".
    problems.unknown_fields((*loc, "analysisConfigurations"), analysis, frozenset(("canary",)))
    canary = _mapping(
        problems,
        (*loc, "analysisConfigurations", "canary"),
        analysis.get("canary"),
        "'canary'",
    )
    native.update(_canary_settings(problems, (*loc, "analysisConfigurations", "canary"), canary))
    return native


def _judge_block(problems: _Problems, raw: Any) -> JudgeMode:
    """The mode a config's ``judge`` block asks for: NetflixACAJudge is ``kayenta``; Kayenta's
    remote judge (this service) the ``judgeConfigurations.mode`` it names."""
    judge = _mapping(problems, ("judge",), raw, "'judge'")
    problems.unknown_fields(("judge",), judge, _JUDGE)
    name = judge.get("name", KAYENTA_JUDGE_NAME)
    options = _mapping(
        problems,
        ("judge", "judgeConfigurations"),
        judge.get("judgeConfigurations"),
        "'judgeConfigurations'",
    )
    if name == REMOTE_JUDGE_NAME:
        mode = _choice(problems, ("judge", "judgeConfigurations", "mode"),
                       options.get("mode", JudgeMode.DEFAULT.value), [m.value for m in JudgeMode])
        return JudgeMode(mode) if mode else JudgeMode.KAYENTA
    if name != KAYENTA_JUDGE_NAME:
        problems.add(
            ("judge", "name"),
            f"only Kayenta's {KAYENTA_JUDGE_NAME} is reproduced (mode: kayenta), and "
            f"{REMOTE_JUDGE_NAME} (this service; judgeConfigurations.mode picks the judge); "
            "use a native config to pick another judge",
            name,
        )
    return JudgeMode.KAYENTA


def kayenta_to_native(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A Kayenta canary config (the JSON Kayenta stores) as the native fields of a
    ``mode: kayenta`` config (``CanaryConfig.from_kayenta`` validates them).

    Raises pydantic's ``ValidationError`` listing every problem with its path (an unknown or
    obsolete field, a value Kayenta would silently replace by a default, a metric name used
    twice, a judge other than NetflixACAJudge).
    """
    problems = _Problems()
    given: object = raw  # callers pass parsed JSON, which may be anything
    if not isinstance(given, Mapping):
        problems.add((), "a Kayenta canary config is a JSON object", raw)
        problems.raise_if_any()
    problems.unknown_fields((), raw, _TOP_LEVEL)
    mode = _judge_block(problems, raw["judge"]) if "judge" in raw else JudgeMode.KAYENTA

    native: dict[str, Any] = {"mode": mode.value}
    for field in ("name", "description"):
        if field in raw:
            native[field] = raw[field]
    if "applications" in raw:
        native["applications"] = _strings(problems, ("applications",), raw["applications"])
    if "templates" in raw:
        native["templates"] = _mapping(problems, ("templates",), raw["templates"], "'templates'")

    classifier = _mapping(problems, ("classifier",), raw.get("classifier"), "'classifier'")
    problems.unknown_fields(("classifier",), classifier, _CLASSIFIER)
    if "groupWeights" in classifier:
        weights = _mapping(
            problems, ("classifier", "groupWeights"), classifier["groupWeights"], "'groupWeights'"
        )
        native["groups"] = {
            group: _number(problems, ("classifier", "groupWeights", group), weight)
            for group, weight in weights.items()
        }
    if "scoreThresholds" in classifier:
        thresholds = _mapping(
            problems,
            ("classifier", "scoreThresholds"),
            classifier["scoreThresholds"],
            "'scoreThresholds'",
        )
        problems.unknown_fields(("classifier", "scoreThresholds"), thresholds, _THRESHOLDS)
        native["thresholds"] = {
            key: _number(problems, ("classifier", "scoreThresholds", key), value)
            for key, value in thresholds.items()
            if key in _THRESHOLDS
        }

    metrics_raw = raw.get("metrics")
    if not isinstance(metrics_raw, list) or not metrics_raw:
        problems.add(("metrics",), "a canary config needs a non-empty list of metrics", metrics_raw)
        metrics_raw = []
    metrics = [_metric(problems, ("metrics", i), m) for i, m in enumerate(metrics_raw)]
    first_use: dict[str, int] = {}
    for i, metric in enumerate(metrics):
        name = metric.get("name")
        if isinstance(name, str) and name in first_use:
            problems.add(
                ("metrics", i, "name"),
                f"metric name {name!r} is already used by metrics.{first_use[name]} "
                "(Kayenta rejects duplicated metric names too)",
                name,
            )
        elif isinstance(name, str):
            first_use[name] = i
    native["metrics"] = metrics
    native["extras"] = {key: raw[key] for key in _KEPT_TOP_LEVEL if key in raw}
    problems.raise_if_any()
    return native


# -- writing -----------------------------------------------------------------------------------


def _query_to_kayenta(metric: MetricConfig) -> dict[str, Any]:
    query = metric.query
    if isinstance(query, UnsupportedQuery):
        return query.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {
            "type": query.type
        }
    if isinstance(query, PrometheusQuery):
        if query.aggregation_period or query.sum_by_fields:
            raise ConfigError(
                f"metric {metric.name!r}: 'aggregation_period' and 'sum_by_fields' have no "
                "Kayenta equivalent"
            )
        fields = query.model_dump(
            mode="json", by_alias=True, exclude_defaults=True, exclude={"promql"}
        )
        if query.promql is not None:
            # Kayenta reads a whole PromQL expression from a "PromQL:"-prefixed inline template.
            fields["customInlineTemplate"] = "PromQL:" + query.promql
        return fields | {"type": "prometheus"}
    if isinstance(query, DatadogQuery):
        if query.api.value != "v1":
            raise ConfigError(f"metric {metric.name!r}: Kayenta runs Datadog's v1 queries only")
        # Kayenta sends no rollup (Datadog picks the buckets): 'rollup' has no equivalent.
        fields = query.model_dump(
            mode="json", by_alias=True, exclude_defaults=True, exclude={"query", "rollup"}
        )
        if query.query is not None:
            fields["customInlineTemplate"] = query.query
        return fields | {"type": "datadog"}
    raise ConfigError(f"metric {metric.name!r}: a {query.type!r} query has no Kayenta equivalent")


def _canary_to_kayenta(metric: MetricConfig) -> dict[str, Any]:
    test = metric.test
    if test.kind != "mann_whitney":
        raise ConfigError(f"metric {metric.name!r}: Kayenta has no {test.kind!r} test")
    if test.confidence != KAYENTA_CONFIDENCE or test.tolerance != KAYENTA_TOLERANCE:
        raise ConfigError(
            f"metric {metric.name!r}: Kayenta judges with confidence {KAYENTA_CONFIDENCE} and "
            f"tolerance {KAYENTA_TOLERANCE}, not {test.confidence} and {test.tolerance}"
        )
    canary: dict[str, Any] = {"direction": metric.direction.value}
    if metric.nan_strategy is not NanStrategy.REMOVE:
        canary["nanStrategy"] = metric.nan_strategy.value
    for name, flag in (
        ("critical", metric.critical),
        ("mustHaveData", metric.must_have_data),
        ("muted", metric.muted),
    ):
        if flag:
            canary[name] = True
    effect = test.effect_size
    neutral = effect.neutral()
    effect_fields: dict[str, Any] = {}
    if effect.measure is not EffectMeasure.MEAN_RATIO:
        effect_fields["measure"] = effect.measure.value
    for name, value in (
        ("allowedIncrease", effect.allowed_increase),
        ("allowedDecrease", effect.allowed_decrease),
        ("criticalIncrease", effect.critical_increase),
        ("criticalDecrease", effect.critical_decrease),
    ):
        if value != neutral:
            effect_fields[name] = value
    if effect_fields:
        canary["effectSize"] = effect_fields
    outliers: dict[str, Any] = {}
    if metric.outliers.strategy is not OutlierStrategy.KEEP:
        outliers["strategy"] = metric.outliers.strategy.value
    if metric.outliers.factor != 3.0:
        outliers["outlierFactor"] = metric.outliers.factor
    if outliers:
        canary["outliers"] = outliers
    return canary


def config_to_kayenta(config: CanaryConfig) -> dict[str, Any]:
    """Write a config as the JSON Kayenta stores (the inverse of :func:`config_from_kayenta`).

    Raises ``ValueError`` naming the metric when something has no Kayenta equivalent (a
    threshold test, a column or demo query, a confidence other than Kayenta's 0.98).
    """
    kayenta: dict[str, Any] = {"name": config.name}
    if config.description is not None:
        kayenta["description"] = config.description
    if config.applications:
        kayenta["applications"] = list(config.applications)
    kayenta["judge"] = config.extras.get(
        "judge", {"name": KAYENTA_JUDGE_NAME, "judgeConfigurations": {}}
    )
    kayenta["metrics"] = [
        {
            "name": metric.name,
            "query": _query_to_kayenta(metric),
            "groups": list(metric.groups),
            "analysisConfigurations": {"canary": _canary_to_kayenta(metric)},
            "scopeName": metric.scope_name,
        }
        for metric in config.metrics
    ]
    if config.templates:
        kayenta["templates"] = dict(config.templates)
    kayenta["classifier"] = {
        "groupWeights": dict(config.groups),
        "scoreThresholds": config.thresholds.to_dict(),
    }
    for key in _KEPT_TOP_LEVEL:
        if key != "judge" and key in config.extras:
            kayenta[key] = config.extras[key]
    return kayenta

def looks_like_kayenta(raw: Mapping[str, Any]) -> bool:
    """Kayenta configs have ``classifier`` or metrics with ``analysisConfigurations``."""
    if "classifier" in raw or "judge" in raw:
        return True
    metrics = raw.get("metrics")
    return isinstance(metrics, list) and any(
        isinstance(m, Mapping) and "analysisConfigurations" in m for m in metrics
    )
