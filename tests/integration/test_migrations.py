"""Schema migrations (Alembic, ``judge/api/migrations``) on SQLite and on a real PostgreSQL.

A database made by the release before migrations (its tables as that release's
``create_all`` made them: ``tests/fixtures/schema/previous-release-<database>.sql``), filled
with configs, versions, analyses with reports and series, a sequential run and its polls, is
upgraded by the service's startup path (``Store.create_schema``) and by the documented
``canary-judge db upgrade`` command; every row must read back the same, and the migrated schema
must be the one the store's models describe.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, text

from judge.api.migrations.run import head_revision
from judge.api.store import AnalysisStatus, Store, _Base

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "schema"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "service.md"
T0 = datetime(2024, 3, 4, 10, tzinfo=UTC)
REPORT = {"verdict": "pass", "score": 100.0, "metrics": [{"name": "latency"}]}


def _previous_release(url: str) -> None:
    """Create the previous release's tables and fill them, as that release would have."""
    engine = create_engine(url)
    ddl = (FIXTURES / f"previous-release-{engine.dialect.name}.sql").read_text()
    statements = [part.strip() for part in ddl.split(";")]
    with engine.begin() as connection:
        for statement in statements:
            lines = [line for line in statement.splitlines() if not line.startswith("--")]
            if "".join(lines).strip():
                connection.execute(text("\n".join(lines)))
        tables = MetaData()
        tables.reflect(connection)
        rows: dict[str, list[dict[str, Any]]] = {
            "configs": [{
                "id": "checkout", "name": "checkout", "version": 2, "applications": ["shop"],
                "native": {"name": "checkout", "v": 2}, "original": None,
                "original_format": "native", "created_at": T0, "updated_at": T0,
            }],
            "config_versions": [
                {"config_id": "checkout", "version": version, "name": "checkout",
                 "native": {"name": "checkout", "v": version}, "original": None,
                 "original_format": "native", "created_at": T0}
                for version in (1, 2)
            ],
            "analyses": [
                {"id": "judged", "kind": "native", "status": "succeeded", "progress": 1.0,
                 "progress_detail": {}, "config_id": "checkout", "config_version": 2,
                 "config": {"name": "checkout"}, "request": {"start": T0.isoformat()},
                 "report": REPORT, "error": None, "attempts": 1, "created_at": T0,
                 "started_at": T0, "finished_at": T0 + timedelta(seconds=3)},
                {"id": "interrupted", "kind": "kayenta", "status": "running", "progress": 0.5,
                 "progress_detail": {"metrics_fetched": 1}, "config_id": None,
                 "config_version": None, "config": {"name": "checkout"}, "request": {},
                 "report": None, "error": None, "attempts": 1, "created_at": T0,
                 "started_at": T0, "finished_at": None},
            ],
            "analysis_series": [{"analysis_id": "judged", "metric": "latency",
                                 "series": {"version": 1, "series": {"baseline": [1, 2]}}}],
            "sequential_runs": [{
                "run_id": "shop/checkout/rev1", "kind": "flagger", "config_id": "checkout",
                "config_version": 2, "config": {"name": "checkout"}, "request": {},
                "state": '{"calls": 2}', "status": "continue", "calls": 2, "window_start": T0,
                "last_end": T0 + timedelta(minutes=2), "report": REPORT, "created_at": T0,
                "updated_at": T0 + timedelta(minutes=2),
            }],
            "sequential_run_polls": [
                {"run_id": "shop/checkout/rev1", "call": call, "status": "continue",
                 "last_end": T0 + timedelta(minutes=call), "metrics": [{"name": "latency"}],
                 "created_at": T0 + timedelta(minutes=call)}
                for call in (1, 2)
            ],
        }
        for name, values in rows.items():
            connection.execute(tables.tables[name].insert(), values)
    engine.dispose()


def _check_nothing_lost(store: Store) -> None:
    config = store.get_config("checkout")
    assert (config.version, config.native, config.applications) == (
        2, {"name": "checkout", "v": 2}, ("shop",))
    assert store.config_versions("checkout") == [1, 2]
    assert store.get_config("checkout", 1).native == {"name": "checkout", "v": 1}
    judged = store.get_analysis("judged")
    assert judged.status is AnalysisStatus.SUCCEEDED
    assert judged.report == REPORT and judged.finished_at == T0 + timedelta(seconds=3)
    assert store.get_series("judged") == {
        "version": 1, "metrics": {"latency": {"baseline": [1, 2]}}}
    run = store.get_run("shop/checkout/rev1")
    assert (run.calls, run.state, run.report, run.last_end) == (
        2, '{"calls": 2}', REPORT, T0 + timedelta(minutes=2))
    assert run.poll_end is None  # stored before poll ends were kept: the next poll judges
    assert [poll.call for poll in store.run_polls("shop/checkout/rev1")] == [1, 2]
    # The analysis the old release left running is taken over (it has no lease).
    interrupted = store.get_analysis("interrupted")
    assert (interrupted.status, interrupted.attempts) == (AnalysisStatus.RUNNING, 1)
    assert [a.id for a in store.claim_abandoned("upgraded", 30, limit=10)] == ["interrupted"]


def _schema_matches_the_models(url: str) -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), _Base.metadata)
    engine.dispose()
    assert differences == []


def test_the_previous_releases_database_is_upgraded_with_its_data(database_url: str) -> None:
    _previous_release(database_url)
    store = Store(database_url)
    assert store.schema_revision() is None  # unversioned: made by create_all
    store.create_schema()  # what the service does at startup
    assert store.schema_revision() == head_revision() == "0002"
    _check_nothing_lost(store)
    store.create_schema()  # a second start (or a second replica) changes nothing
    assert store.schema_revision() == "0002"
    assert store.get_config("checkout").version == 2
    store.close()
    _schema_matches_the_models(database_url)


def test_an_empty_database_gets_the_models_schema(database_url: str) -> None:
    store = Store(database_url)
    store.create_schema()
    assert store.schema_revision() == "0002"
    store.close()
    _schema_matches_the_models(database_url)


def _documented_block(marker: str) -> list[str]:
    """The commands of the fenced block right after ``marker`` in docs/service.md."""
    lines = DOCS.read_text().split(marker, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("```"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    return [line for line in lines[start + 1:end] if line.strip() and not line.startswith("#")]


def test_the_documented_upgrade_command_upgrades_an_old_database(tmp_path: Path) -> None:
    """docs/service.md, "Migrations": its commands, as written, on a previous-release file."""
    _previous_release(f"sqlite:///{tmp_path / 'canary-judge.db'}")
    commands = _documented_block("<!-- migrations-example -->")
    assert [shlex.split(c)[:3] for c in commands] == [
        ["canary-judge", "db", "upgrade"], ["canary-judge", "db", "current"]]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CANARY_JUDGE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    statuses = []
    outputs = []
    for command in commands:
        done = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        statuses.append(done.returncode)
        outputs.append(done.stdout.strip())
    assert statuses == [0, 0], outputs
    assert outputs == [
        "sqlite:///canary-judge.db: upgraded from revision none to 0002",
        "sqlite:///canary-judge.db: revision 0002 (head 0002)",
    ]
    store = Store(f"sqlite:///{tmp_path / 'canary-judge.db'}")
    _check_nothing_lost(store)
    store.close()
