"""The report pages in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) against the real server process, which judged real
analyses from a real Prometheus and from the demo source.

The browser logs in through the token form, opens the list, a failing analysis (the failing
metric must come first, the HTML in a metric name must show as text), a Prometheus analysis and
a sequential run, and checks that every plot image rendered and that each plot is an SVG with
drawn paths. Screenshots of each page go to the test's ``tmp_path / "screenshots"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.support.prometheus import Sample, running_prometheus
from tests.support.requires import require_binary
from tests.support.service import ServiceProcess

pytestmark = [pytest.mark.prometheus, pytest.mark.browser]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MIXED = yaml.safe_load((FIXTURES / "configs" / "report-mixed.yaml").read_text())
TOKEN = "browser-judge-token"
# Fixed times, in the past: Prometheus serves the backfilled samples, the demo source derives
# its series from the window; nothing depends on the wall clock.
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
WINDOW_MINUTES = 60
WINDOW = {"start": T0.isoformat(), "end": (T0 + timedelta(minutes=WINDOW_MINUTES)).isoformat()}
PROMETHEUS_CONFIG = {
    "name": "checkout-prometheus",
    "mode": "kayenta",
    "thresholds": {"pass": 95, "marginal": 75},
    "groups": {"latency": 50, "errors": 50},
    "metrics": [
        {"name": "latency", "groups": ["latency"], "direction": "increase", "unit": "ms",
         "query": {"type": "prometheus",
                   "promql": 'avg(app_latency_ms{app="checkout",version="${scope}"})'},
         "test": {"kind": "mann_whitney", "effect_size": {"allowed_increase": 1.1}}},
        {"name": "error ratio", "groups": ["errors"], "direction": "increase",
         "query": {"type": "prometheus",
                   "promql": 'avg(app_error_ratio{app="checkout",version="${scope}"})'},
         "test": {"kind": "mann_whitney", "effect_size": {"allowed_increase": 1.2}}},
    ],
}


def _samples() -> list[Sample]:
    rng = np.random.default_rng(20261202)
    samples = []
    for version, latency, errors in (("v1", 100.0, 0.01), ("v2-bad", 140.0, 0.05)):
        for k in range(WINDOW_MINUTES + 5):
            at = (T0 + timedelta(minutes=k)).timestamp()
            labels = {"version": version, "app": "checkout"}
            samples.append(Sample("app_latency_ms", labels, at, latency + rng.normal(0, 4)))
            samples.append(Sample("app_error_ratio", labels, at,
                                  max(0.0, errors + rng.normal(0, 0.002))))
    return samples


def _selenium() -> Any:
    try:
        from selenium import webdriver
    except ImportError:
        message = "selenium is not installed (the dev extra installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return webdriver


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_prometheus(_samples(), tmp_path_factory.mktemp("prometheus")) as prometheus:
        work = tmp_path_factory.mktemp("service")
        env = {
            "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{work / 'pages.db'}",
            "CANARY_JUDGE_PROMETHEUS_URL": prometheus.url,
            "CANARY_JUDGE_API_TOKENS": f"judge:{TOKEN}",
            "CANARY_JUDGE_SOURCE_CHECK_INTERVAL_SECONDS": "0",
            "CANARY_JUDGE_LOG_JSON": "false",
        }
        with ServiceProcess(env, work) as server:
            yield server


@pytest.fixture(scope="module")
def analyses(service: ServiceProcess) -> dict[str, Any]:
    """The answers of the analyses the browser looks at."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
        def judge(**body: Any) -> Any:
            answer = client.post("/argo/v1/judge", json={"baseline": "stable", **WINDOW, **body})
            assert answer.status_code == 200, answer.text
            return answer.json()

        found = {
            "mixed": judge(config=MIXED, canary="canary-bad"),
            "prometheus": judge(config=PROMETHEUS_CONFIG, baseline="v1", canary="v2-bad",
                                source="prometheus"),
        }
        for minutes in (20, 40, 60):
            found["run"] = judge(config="demo", canary="canary-bad", run_id="checkout/42",
                                 start=WINDOW["start"],
                                 end=(T0 + timedelta(minutes=minutes)).isoformat())
    assert found["mixed"]["verdict"] == "fail" and found["mixed"]["failed_metrics"] == ["errors"]
    assert found["prometheus"]["verdict"] == "fail"
    return found


@pytest.fixture(scope="module")
def browser(service: ServiceProcess) -> Iterator[Any]:
    chromium = require_binary("chromium")
    driver_path = require_binary("chromedriver")
    webdriver = _selenium()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: Any, directory: Path, name: str) -> Path:
    """The whole page (the window grown to the document's height), as a PNG."""
    directory.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(int(height), 600), 12000))
    driver.execute_script("window.scrollTo(0, 0)")
    path = directory / f"{name}.png"
    assert driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    assert path.stat().st_size > 10_000
    return path


def _plots_rendered(driver: Any) -> list[str]:
    """Scroll to each plot until the browser decoded it (lazy images); their addresses."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    images = driver.find_elements(By.CSS_SELECTOR, "img.plot")
    for image in images:
        driver.execute_script("arguments[0].scrollIntoView()", image)
        WebDriverWait(driver, 60).until(lambda _d, img=image: driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", img))
    return [image.get_attribute("src") for image in images]


def _each_plot_is_a_drawn_svg(driver: Any, sources: list[str]) -> None:
    from selenium.webdriver.common.by import By

    for source in sources:
        driver.get(source)
        root = driver.find_element(By.CSS_SELECTOR, "svg")
        assert root.tag_name == "svg"
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg path")) > 20, source


def _metric_rows(driver: Any) -> list[tuple[str, str]]:
    from selenium.webdriver.common.by import By

    return [(row.get_attribute("data-metric"), row.get_attribute("data-classification"))
            for row in driver.find_elements(By.CSS_SELECTOR, "tr.metric-row")]


def test_the_pages_of_real_analyses_in_chromium(
    browser: Any, service: ServiceProcess, analyses: dict[str, Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    shots = tmp_path / "screenshots"
    # Not logged in: the token form (a 401), then the list.
    browser.get(f"{service.url}/ui/analyses")
    assert browser.find_element(By.CSS_SELECTOR, "h1").text == "Log in"
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    login_page = browser.find_element(By.CSS_SELECTOR, "h1")
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    # A click does not wait for the page it leads to (get() does): wait for the login page to
    # go, or a loaded machine reads the old page or none at all.
    WebDriverWait(browser, 60).until(expected_conditions.staleness_of(login_page))
    WebDriverWait(browser, 60).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, "h1"))
    assert browser.find_element(By.CSS_SELECTOR, "h1").text == "Analyses"
    rows = browser.find_elements(By.CSS_SELECTOR, "#list tbody tr[data-id]")
    assert len(rows) == 2  # the run's polls are runs, not analyses
    _screenshot(browser, shots, "analyses")

    # The failing analysis: verdict, the failing metric first, the HTML name as text.
    browser.get(analyses["mixed"]["report_url"])
    verdict = browser.find_element(By.ID, "verdict")
    assert verdict.text.startswith("FAIL") and "score 70" in verdict.text
    metrics = _metric_rows(browser)
    assert metrics[0] == ("errors", "high")
    assert {name for name, _ in metrics} == {m["name"] for m in MIXED["metrics"]}
    assert browser.find_elements(By.CSS_SELECTOR, "script") == []
    assert MIXED["metrics"][0]["name"] in browser.find_element(By.ID, "metrics").text
    sources = _plots_rendered(browser)
    assert len(sources) == 4
    _screenshot(browser, shots, "analysis-failing")
    _each_plot_is_a_drawn_svg(browser, sources)

    # An analysis of real Prometheus data.
    browser.get(analyses["prometheus"]["report_url"])
    assert browser.find_element(By.ID, "verdict").text.startswith("FAIL")
    assert [name for name, _ in _metric_rows(browser)] == ["latency", "error ratio"]
    sources = _plots_rendered(browser)
    assert len(sources) == 2
    _screenshot(browser, shots, "analysis-prometheus")
    _each_plot_is_a_drawn_svg(browser, sources)

    # A sequential run: its polls and the evidence over them.
    browser.get(analyses["run"]["report_url"])
    polls = browser.find_elements(By.CSS_SELECTOR, "#polls tbody tr")
    assert len(polls) == 3
    assert browser.find_element(By.ID, "status").text == analyses["run"]["status"]
    sources = _plots_rendered(browser)
    assert len(sources) == len(_metric_rows(browser)) > 0
    _screenshot(browser, shots, "run")
    _each_plot_is_a_drawn_svg(browser, sources)

    # The config page of a stored config, and the way back to the list.
    browser.get(f"{service.url}/ui/configs/demo")
    assert "latency" in browser.find_element(By.ID, "config").text
    _screenshot(browser, shots, "config")
    assert sorted(p.name for p in shots.iterdir()) == [
        "analyses.png", "analysis-failing.png", "analysis-prometheus.png", "config.png", "run.png",
    ]
