"""How long a report page takes for a big analysis: 50 metrics x 1440 points a side (a day of
one-minute points), against the same analysis' JSON answer (``GET /v1/analyses/{id}``).

The analysis is judged once (default judge, synthetic series with timestamps, every fifth
metric's canary shifted) and stored with its series in a temporary SQLite file, as the service
stores one; then, through the app in-process (ASGI, no network), each request is timed
``--repeats`` times (median and p90 printed):

- ``page``: ``GET /ui/analyses/{id}``, the HTML (verdict, groups, 50 metric rows, links to the
  plots), the figure the issue's 300 ms target is about;
- ``json``: ``GET /v1/analyses/{id}``, the baseline: the same stored report as JSON;
- ``plot (first)``: ``GET .../plots/{i}.svg`` for ``--plots`` metrics never drawn before
  (matplotlib draws 1440 points x 2 series, their ECDFs and the interval), and ``plot
  (cached)``: the same again (drawn plots are kept; an analysis never changes once finished).

A browser shows the page at once and loads the plots lazily as they scroll into view, so the
plot times are what a reader waits for each figure, not for the page.

    .venv/bin/python benchmarks/bench_report.py                     # 50 x 1440, 20 repeats
    .venv/bin/python benchmarks/bench_report.py --metrics 20 --points 600 --plots 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_SECONDS = 0.3


def _tables(metrics: int, points: int, seed: int) -> tuple[Any, Any, dict[str, Any]]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-12-01", periods=points, freq="1min", tz="UTC")
    names = [f"service_{i:02d}_latency_ms" for i in range(metrics)]
    baseline = pd.DataFrame({n: rng.normal(100, 5, points) for n in names}, index=index)
    canary = pd.DataFrame(
        {n: rng.normal(115 if i % 5 == 0 else 100, 5, points) for i, n in enumerate(names)},
        index=index,
    )
    config = {
        "name": "bench-report",
        "thresholds": {"pass": 95, "marginal": 75},
        "metrics": [
            {"name": n, "direction": "increase", "unit": "ms",
             "test": {"kind": "mann_whitney", "effect_size": {"allowed_increase": 1.05}}}
            for n in names
        ],
    }
    return baseline, canary, config


def _stored_analysis(database: str, metrics: int, points: int, seed: int) -> str:
    from judge import CanaryConfig, judge
    from judge.api.store import Store
    from judge.judging import inputs_from_tables
    from judge.pages.series import inputs_json

    baseline, canary, raw = _tables(metrics, points, seed)
    config = CanaryConfig.from_dict(raw)
    report = judge(config, baseline, canary)
    store = Store(database)
    store.create_schema()
    analysis = store.create_analysis(kind="native", config=config.to_dict(), request={})
    store.mark_running(analysis.id)
    store.save_series(analysis.id, inputs_json(inputs_from_tables(config, baseline, canary)))
    store.mark_succeeded(analysis.id, report.to_dict())
    store.close()
    return analysis.id


def _time(call: Callable[[], Any], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def _summary(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1000:8.1f} ms   p90 {p90 * 1000:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", type=int, default=50)
    parser.add_argument("--points", type=int, default=1440)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--plots", type=int, default=5,
                        help="plots drawn cold (each a different metric)")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from judge.api.app import create_app
    from judge.api.settings import Settings

    with tempfile.TemporaryDirectory() as work:
        database = f"sqlite:///{Path(work) / 'bench.db'}"
        started = time.perf_counter()
        analysis_id = _stored_analysis(database, args.metrics, args.points, args.seed)
        print(f"judged and stored {args.metrics} metrics x {args.points} points a side in "
              f"{time.perf_counter() - started:.1f} s")
        settings = Settings(database_url=database, log_json=False, log_level="WARNING",
                            source_check_interval_seconds=0)
        with TestClient(create_app(settings)) as client:
            page_url = f"/ui/analyses/{analysis_id}"

            def get(url: str) -> Any:
                answer = client.get(url)
                answer.raise_for_status()
                return answer

            page = get(page_url)  # warm-up: templates compiled, imports done
            get(f"/v1/analyses/{analysis_id}")
            assert page.text.count('class="metric-row') == args.metrics
            page_seconds = _time(lambda: get(page_url), args.repeats)
            json_seconds = _time(lambda: get(f"/v1/analyses/{analysis_id}"), args.repeats)
            plots = [f"{page_url}/plots/{i}.svg" for i in range(min(args.plots, args.metrics))]
            get(plots[0])  # matplotlib's import and font cache: once per process
            cold = [_time(lambda url=url: get(url), 1)[0] for url in plots[1:]] or [math.nan]
            cached = _time(lambda: get(plots[0]), args.repeats)
            svg_bytes = len(get(plots[0]).content)

    page_median = statistics.median(page_seconds)
    json_median = statistics.median(json_seconds)
    print(f"page ({len(page.content) / 1000:.0f} kB HTML)      {_summary(page_seconds)}")
    print(f"json (the stored report)  {_summary(json_seconds)}")
    print(f"plot (first, {len(cold)} metrics)  {_summary(cold)}   ({svg_bytes / 1000:.0f} kB SVG)")
    print(f"plot (cached)             {_summary(cached)}")
    print(f"ratio page / json: {page_median / json_median:.2f}")
    verdict = "met" if page_median < TARGET_SECONDS else "NOT met"
    print(f"target: page < {TARGET_SECONDS * 1000:.0f} ms: {verdict} "
          f"({page_median * 1000:.1f} ms median)")
    print(f"all {args.metrics} plots drawn once would take about "
          f"{statistics.median(cold) * args.metrics:.1f} s of one core (lazy, one per image)")


if __name__ == "__main__":
    main()
