"""``judge.api.workers`` without worker processes (those are tests/integration/
test_judge_workers.py): the in-process pool answers as the judge does, and errors raised in a
worker reach the service as an exception of the same kind and message."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading

import pytest

from judge.api.workers import JudgePool, judge_to_json, portable
from judge.config import CanaryConfig
from judge.errors import ConfigError, DataError, JudgeError, UnknownMetricError
from judge.judging import judge

CONFIG = CanaryConfig.from_dict({"name": "pool", "metrics": [
    {"name": "latency", "direction": "increase"}, {"name": "errors", "direction": "increase"}]})
BASELINE = {"latency": [float(100 + k % 7) for k in range(40)],
            "errors": [float(k % 3) for k in range(40)]}
CANARY = {"latency": [float(130 + k % 7) for k in range(40)],
          "errors": [float(k % 3) for k in range(40)]}


def test_in_process_pool_answers_the_judges_report_as_json() -> None:
    native = json.dumps(CONFIG.to_dict())
    judged = asyncio.run(JudgePool(0).judge(native, BASELINE, CANARY, (90.0, 50.0)))
    expected = judge(CONFIG, BASELINE, CANARY, thresholds={"pass": 90, "marginal": 50})
    assert json.loads(judged.body) == json.loads(json.dumps(expected.to_dict()))
    # One metric of two fails: score 50, marginal under these thresholds (fail under the
    # config's own 95/75).
    assert judged.verdict == expected.verdict.value == "marginal"
    assert judged.seconds > 0
    assert JudgePool(0).start() == []


def test_the_workers_json_is_the_standard_librarys_even_without_data() -> None:
    """The worker writes the report with orjson: the same JSON document as the standard
    library's encoder, numbers to the last digit, where a metric without data leaves None
    (not NaN) for its statistics and the score is a float with many digits."""
    baseline = {**BASELINE, "errors": []}
    thresholds = {"pass": 90.0, "marginal": 33.3}
    expected = judge(CONFIG, baseline, CANARY, thresholds=thresholds)
    judged = judge_to_json(json.dumps(CONFIG.to_dict()), baseline, CANARY, (90.0, 33.3))
    assert json.loads(judged.body) == json.loads(json.dumps(expected.to_dict(), allow_nan=False))
    nodata = next(m for m in json.loads(judged.body)["metrics"] if m["name"] == "errors")
    assert nodata["classification"] == "nodata" and None in nodata["baseline"].values()


def test_pool_size_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="judge_workers must be >= 0, got -1"):
        JudgePool(-1)


def test_a_picklable_error_crosses_as_it_is() -> None:
    error = ConfigError("metrics.0.name: empty", "metrics")
    crossed = pickle.loads(pickle.dumps(portable(error)))
    assert type(crossed) is ConfigError
    assert str(crossed) == "metrics.0.name: empty" and crossed.field == "metrics"


def test_an_error_that_cannot_be_rebuilt_keeps_its_message_and_kind() -> None:
    # Whether plain pickle rebuilds an error whose constructor takes other arguments than its
    # args depends on the process (tblib, which Dask's distributed installs, teaches pickle to):
    # an attribute no pickle can carry (a lock) makes the case certain.
    error = _LockedDataError("no series for 'latncy'")
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(error))
    crossed = pickle.loads(pickle.dumps(portable(error)))
    assert type(crossed) is DataError and str(crossed) == str(error)
    assert crossed.metric == "latncy" and not hasattr(crossed, "lock")  # what crosses, kept
    unknown = UnknownMetricError("latncy", ["latency", "errors"], "the report")
    crossed_unknown = pickle.loads(pickle.dumps(portable(unknown)))
    assert isinstance(crossed_unknown, JudgeError) and str(crossed_unknown) == str(unknown)
    assert isinstance(pickle.loads(pickle.dumps(portable(DataError("x")))), DataError)
    other = portable(_UnpicklableError("a", "b"))
    assert isinstance(other, RuntimeError) and str(other) == "_UnpicklableError: ('a', 'b')"


def test_a_worker_raises_what_the_judge_raises() -> None:
    native = json.dumps({**CONFIG.to_dict(), "metrics": [
        *CONFIG.to_dict()["metrics"], {"name": "absent", "direction": "increase"}]})
    with pytest.raises(DataError, match="absent"):
        judge_to_json(native, BASELINE, CANARY, None)


class _UnpicklableError(Exception):
    def __init__(self, first: str, second: str) -> None:
        super().__init__((first, second))
        self.lock = threading.Lock()


class _LockedDataError(DataError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.metric = "latncy"
        self.lock = threading.Lock()


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    """``judge.report.json_bytes`` (the worker's and the stored series' encoder): orjson
    refuses a key that is not a string and an int beyond 64 bits; those documents are
    written as ``json.dumps`` writes them, not lost to an error."""
    from judge.report import json_bytes

    refused = {"details": {7: "int key", "big": 2**70}, "score": 0.1 + 0.2}
    assert json_bytes(refused) == json.dumps(refused).encode()
    plain = {"score": 0.1 + 0.2, "metrics": [{"name": "m", "mean": None}]}
    assert json.loads(json_bytes(plain)) == plain
    assert json_bytes(plain) == (
        b'{"score":0.30000000000000004,"metrics":[{"name":"m","mean":null}]}')
