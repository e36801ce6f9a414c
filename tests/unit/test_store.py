"""The SQLAlchemy store: config versions, lookups by name, analysis states, resumable work,
claims and leases shared by replicas.

Every test that takes ``store`` runs twice: on a SQLite file and on a real PostgreSQL server
(``database_url`` in ``tests/conftest.py``), with the schema made by the migrations.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, text

from judge.api.store import AnalysisStatus, LeaseLostError, RunPoll, Store, StoredRun
from judge.errors import ConflictError, NotFoundError, StoreUnavailableError


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    created = Store(database_url)
    created.create_schema()
    yield created
    created.close()


def test_config_versions(store: Store) -> None:
    first = store.create_config(name="checkout", native={"v": 1}, applications=["shop"])
    assert first.version == 1
    second = store.update_config(first.id, name="checkout", native={"v": 2}, applications=["shop"])
    assert second.version == 2
    assert store.get_config(first.id).native == {"v": 2}
    assert store.get_config(first.id, 1).native == {"v": 1}
    assert store.config_versions(first.id) == [1, 2]
    with pytest.raises(NotFoundError, match="no version 7"):
        store.get_config(first.id, 7)
    assert store.find_config("checkout").id == first.id
    assert store.find_config(first.id).name == "checkout"
    assert [c.name for c in store.list_configs("shop")] == ["checkout"]
    assert store.list_configs("other") == []
    store.delete_config(first.id)
    with pytest.raises(NotFoundError):
        store.find_config("checkout")
    with pytest.raises(NotFoundError):
        store.config_versions(first.id)


def test_config_ids_are_unique(store: Store) -> None:
    store.create_config(name="a", native={}, config_id="fixed")
    with pytest.raises(ValueError, match="already exists"):
        store.create_config(name="b", native={}, config_id="fixed")


def test_configs_without_applications_belong_to_all(store: Store) -> None:
    store.create_config(name="shared", native={})
    assert [c.name for c in store.list_configs("anything")] == ["shared"]


def test_analysis_lifecycle(store: Store) -> None:
    created = store.create_analysis(kind="native", config={"name": "c"}, request={"k": 1})
    assert created.status is AnalysisStatus.QUEUED
    running = store.mark_running(created.id)
    assert running.status is AnalysisStatus.RUNNING
    assert running.attempts == 1
    store.set_progress(created.id, 0.5, {"metrics_fetched": 2})
    assert store.get_analysis(created.id).progress == 0.5
    assert [a.id for a in store.unfinished_analyses()] == [created.id]
    done = store.mark_succeeded(created.id, {"verdict": "pass"})
    assert done.status is AnalysisStatus.SUCCEEDED
    assert done.progress == 1.0
    assert done.progress_detail == {}  # no stale "metrics_fetched: 2" on a finished analysis
    assert done.finished_at is not None and done.finished_at.tzinfo is not None
    # Progress after the end is ignored (a late writer must not reopen a finished analysis).
    store.set_progress(created.id, 0.1, {})
    assert store.get_analysis(created.id).status is AnalysisStatus.SUCCEEDED
    assert store.unfinished_analyses() == []


def test_requeue_and_fail(store: Store) -> None:
    created = store.create_analysis(kind="kayenta", config={}, request={})
    store.mark_running(created.id)
    requeued = store.requeue(created.id, "resumed after a restart")
    assert requeued.status is AnalysisStatus.QUEUED
    assert requeued.progress_detail == {"note": "resumed after a restart"}
    assert store.mark_running(created.id).attempts == 2
    failed = store.mark_failed(created.id, "boom")
    assert failed.status is AnalysisStatus.FAILED
    assert failed.error == "boom"
    assert [a.id for a in store.list_analyses(status=AnalysisStatus.FAILED)] == [created.id]
    with pytest.raises(NotFoundError):
        store.mark_running("missing")


def test_recent_analyses_newest_first(store: Store) -> None:
    ids = [store.create_analysis(kind="native", config={}, request={}).id for _ in range(3)]
    assert [a.id for a in store.list_analyses(limit=2)] == ids[::-1][:2]


def test_file_database_survives_a_new_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'judge.db'}"
    first = Store(url)
    first.create_schema()
    config = first.create_config(name="kept", native={"x": 1})
    first.close()
    second = Store(url)
    second.create_schema()
    assert second.get_config(config.id).native == {"x": 1}
    second.ping()


def test_in_memory_store_is_safe_across_threads() -> None:
    """The background runner and request threads share the one in-memory connection: without
    serialised sessions this failed with sqlite "cannot commit" / "no more rows available"."""
    store = Store("sqlite://")
    store.create_schema()
    errors: list[str] = []

    def work() -> None:
        try:
            for _ in range(100):
                analysis = store.create_analysis(kind="native", config={}, request={})
                store.mark_running(analysis.id)
                store.set_progress(analysis.id, 0.5, {"metrics_fetched": 1})
                store.mark_succeeded(analysis.id, {"verdict": "pass"})
                store.list_analyses(limit=5)
        except Exception as exc:  # collected: an exception in a thread would be lost
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list_analyses(limit=1000)) == 400
    assert all(a.status is AnalysisStatus.SUCCEEDED for a in store.list_analyses(limit=1000))


def test_writes_wait_for_another_writer_instead_of_failing_at_once(tmp_path: Path) -> None:
    """Every write takes SQLite's write lock before it reads: one that read first (a merge's
    SELECT, then its INSERT) cannot wait for another connection's write lock and failed at
    once with "database is locked", however long the busy timeout (a Flagger sequential poll
    answered 503 with it while a background analysis was writing its progress)."""
    url = f"sqlite:///{tmp_path / 'judge.db'}"
    store = Store(url)
    store.create_schema()
    analysis = store.create_analysis(kind="native", config={}, request={})
    store.save_run(_run(1), previous_calls=0)
    moment = datetime(2024, 3, 4, 10, tzinfo=UTC)
    writes: list[Callable[[], object]] = [
        lambda: store.add_run_poll(RunPoll(run_id="rollout-7", call=1, status="continue",
                                           last_end=moment, metrics=[], created_at=moment)),
        lambda: store.save_series(analysis.id, {"version": 1, "metrics": {"m": {"x": [1]}}}),
    ]
    for write in writes:
        other = sqlite3.connect(tmp_path / "judge.db", isolation_level=None,
                                check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process' writer holds the lock...
        release = threading.Timer(0.3, other.execute, ("COMMIT",))

        def started(*_args: object, release: threading.Timer = release) -> None:
            if not release.is_alive() and not release.finished.is_set():
                release.start()  # ...until this write has begun

        event.listen(store.engine, "before_cursor_execute", started)
        try:
            write()
        finally:
            event.remove(store.engine, "before_cursor_execute", started)
            release.join()
            other.close()
    assert [poll.call for poll in store.run_polls("rollout-7")] == [1]
    assert store.get_series(analysis.id) == {"version": 1, "metrics": {"m": {"x": [1]}}}
    store.close()


def test_a_lock_sqlite_would_not_wait_for_is_not_reported_as_a_timeout(tmp_path: Path) -> None:
    """The error says SQLite gave up at once, not "after waiting 10 s": the report of the
    failure above blamed a writer holding the lock for the whole timeout."""
    store = Store(f"sqlite:///{tmp_path / 'judge.db'}")
    store.create_schema()
    other = sqlite3.connect(tmp_path / "judge.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with (pytest.raises(StoreUnavailableError) as raised, store._unavailable_as_error(),
              store.engine.connect() as connection, connection.begin()):
            connection.execute(text("SELECT count(*) FROM analyses")).all()  # reads, then...
            connection.execute(text("DELETE FROM analyses"))  # ...cannot wait to write
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()
    message = str(raised.value)
    assert "is unavailable: database is locked (after " in message, message
    assert "s, without waiting the 10 s allowed)" in message, message


def _run(calls: int, state: str = "{}") -> StoredRun:
    moment = datetime(2024, 3, 4, 10, tzinfo=UTC)
    return StoredRun(
        run_id="rollout-7", kind="argo", config_id="demo", config_version=1,
        config={"name": "demo"}, request={}, state=state, status="continue", calls=calls,
        window_start=moment, last_end=moment, report=None, created_at=moment, updated_at=moment,
    )


def test_sequential_runs_are_saved_with_a_compare_and_set(store: Store) -> None:
    first = store.save_run(_run(1, '{"calls":1}'), previous_calls=0)
    assert first.calls == 1 and first.window_start.tzinfo is not None
    with pytest.raises(ConflictError):  # the first poll of one run, twice at once
        store.save_run(_run(1), previous_calls=0)
    second = store.save_run(_run(2, '{"calls":2}'), previous_calls=1)
    assert second.state == '{"calls":2}'
    with pytest.raises(ConflictError):  # a poll that read call 1 after call 2 was saved
        store.save_run(_run(2, '{"stale":true}'), previous_calls=1)
    assert store.get_run("rollout-7").state == '{"calls":2}'
    assert [r.run_id for r in store.list_runs()] == ["rollout-7"]
    store.delete_run("rollout-7")
    with pytest.raises(NotFoundError):
        store.get_run("rollout-7")


def test_a_claimed_analysis_is_run_by_one_replica(store: Store) -> None:
    created = store.create_analysis(kind="native", config={}, request={})
    first = store.claim_analysis(created.id, "replica-a", 30)
    assert first is not None and first.attempts == 1 and first.lease_owner == "replica-a"
    assert first.status is AnalysisStatus.RUNNING
    assert store.claim_analysis(created.id, "replica-b", 30) is None  # a valid lease
    assert store.claim_abandoned("replica-b", 30, limit=10) == []
    # Only the holder stores a result.
    with pytest.raises(LeaseLostError, match="replica-b"):
        store.mark_succeeded(created.id, {"verdict": "pass"}, owner="replica-b")
    done = store.mark_succeeded(created.id, {"verdict": "pass"}, owner="replica-a")
    assert done.status is AnalysisStatus.SUCCEEDED and done.lease_owner is None
    assert store.claim_analysis(created.id, "replica-b", 30) is None  # done: nothing to claim
    [attempt] = store.analysis_attempts(created.id)
    assert (attempt.replica_id, attempt.attempt, attempt.outcome) == ("replica-a", 1, "succeeded")


def test_an_expired_lease_is_taken_over(store: Store) -> None:
    created = store.create_analysis(kind="kayenta", config={}, request={})
    assert store.claim_analysis(created.id, "dead", 0.2) is not None
    store.set_progress(created.id, 0.5, {"metrics_fetched": 1}, owner="dead")
    time.sleep(0.3)  # the dead replica renews nothing; its lease runs out
    assert store.renew_leases("other", [created.id], 30) == set()  # not other's to renew
    [taken] = store.claim_abandoned("survivor", 30, limit=10)
    assert (taken.id, taken.lease_owner, taken.attempts) == (created.id, "survivor", 1)
    assert store.renew_leases("dead", [created.id], 30) == set()  # lost: its runner stops
    # The dead replica's late writes change nothing.
    store.set_progress(created.id, 0.9, {"metrics_fetched": 2}, owner="dead")
    assert store.get_analysis(created.id).progress == 0.5
    with pytest.raises(LeaseLostError):
        store.mark_failed(created.id, "late", owner="dead")
    rerun = store.claim_analysis(created.id, "survivor", 30)
    assert rerun is not None and rerun.attempts == 2 and rerun.progress == 0.0
    assert store.renew_leases("survivor", [created.id], 30) == {created.id}
    store.mark_succeeded(created.id, {"verdict": "pass"}, owner="survivor")
    attempts = store.analysis_attempts(created.id)
    assert [(a.replica_id, a.outcome) for a in attempts] == [
        ("dead", None), ("survivor", "succeeded")
    ]


def test_queued_work_without_a_lease_is_taken_over_after_a_lease(store: Store) -> None:
    created = store.create_analysis(kind="native", config={}, request={})
    assert store.claim_abandoned("other", 30, limit=10) == []  # its creator runs it soon
    time.sleep(1.1)
    assert [a.id for a in store.claim_abandoned("other", 1, limit=10)] == [created.id]


def test_released_leases_are_taken_over_at_once(store: Store) -> None:
    ids = [store.create_analysis(kind="native", config={}, request={}).id for _ in range(3)]
    for analysis_id in ids:
        assert store.claim_analysis(analysis_id, "stopping", 30) is not None
    assert store.release_leases("stopping") == 3
    taken = store.claim_abandoned("next", 30, limit=2)
    assert [a.id for a in taken] == ids[:2]  # oldest first, at most the limit
    assert [a.id for a in store.claim_abandoned("next", 30, limit=5)] == ids[2:]


def test_concurrent_claims_give_each_analysis_to_one_replica(store: Store) -> None:
    ids = [store.create_analysis(kind="native", config={}, request={}).id for _ in range(20)]
    won: dict[str, list[str]] = {}
    errors: list[str] = []

    def claim(replica: str) -> None:
        try:
            for analysis_id in ids:
                if store.claim_analysis(analysis_id, replica, 30) is not None:
                    won.setdefault(analysis_id, []).append(replica)
        except Exception as exc:  # collected: an exception in a thread would be lost
            errors.append(repr(exc))

    threads = [threading.Thread(target=claim, args=(f"replica-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(won) == sorted(ids)
    assert all(len(replicas) == 1 for replicas in won.values()), won


def test_a_run_is_polled_under_one_replicas_lease(store: Store) -> None:
    assert store.claim_run("rollout-7", "replica-a", 30)  # not stored yet: the insert guards
    store.save_run(_run(1), previous_calls=0)
    assert store.claim_run("rollout-7", "replica-a", 30)
    assert not store.claim_run("rollout-7", "replica-b", 30)
    store.release_run("rollout-7", "replica-a")
    assert store.claim_run("rollout-7", "replica-b", 30)
    store.save_run(_run(2), previous_calls=1)  # a saved poll lets the run go
    assert store.claim_run("rollout-7", "replica-a", 30)


def test_a_stored_answer_covers_polls_up_to_its_window_end() -> None:
    end = datetime(2024, 3, 4, 11, tzinfo=UTC)
    run = StoredRun(**{**vars(_run(1)), "poll_end": end, "poll_final": False})
    assert run.answers(end, final=False)
    assert run.answers(datetime(2024, 3, 4, 10, 30, tzinfo=UTC), final=False)
    assert not run.answers(datetime(2024, 3, 4, 11, 1, tzinfo=UTC), final=False)
    assert not run.answers(end, final=True)  # a final poll was not made yet
    assert not _run(1).answers(end, final=False)  # stored before poll ends were kept


def test_series_round_trip_through_the_fast_encoder(store: Store) -> None:
    """Series documents are written with orjson (``_json_dumps``): what comes back is what
    went in, nulls (NaN points), untimed sides, error entries and odd names included; a
    document orjson refuses (an int key) is written by the standard library instead."""
    analysis = store.create_analysis(kind="native", config={}, request={})
    series = {"version": 1, "metrics": {
        "p99 latency \u00b5s": {"baseline": {"t": [1714564800.0, 1714564860.5], "v": [0.1, None]},
                                "canary": {"t": None, "v": [1e-300, 1.7976931348623157e308]}},
        'errors{code="5xx"}': {"error": "source 'prometheus' (http): HTTP 503"},
        "odd": {"baseline": {"t": [], "v": []}, "canary": {"t": [0.0], "v": [-0.0]},
                "extra": {7: "int key"}},
    }}
    store.save_series(analysis.id, series)
    stored = store.get_series(analysis.id)
    assert stored is not None
    assert stored["metrics"]["odd"]["extra"] == {"7": "int key"}  # as json.dumps writes it
    stored["metrics"]["odd"]["extra"] = {7: "int key"}
    assert stored == series
    assert store.get_series(analysis.id, 'errors{code="5xx"}') == {
        "version": 1, "metrics": {'errors{code="5xx"}': series["metrics"]['errors{code="5xx"}']}}


def test_other_json_columns_keep_the_standard_encoder() -> None:
    """Only series documents take the orjson path: every other JSON value is written as
    ``json.dumps`` writes it (NaN included), byte for byte."""
    import json

    from judge.api.store import _json_dumps, _SeriesDocument

    report = {"score": float("nan"), "metrics": [{"name": "m", "mean": 1.5}], "\u00e9": None}
    assert _json_dumps(report) == json.dumps(report)
    assert _json_dumps(_SeriesDocument(version=1, series={"v": [1.5, None]})) == (
        '{"version":1,"series":{"v":[1.5,null]}}')
