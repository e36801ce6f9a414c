"""Demo configs stored at first start, so a newcomer's first ``curl`` shows a verdict.

``demo`` uses our default judge, ``demo-kayenta`` reproduces Kayenta's. Both read the synthetic
demo source (``metricsources.demo``): a scope value containing ``bad`` (e.g. ``canary-bad``)
gets a 30% regression, any other (``canary-good``) differs from the baseline by noise only.
"""

from __future__ import annotations

from typing import Any

from judge.api.store import Store
from judge.config import CanaryConfig
from judge.errors import ConfigError, ConflictError, NotFoundError

_METRICS: list[dict[str, Any]] = [
    {
        "name": "latency",
        "groups": ["latency"],
        "query": {"type": "demo", "signal": "latency", "level": 120, "noise": 0.05},
        "source": "demo",
        "direction": "increase",
    },
    {
        "name": "errors",
        "groups": ["errors"],
        "query": {"type": "demo", "signal": "errors", "level": 2000, "noise": 0.05},
        "source": "demo",
        "direction": "increase",
    },
    {
        "name": "cpu",
        "groups": ["saturation"],
        "query": {"type": "demo", "signal": "cpu", "level": 1.0, "noise": 0.05},
        "source": "demo",
        "direction": "increase",
    },
    {
        "name": "requests",
        "groups": ["throughput"],
        "query": {"type": "demo", "signal": "requests", "level": 2000, "noise": 0.05},
        "source": "demo",
        "direction": "decrease",
    },
]


# Kayenta's judge treats one-minute points as independent, so on autocorrelated data it fails
# a good canary often when any significant shift counts (its documented weakness). Kayenta users
# set effect-size limits for that; the demo does too, well below the demo's 30% regression.
_KAYENTA_TEST: dict[str, Any] = {
    "kind": "mann_whitney",
    "effect_size": {"allowed_increase": 1.1, "allowed_decrease": 0.9},
}


def demo_config(mode: str = "default") -> dict[str, Any]:
    """The demo config in native form (``mode``: ``default`` or ``kayenta``)."""
    metrics = _METRICS if mode == "default" else [m | {"test": _KAYENTA_TEST} for m in _METRICS]
    return {
        "name": "demo" if mode == "default" else f"demo-{mode}",
        "description": "Synthetic demo metrics: scope 'canary-good' passes, 'canary-bad' fails.",
        "mode": mode,
        "thresholds": {"pass": 95, "marginal": 75},
        "groups": {"latency": 40, "errors": 30, "saturation": 15, "throughput": 15},
        "metrics": metrics,
    }


def seed_demo_configs(store: Store) -> list[str]:
    """Store the demo configs that are missing (by name); returns the names added."""
    added = []
    for mode in ("default", "kayenta"):
        config = CanaryConfig.from_dict(demo_config(mode))
        try:
            store.find_config(config.name)
        except NotFoundError:
            try:
                store.create_config(
                    name=config.name,
                    native=config.to_dict(),
                    applications=config.applications,
                    config_id=config.name,
                )
            except (ConfigError, ConflictError):
                continue  # another replica starting at the same moment stored it first
            added.append(config.name)
    return added
