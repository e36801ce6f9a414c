"""The ``canary-judge`` command.

Exit codes, so shell pipelines can act on a judgment:

====  ==========================================================================
0     verdict ``pass``
1     verdict ``marginal``
2     verdict ``fail``
3     bad input: a missing or unreadable file, an invalid config (each problem is
      printed with its path, e.g. ``metrics.0.direction``), a wrong option
4     no verdict (``error``): a metric's data could not be fetched (not reached by
      ``judge``, whose data is in files; kept for commands that fetch)
====  ==========================================================================

Click's own usage errors would exit with 2, which means ``fail`` here, so they are re-coded
to 3 as well. A reader that stops early (``canary-judge judge ... | head``) does not change the
exit code (click would exit 1 on the broken pipe).

Subcommands live on :data:`app` (``judge``, ``report``, ``serve``) and :data:`config_app`
(``config validate``, ``config import-kayenta``, ``config export-kayenta``); another command
is one more ``@app.command()`` function.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from judge.errors import ConfigError
from judge.report import Classification, MetricResult, Report, Verdict

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import ValidationError

    from judge.api.settings import Settings
    from judge.api.store import Store
    from judge.config import CanaryConfig, ScoreThresholds

# pandas, pydantic's models and the judges are imported by the commands that use them, so
# `canary-judge --help` (and a shell completing it) does not wait for them.

__all__ = ["EXIT_BAD_INPUT", "EXIT_CODES", "app", "config_app", "db_app"]

EXIT_CODES: Mapping[Verdict, int] = {
    Verdict.PASS: 0, Verdict.MARGINAL: 1, Verdict.FAIL: 2, Verdict.ERROR: 4,
}
"""Exit code of ``canary-judge judge`` per verdict."""
EXIT_BAD_INPUT = 3
"""Exit code for input that could not be judged (files, configs, options, settings)."""
SERVER_INSTALL = "canary-judge[server]"
"""What ``canary-judge serve`` needs installed (the ``server`` extra)."""

T = TypeVar("T")


def _usage_error_types() -> tuple[type[Exception], ...]:
    """Click's usage-error classes: typer's vendored copy (typer >= 0.20) and/or click's."""
    found: list[type[Exception]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).UsageError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_USAGE_ERRORS = _usage_error_types()


class _BadInputGroup(TyperGroup):
    """Re-codes click's usage errors (exit 2 in click) to :data:`EXIT_BAD_INPUT`, since 2
    means a failed canary here."""

    @staticmethod
    def _recode(run: Callable[[], T]) -> T:
        try:
            return run()
        except _USAGE_ERRORS as exc:
            exc.exit_code = EXIT_BAD_INPUT  # type: ignore[attr-defined]
            raise

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        return self._recode(
            lambda: super(_BadInputGroup, self).make_context(info_name, args, parent, **extra)
        )

    def invoke(self, ctx: Any) -> Any:
        return self._recode(lambda: super(_BadInputGroup, self).invoke(ctx))


app = typer.Typer(
    name="canary-judge",
    cls=_BadInputGroup,
    help="Is the canary as good as the baseline? Judge metrics, check and convert configs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(
    cls=_BadInputGroup,
    help="Check canary configs and convert Kayenta configs.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
db_app = typer.Typer(
    cls=_BadInputGroup,
    help="The service's database: apply schema migrations, show the schema's revision.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _bad_input(message: str, problems: Sequence[str] = ()) -> NoReturn:
    console = _stderr()
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    for problem in problems:
        console.print(f"  {problem}", markup=False)
    raise typer.Exit(EXIT_BAD_INPUT)


@contextmanager
def _stdout() -> Iterator[None]:
    """Output to stdout, which a reader may close early (``| head``): the command then ends
    with the exit code it was going to give (a verdict's), where click would exit 1."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    # Python's documented recipe (signal docs, "Note on SIGPIPE"): point stdout at devnull so
    # the interpreter's last flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class _StdoutConsole(Console):
    """rich's console for stdout, without its exit 1 on a broken pipe (see :func:`_stdout`)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _silence_stdout()


def _validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problems.append(f"{path}: {error['msg']}")
    return problems


@contextmanager
def _import_warnings() -> Iterator[None]:
    """Fields a Kayenta import dropped (Kayenta ignores them too), as ``warning:`` lines on
    stderr."""
    from judge.config import KayentaIgnoredFieldWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KayentaIgnoredFieldWarning)
        yield
    console = _stderr()
    for warning in caught:
        if issubclass(warning.category, KayentaIgnoredFieldWarning):
            console.print(f"[bold yellow]warning:[/] {escape(str(warning.message))}")
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)


def _load_config(path: Path) -> CanaryConfig:
    from pydantic import ValidationError

    from judge.config import CanaryConfig
    from judge.judging import validate_config

    try:
        text = path.read_text()
    except OSError as exc:
        _bad_input(f"cannot read config {str(path)!r}: {exc.strerror or exc}")
    try:
        # validate_config also checks every metric's test exists in the config's mode.
        with _import_warnings():
            return validate_config(CanaryConfig.parse_text(text))
    except ValidationError as exc:
        _bad_input(f"invalid config {str(path)!r}:", _validation_problems(exc))
    except (yaml.YAMLError, json.JSONDecodeError, ConfigError) as exc:
        _bad_input(f"cannot parse config {str(path)!r}: {exc}")


def _read_series(path: Path, side: str) -> pd.DataFrame | dict[str, Any]:
    """A baseline or canary file: CSV (a column per metric, other columns such as a timestamp
    are ignored), Parquet, or JSON (``{metric: [values]}`` or a list of records)."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".json":
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict) and all(isinstance(v, list) for v in loaded.values()):
                return loaded
            if isinstance(loaded, list) and all(isinstance(r, dict) for r in loaded):
                return pd.DataFrame.from_records(loaded)
            _bad_input(
                f"{side} file {str(path)!r}: JSON must be {{metric: [values]}} or a list of records"
            )
    except FileNotFoundError:
        _bad_input(f"{side} file {str(path)!r} does not exist")
    except (OSError, ValueError, ImportError, pd.errors.ParserError) as exc:
        _bad_input(f"cannot read {side} file {str(path)!r}: {exc}")
    _bad_input(
        f"{side} file {str(path)!r}: unknown format {suffix or '(no extension)'!r}; "
        "use .csv, .parquet or .json"
    )


def _number(value: float, *, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


_STYLES = {
    Classification.PASS: "green",
    Classification.HIGH: "red",
    Classification.LOW: "red",
    Classification.NODATA_FAIL: "red",
    Classification.ERROR: "red",
    Classification.NODATA: "yellow",
}
_VERDICT_STYLES = {
    Verdict.PASS: "bold green",
    Verdict.MARGINAL: "bold yellow",
    Verdict.FAIL: "bold red",
    Verdict.ERROR: "bold magenta",
}


def _side(result: MetricResult, side: str) -> str:
    summary = result.baseline if side == "baseline" else result.canary
    if summary.count == 0:
        return "no data"
    return f"{_number(summary.mean)} (n={summary.count})"


def _shift(result: MetricResult) -> str:
    if not math.isfinite(result.estimate):
        return "-"
    if math.isfinite(result.low) and math.isfinite(result.high):
        return (
            f"{_number(result.estimate, signed=True)} "
            f"[{_number(result.low, signed=True)}, {_number(result.high, signed=True)}]"
        )
    return _number(result.estimate, signed=True)


def _print_table(report: Report) -> None:
    console = _StdoutConsole(highlight=False, soft_wrap=False)
    style = _VERDICT_STYLES[report.verdict]
    console.print(
        f"[{style}]{report.verdict.value.upper()}[/]  score {report.score:g}  "
        f"(pass >= {report.pass_threshold:g}, marginal >= {report.marginal_threshold:g})  "
        f"config {report.config_name!r}, mode {report.mode}"
    )
    console.print(report.reason, markup=False)
    table = Table(show_lines=False, expand=False)
    for column in ("metric", "result", "baseline mean", "canary mean", "shift [CI]", "effect"):
        table.add_column(column, overflow="fold")
    for result in report.metrics:
        label = result.classification.value
        if result.muted:
            label += " (muted)"
        if result.critical_failure:
            label += " (critical)"
        table.add_row(
            escape(result.name),
            f"[{_STYLES[result.classification]}]{label}[/]",
            _side(result, "baseline"),
            _side(result, "canary"),
            _shift(result),
            _number(result.effect_size),
        )
    console.print(table)
    # Reasons are sentences: printed in full under the table, not folded into a column.
    for result in report.metrics:
        console.print(f"[bold]{escape(result.name)}[/]: ", end="")
        console.print(result.reason, markup=False, soft_wrap=True)
    groups = Table(title="groups")
    for column in ("group", "score", "weight", "counts"):
        groups.add_column(column)
    for group in report.groups:
        counts = ", ".join(f"{k} {v}" for k, v in group.counts.items() if v)
        groups.add_row(escape(group.name), f"{group.score:.4g}", f"{group.weight:.4g}", counts)
    console.print(groups)


@app.command("judge")
def judge_command(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Canary config (YAML or JSON, native or Kayenta)."),
    ],
    baseline: Annotated[Path, typer.Option(help="Baseline data: .csv, .parquet or .json.")],
    canary: Annotated[Path, typer.Option(help="Canary data: .csv, .parquet or .json.")],
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = (
        OutputFormat.TABLE
    ),
    pass_threshold: Annotated[
        float | None, typer.Option("--pass", help="Override the config's pass threshold (0-100).")
    ] = None,
    marginal_threshold: Annotated[
        float | None,
        typer.Option("--marginal", help="Override the config's marginal threshold (0-100)."),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the report page (one self-contained file)."),
    ] = None,
) -> None:
    """Judge a canary against its baseline (exit 0 pass, 1 marginal, 2 fail, 3 bad input)."""
    from pydantic import ValidationError

    from judge.judging import judge

    canary_config = _load_config(config)
    thresholds: ScoreThresholds | None = None
    if pass_threshold is not None or marginal_threshold is not None:
        try:
            thresholds = canary_config.thresholds.replaced(pass_threshold, marginal_threshold)
        except ValidationError as exc:
            _bad_input("invalid thresholds:", _validation_problems(exc))
    baseline_data = _read_series(baseline, "baseline")
    canary_data = _read_series(canary, "canary")
    report = judge(canary_config, baseline_data, canary_data, thresholds=thresholds)
    if html is not None:
        from judge.judging import inputs_from_tables
        from judge.pages.render import Subject, standalone_page
        from judge.pages.series import inputs_json

        subject = Subject(
            kind="judgment", id="", title=f"{canary_config.name}: {canary.name} vs {baseline.name}",
            status="judged", facts=(("baseline", str(baseline)), ("canary", str(canary))),
        )
        series = inputs_json(inputs_from_tables(canary_config, baseline_data, canary_data))
        _write_page(html, standalone_page(subject, report.to_dict(),
                                          config=canary_config.to_dict(), series=series))
    with _stdout():
        if output is OutputFormat.JSON:
            typer.echo(json.dumps(report.to_dict(), indent=2, allow_nan=False))
        else:
            _print_table(report)
    raise typer.Exit(EXIT_CODES[report.verdict])


def _write_page(path: Path, page: str) -> None:
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        _bad_input(f"cannot write {str(path)!r}: {exc.strerror or exc}")
    _stderr().print(f"report page written to {escape(str(path))}")


@app.command("report")
def report_command(
    analysis_id: Annotated[
        str, typer.Argument(help="An analysis id (or a sequential run id) in the store.")
    ],
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write the report page (one self-contained file)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="The service's database (default: CANARY_JUDGE_DATABASE_URL, "
                          "else sqlite:///./canary-judge.db)."),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = (
        OutputFormat.TABLE
    ),
) -> None:
    """Print a stored analysis' report (as the service keeps it), or write its page with
    ``--html``. Exit codes as ``judge``: 0 pass, 1 marginal, 2 fail, 4 no verdict; 3 when the
    id is unknown."""
    import os

    from judge.api.store import Store
    from judge.errors import NotFoundError
    from judge.pages.render import Subject, standalone_page
    from judge.pages.series import state_json

    series: dict[str, Any] | None
    url = database_url or os.environ.get("CANARY_JUDGE_DATABASE_URL",
                                         "sqlite:///./canary-judge.db")
    store = Store(url)
    try:
        store.create_schema()
        try:
            analysis = store.get_analysis(analysis_id)
        except NotFoundError:
            try:
                run = store.get_run(analysis_id)
            except NotFoundError:
                _bad_input(f"no analysis or sequential run with id {analysis_id!r} in {url}")
            report, config = run.report, run.config
            subject = Subject(kind="run", id=run.run_id, title=f"run {run.run_id}",
                              status=run.status, facts=(("polls", str(run.calls)),))
            series = state_json(run.state)
            polls = [{"call": p.call, "status": p.status, "last_end": p.last_end,
                      "created_at": p.created_at, "metrics": p.metrics}
                     for p in store.run_polls(run.run_id)]
        else:
            report, config = analysis.report, analysis.config
            subject = Subject(kind="analysis", id=analysis.id,
                              title=f"{config.get('name', 'analysis')}: analysis {analysis.id}",
                              status=analysis.status.value,
                              facts=(("door", analysis.kind),
                                     ("created", analysis.created_at.isoformat())),
                              error=analysis.error)
            series, polls = store.get_series(analysis.id), []
    finally:
        store.close()
    if report is None:
        _bad_input(f"{analysis_id!r} has no report yet (status {subject.status})")
    verdict = Verdict(report.get("verdict", "error"))
    if html is not None:
        _write_page(html, standalone_page(subject, report, config=config, series=series,
                                          polls=polls))
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(report, indent=2))
    else:
        console = Console(highlight=False, soft_wrap=True)
        score = report.get("score")
        console.print(f"[bold]{escape(subject.title)}[/]: {verdict.value.upper()}"
                      + (f" (score {score:g})" if isinstance(score, int | float) else ""))
        console.print(escape(str(report.get("reason", ""))))
        for metric in report.get("metrics") or ():
            console.print(f"  {escape(str(metric.get('name')))}: "
                          f"{escape(str(metric.get('classification')))}: "
                          f"{escape(str(metric.get('reason', '')))}")
    raise typer.Exit(EXIT_CODES[verdict])


@config_app.command("validate")
def validate_command(
    path: Annotated[Path, typer.Argument(help="Config file (YAML or JSON, native or Kayenta).")],
) -> None:
    """Check a config; print every problem with its path (exit 3) or a summary (exit 0)."""
    config = _load_config(path)
    groups = sorted({g for m in config.metrics for g in m.groups})
    with _stdout():
        typer.echo(
            f"OK: {config.name!r}, mode {config.mode.value}, {len(config.metrics)} metric(s), "
            f"groups {', '.join(groups)}, pass {config.thresholds.pass_:g}, "
            f"marginal {config.thresholds.marginal:g}"
        )


@config_app.command("import-kayenta")
def import_kayenta_command(
    path: Annotated[Path, typer.Argument(help="A Kayenta canary config (JSON).")],
) -> None:
    """Print a Kayenta canary config as a native YAML config (mode: kayenta)."""
    from pydantic import ValidationError

    from judge.config import config_from_kayenta

    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        _bad_input(f"cannot read {str(path)!r}: {exc.strerror or exc}")
    except json.JSONDecodeError as exc:
        _bad_input(f"{str(path)!r} is not JSON: {exc}")
    try:
        with _import_warnings():
            config = config_from_kayenta(raw)
    except ValidationError as exc:
        _bad_input(f"invalid Kayenta config {str(path)!r}:", _validation_problems(exc))
    with _stdout():
        typer.echo(yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True),
                   nl=False)


@config_app.command("export-kayenta")
def export_kayenta_command(
    path: Annotated[Path, typer.Argument(help="A config (native or Kayenta).")],
) -> None:
    """Print a config as the JSON Kayenta stores."""
    from judge.config import config_to_kayenta

    config = _load_config(path)
    try:
        exported = config_to_kayenta(config)
    except ConfigError as exc:
        _bad_input(f"cannot export {str(path)!r} to Kayenta: {exc}")
    with _stdout():
        typer.echo(json.dumps(exported, indent=2))


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    settings: Annotated[
        Path | None,
        typer.Option(help="Settings file (YAML or JSON); sets CANARY_JUDGE_SETTINGS_FILE."),
    ] = None,
) -> None:
    """Run the HTTP service (see docs/service.md); with no settings: SQLite + demo source.
    Needs the ``server`` extra (``pip install 'canary-judge[server]'``)."""
    try:
        import uvicorn

        from judge.api.app import create_app
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] in ("judge", "metricsources"):
            raise  # a bug of ours, not a missing extra
        _bad_input(f"the service needs the 'server' extra ({exc.name} is not installed): "
                   f"pip install '{SERVER_INSTALL}'")

    # Read here, so a wrong setting is one line naming it (not a traceback from the server).
    service_settings = _service_settings(settings)
    uvicorn.run(
        create_app(service_settings),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=True,
    )


def _service_settings(settings_file: Path | None) -> Settings:
    """The service's settings (environment, and ``settings_file`` if given); a wrong one is one
    line naming it."""
    from pydantic import ValidationError

    from judge.api.settings import Settings

    if settings_file is not None:
        if not settings_file.is_file():
            _bad_input(f"settings file {str(settings_file)!r} does not exist")
        os.environ["CANARY_JUDGE_SETTINGS_FILE"] = str(settings_file.resolve())
    try:
        return Settings()
    except ValidationError as exc:
        problems = (
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            if error["loc"] else error["msg"]
            for error in exc.errors(include_url=False)
        )
        _bad_input(f"invalid settings: {'; '.join(problems)}")
    except ValueError as exc:  # the settings file: unreadable, not YAML, not a mapping
        _bad_input(str(exc))


_DATABASE_URL_HELP = ("SQLAlchemy URL of the database; default: the service's "
                      "(CANARY_JUDGE_DATABASE_URL, or the settings file's database_url).")


def _open_store(database_url: str | None, settings_file: Path | None) -> Store:
    try:
        from judge.api.store import Store
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] in ("judge", "metricsources"):
            raise
        _bad_input(f"the database commands need the 'server' extra ({exc.name} is not "
                   f"installed): pip install '{SERVER_INSTALL}'")
    if database_url is None:
        settings = _service_settings(settings_file)
        return Store(settings.database_url, timeout_seconds=settings.database_timeout_seconds)
    return Store(database_url)


@db_app.command("upgrade")
def db_upgrade_command(
    database_url: Annotated[str | None, typer.Option(help=_DATABASE_URL_HELP)] = None,
    settings: Annotated[Path | None, typer.Option(help="Settings file (YAML or JSON).")] = None,
) -> None:
    """Apply the schema migrations the database lacks (the service does it at startup too;
    replicas starting together take turns). A database made by a release before migrations is
    adopted with its data."""
    from judge.api.migrations.run import head_revision
    from judge.api.store import safe_url
    from judge.errors import StoreUnavailableError

    store = _open_store(database_url, settings)
    try:
        before = store.schema_revision()
        store.create_schema()
        after = store.schema_revision()
    except StoreUnavailableError as exc:
        _bad_input(str(exc))
    finally:
        store.close()
    with _stdout():
        where = safe_url(store.url)
        if before == after:
            typer.echo(f"{where}: already at revision {after} (head {head_revision()})")
        else:
            typer.echo(f"{where}: upgraded from revision {before or 'none'} to {after}")


@db_app.command("current")
def db_current_command(
    database_url: Annotated[str | None, typer.Option(help=_DATABASE_URL_HELP)] = None,
    settings: Annotated[Path | None, typer.Option(help="Settings file (YAML or JSON).")] = None,
) -> None:
    """Show the schema revision the database is at, and this release's newest; exit status 1
    when the database is behind (``canary-judge db upgrade`` brings it up)."""
    from judge.api.migrations.run import head_revision
    from judge.api.store import safe_url
    from judge.errors import StoreUnavailableError

    store = _open_store(database_url, settings)
    try:
        current = store.schema_revision()
    except StoreUnavailableError as exc:
        _bad_input(str(exc))
    finally:
        store.close()
    head = head_revision()
    with _stdout():
        typer.echo(f"{safe_url(store.url)}: revision {current or 'none'} (head {head})")
    if current != head:
        raise typer.Exit(1)
