"""The ``inventory`` command line.

Every command has one lifecycle: ``load_settings()`` once, ``inventory_file()`` for the inventory
file, ``inventory_engine()`` (``patient_engine()`` for the long-running ones) for the database,
disposed on every way out. Options arrive checked, their bounds in their click types.

Each command imports what it uses, inside it: ``inventory --help`` and ``inventory validate`` stay
quick (``bench/startup.py``), without the sync engine, the models, boto3 or the API loaded.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from inventory import __version__
from inventory.durations import parse_duration
from inventory.errors import ConfigError, InventoryError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from inventory.config import InventoryConfig, Settings
    from inventory.logs import LogFormat
    from inventory.sync.planfile import PlanReader
    from inventory.sync.runner import SyncResult, Target

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Report ``InventoryError`` as clear lines on stderr and exit with code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            raise SystemExit(1) from None
        except InventoryError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]


# The lifecycle: settings, the inventory file, the engine ------------------------------


def load_settings() -> Settings:
    """The deployment's settings, from ``INVENTORY_*``: each command reads them once, here."""
    from inventory.config import Settings

    return Settings()


def inventory_file(
    settings: Settings, config_file: Path | None, *, secrets: bool = False
) -> tuple[Path, InventoryConfig]:
    """The inventory file (``-c``, else ``$INVENTORY_CONFIG``, else ./inventory.toml) and what it declares.

    With ``secrets``, the webhook secrets it names are checked in the environment too (``validate``,
    and the worker, which sends)."""
    from inventory.config import load_config

    path = settings.config_path(config_file)
    return path, load_config(path, environ=os.environ if secrets else None)


@contextmanager
def inventory_engine(settings: Settings, **engine_options: Any) -> Iterator[Engine]:
    """The inventory database's engine, migrated to the latest schema; disposed on every way out."""
    from inventory.db import open_inventory

    engine = open_inventory(settings, **engine_options)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def patient_engine(settings: Settings, stop: threading.Event, **engine_options: Any) -> Iterator[Engine | None]:
    """``inventory_engine`` for a long-running command: a database that cannot be reached yet is waited for
    (``open_patiently``); None when ``stop`` is set meanwhile."""
    from inventory.db import open_patiently

    engine = open_patiently(settings, stop, **engine_options)
    try:
        yield engine
    finally:
        if engine is not None:
            engine.dispose()


def _targets(targets: tuple[str, ...]) -> list[Target]:
    from inventory.sync.runner import Target

    return [Target.parse(target) for target in targets]


def _stop_on_signal() -> threading.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


# Option types: each checks its bounds, so that commands get valid values ----------------


def _refuse(message: str, param: click.Parameter | None, ctx: click.Context | None) -> click.BadParameter:
    """``Invalid value for --lease: message``, the option named bare: the form scripts and tests match."""
    return click.BadParameter(message, ctx, param, param_hint=param.opts[0] if param and param.opts else None)


def _spelled(seconds: float) -> str:
    """``seconds`` as a duration in its largest whole unit (``1ms``, ``1s``, ``36500d``), or ``zero``."""
    if seconds == 0:
        return "zero"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms"


class Duration(click.ParamType[float]):
    """A duration option: ``30s``, ``15m``, ``1h``; at least ``minimum`` (longer than it with ``min_open``)
    and at most ``maximum`` seconds, when given."""

    name = "duration"

    def __init__(self, minimum: float | None = None, maximum: float | None = None, *, min_open: bool = False) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.min_open = min_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        if self.minimum is not None and (seconds <= self.minimum if self.min_open else seconds < self.minimum):
            bound = "longer than" if self.min_open else "at least"
            raise _refuse(f"must be {bound} {_spelled(self.minimum)}, got {seconds:g}s", param, ctx)
        if self.maximum is not None and seconds > self.maximum:
            self.fail(f"at most {_spelled(self.maximum)}, got {value}", param, ctx)
        return seconds


class TokenName(click.ParamType[str]):
    """A token's name: 1 to 64 of ``A-Z a-z 0-9 . _ -`` (it is written in logs and tables as is)."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
            self.fail(f"must be 1 to 64 of the characters A-Z a-z 0-9 . _ -, got {value!r}", param, ctx)
        return value


class RegistryNames(click.ParamType[list[str]]):
    """``NAME,NAME``: registry names, sorted, each once; at least one."""

    name = "names"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        if isinstance(value, list):
            return value
        names = sorted({name.strip() for name in value.split(",") if name.strip()})
        if not names:
            raise _refuse("give at least one registry name", param, ctx)
        return names


TOKEN_LIFETIME = 100 * 365 * 86400.0
"""The longest ``--expires`` (a hundred years: past it, a time is not one a clock reaches)."""


class Since(click.ParamType[datetime]):
    """A moment: ``7d``, ``1h`` (that long ago) or an ISO-8601 timestamp (UTC unless it says otherwise)."""

    name = "since"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(
                f"{value!r} is neither a duration (30m, 1h, 7d) nor an ISO-8601 timestamp "
                "(2026-11-23, 2026-11-23T06:00:00Z)",
                param,
                ctx,
            )
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class EventType(click.Choice[str]):
    """One of the change feed's event types (``inventory.config.EVENT_TYPES``), read when first needed:
    importing ``inventory.config`` (pydantic) costs more than the whole of ``inventory --help``."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from inventory.config import EVENT_TYPES

        return EVENT_TYPES

    @choices.setter
    def choices(self, _: tuple[str, ...]) -> None:
        """``click.Choice.__init__`` sets them; these are always ``EVENT_TYPES``."""


class _SubjectType(click.ParamType[Any]):
    name = "subject"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from inventory.feed.render import Subject

        try:
            return Subject.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


config_option = click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The inventory file (default: $INVENTORY_CONFIG, else ./inventory.toml).",
)


def target_option(limits: str) -> Callable[[F], F]:
    """``--target`` (repeatable): ``limits`` says what it limits, e.g. ``Limit the plan to``."""
    return click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="NAME[/REGION[/REPOSITORY]]",
        help=f"{limits} a registry, a registry region, or one repository (repeatable).",
    )


verbose_option = click.option("--verbose", is_flag=True, help="Show every image even in long plans.")
log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Logs on stderr as text lines or as one JSON object per line.",
)


# Commands ---------------------------------------------------------------------------------


@click.group()
@click.version_option(__version__, prog_name="inventory")
def main() -> None:
    """ECR Inventory: a declarative inventory of container images across ECR registries."""
    from inventory.embedded import exit_on_signals

    exit_on_signals()


@main.command()
@config_option
@reports_errors
def validate(config_file: Path | None) -> None:
    """Check the inventory file and report every problem at once."""
    path, config = inventory_file(load_settings(), config_file, secrets=True)
    regions = sum(len(registry.regions) for registry in config.registries)
    hooks = f", {len(config.webhooks)} webhooks" if config.webhooks else ""
    click.echo(f"{path}: valid ({len(config.registries)} registries, {regions} regions{hooks})")


@main.command("aws-setup")
@config_option
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "cloudformation"]),
    default="text",
    show_default=True,
    help="What to create in each account and region, in words; or the CloudFormation templates, one JSON "
    "object keyed ACCOUNT/REGION.",
)
@reports_errors
def aws_setup(config_file: Path | None, output: str) -> None:
    """Print what each AWS account needs for the declared registries and queues: the read roles, the
    EventBridge rules and buses, the queue and its policy, the role that reads it."""
    from inventory.aws.setup import setup_stacks, summary, templates_json

    path, config = inventory_file(load_settings(), config_file)
    stacks = setup_stacks(config, str(path))
    click.echo(templates_json(stacks) if output == "cloudformation" else summary(stacks))


def _planner(
    settings: Settings, config_file: Path | None, targets: tuple[str, ...]
) -> Callable[[Engine, Path], PlanReader]:
    """Read the inventory file and the ``--target``s now, before any database is opened (a mistake in
    either is reported without one); return what plans them into a plan file, given the engine."""
    from inventory.sync.runner import plan_to_file

    _, config = inventory_file(settings, config_file)
    parsed = _targets(targets)

    def plan_into(engine: Engine, path: Path) -> PlanReader:
        return plan_to_file(
            engine,
            config,
            path,
            aws_max_attempts=settings.aws_max_attempts,
            targets=parsed,
            interactive=sys.stderr.isatty(),
        )

    return plan_into


@main.command()
@config_option
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan to this file.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0: no changes, 2: changes, 1: errors.")
@target_option("Limit the plan to")
@verbose_option
@reports_errors
def plan(
    config_file: Path | None,
    out: Path | None,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    verbose: bool,
) -> None:
    """Show what apply would change: + new images, ~ changed, - gone."""
    import tempfile

    from inventory.sync.render import render_plan

    settings = load_settings()
    plan_into = _planner(settings, config_file, targets)
    with tempfile.TemporaryDirectory(prefix="inventory-plan-") as scratch, inventory_engine(settings) as engine:
        reader = plan_into(engine, out or Path(scratch) / "plan")
        counts = render_plan(reader, click.echo, verbose=verbose)
    if reader.failures:
        raise SystemExit(1)
    if detailed_exitcode and counts.total:
        raise SystemExit(2)


@main.command()
@config_option
@click.argument("planfile", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option(
    "--lock-timeout",
    type=Duration(),
    default="30s",
    show_default=True,
    help="How long to wait for a scope another apply holds.",
)
@target_option("Limit the plan to")
@verbose_option
@reports_errors
def apply(
    config_file: Path | None,
    planfile: Path | None,
    auto_approve: bool,
    lock_timeout: float,
    targets: tuple[str, ...],
    verbose: bool,
) -> None:
    """Converge the inventory to what the registries hold (a saved plan applies exactly what it showed).

    With --auto-approve and no saved plan, each repository's pages are written as they are fetched.
    """
    import tempfile

    from inventory.sync.planfile import PlanReader
    from inventory.sync.render import DETAIL_LIMIT, render_applied, summary_line
    from inventory.sync.runner import sync_fleet

    if planfile is not None and targets:
        raise click.UsageError("--target cannot be used with a saved plan: it was fixed when planned")
    settings = load_settings()
    if planfile is None and auto_approve:
        _, config = inventory_file(settings, config_file)
        parsed = _targets(targets)
        with inventory_engine(settings) as engine:
            result = sync_fleet(
                engine,
                config,
                aws_max_attempts=settings.aws_max_attempts,
                targets=parsed,
                lock_timeout=lock_timeout,
                interactive=sys.stderr.isatty(),
                keep=sys.maxsize if verbose else DETAIL_LIMIT,
                on_scope=lambda scope: render_applied(scope, click.echo),
            )
        click.echo("")
        click.echo(summary_line(result.counts, result.failures, result.scopes))
        _report_applied(result, shown=0)
    elif planfile is not None:
        reader = PlanReader(planfile)
        with inventory_engine(settings) as engine:
            result = _show_and_apply(engine, reader, verbose=verbose, lock_timeout=lock_timeout, confirm=False)
        _report_applied(result, shown=len(reader.failures))  # the plan's own were shown with it
    else:
        plan_into = _planner(settings, config_file, targets)
        with tempfile.TemporaryDirectory(prefix="inventory-plan-") as scratch, inventory_engine(settings) as engine:
            reader = plan_into(engine, Path(scratch) / "plan")
            result = _show_and_apply(engine, reader, verbose=verbose, lock_timeout=lock_timeout, confirm=True)
        _report_applied(result, shown=len(reader.failures))


def _show_and_apply(
    engine: Engine, reader: PlanReader, *, verbose: bool, lock_timeout: float, confirm: bool
) -> SyncResult:
    """Print the plan, ask (``confirm``) when it changes anything, and apply it."""
    from inventory.sync.render import render_plan
    from inventory.sync.runner import apply_plan

    counts = render_plan(reader, click.echo, verbose=verbose)
    if counts.total and confirm:
        _confirm()
    return apply_plan(engine, reader, lock_timeout=lock_timeout)


def _report_applied(result: SyncResult, shown: int) -> None:
    """Each failure not shown yet (once), then ``Apply complete: …``, saying how many scopes failed."""
    from inventory.sync.render import applied_line

    for failure in result.failures[shown:]:
        click.echo(f"Error: {failure.label}: {failure.code}: {failure.message}", err=True)
    click.echo(applied_line(result.counts, result.failures, result.scopes))
    if result.failures:
        raise SystemExit(1)


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise InventoryError("refusing to apply unattended: stdin is not a terminal; pass --auto-approve")
    click.echo("\nDo you want to apply these changes? Only 'yes' will be accepted to approve.")
    if click.prompt("Enter a value", default="", show_default=False).strip() != "yes":
        click.echo("Apply cancelled.")
        raise SystemExit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--dev", is_flag=True, help="Serve GraphiQL on GET /graphql.")
@click.option("--no-introspection", is_flag=True, help="Refuse introspection queries.")
@click.option(
    "--allow-anonymous",
    is_flag=True,
    help="Serve everything to anyone, without tokens (demos only; a warning is logged).",
)
@click.option(
    "--statement-timeout",
    type=Duration(minimum=0.001),
    default="10s",
    show_default=True,
    help="How long one SQL statement of a request may run; past it the query fails with QUERY_TIMEOUT.",
)
@click.option(
    "--console-session",
    type=Duration(minimum=60),
    default="12h",
    show_default=True,
    help="How long a web console session lasts (never past its token's expiry).",
)
@log_format_option
@reports_errors
def serve(
    host: str,
    port: int,
    dev: bool,
    no_introspection: bool,
    allow_anonymous: bool,
    statement_timeout: float,
    console_session: float,
    log_format: LogFormat,
) -> None:
    """Serve the GraphQL API on /graphql, the ECR-compatible endpoint on /ecr, a health check on /healthz and
    Prometheus metrics on /metrics.

    /graphql and /metrics answer only `Authorization: Bearer <token>` (see `inventory tokens create`); /ecr
    requests signed with an AWS access key (`inventory tokens create --aws`)."""
    from inventory.api.app import listen
    from inventory.api.app import serve as serve_api
    from inventory.db import database_url, watch_embedded
    from inventory.logs import configure as configure_logs

    configure_logs(log_format)
    settings = load_settings()
    sock = listen(host, port)
    forever = threading.Event()  # the process ends with the server
    with patient_engine(settings, forever) as engine:  # waits for the database and migrates it; the API opens its own
        if engine is not None:
            _check_secret_key(engine)
    watch_embedded(settings, forever)
    click.echo(f"Web console on http://{host}:{sock.getsockname()[1]}/console")
    click.echo(f"GraphQL API on http://{host}:{sock.getsockname()[1]}/graphql")  # --port 0: the port taken
    click.echo(f"ECR-compatible endpoint on http://{host}:{sock.getsockname()[1]}/ecr")
    serve_api(
        database_url(settings),
        sock,
        graphiql=dev,
        introspection=not no_introspection,
        own_logging=False,
        allow_anonymous=allow_anonymous,
        statement_timeout=statement_timeout,
        console_session=round(console_session),
    )


def _check_secret_key(engine: Any) -> None:
    """Say so when AWS access keys exist but the server key they are verified with is not set."""
    from inventory.db import driver_connection
    from inventory.ecr import keys
    from inventory.tables import api_tokens

    with engine.connect() as connection:
        live = api_tokens.live_aws_keys(connection=driver_connection(connection))
    try:
        keys.server_key()
    except keys.SecretKeyMissing:
        if live:
            click.echo(
                f"warning: {live} AWS access key(s) exist but {keys.SECRET_KEY_VARIABLE} is not set: /ecr "
                f"refuses every request until it is ({keys.HOW_TO_MAKE_ONE})",
                err=True,
            )
    # a malformed key is an error at once (InventoryError): the endpoint could verify nothing with it


@main.command()
@config_option
@click.option(
    "--interval",
    type=Duration(minimum=1),
    default="15m",
    show_default=True,
    help="How long after its last sync a registry region is synced again.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Repositories synced at once by this worker.",
)
@click.option(
    "--lease",
    type=Duration(minimum=1),
    default="60s",
    show_default=True,
    help="How long a claimed region stays this worker's without a heartbeat.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=50.0,
    show_default=True,
    help="AWS calls per second per account and region; halved while throttled.",
)
@click.option(
    "--lock-timeout",
    type=Duration(),
    default="30s",
    show_default=True,
    help="How long to wait for a repository an `inventory apply` holds.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics and /healthz on this port (0: any free port).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@log_format_option
@reports_errors
def worker(
    config_file: Path | None,
    interval: float,
    concurrency: int,
    lease: float,
    rate: float,
    lock_timeout: float,
    metrics_port: int | None,
    metrics_host: str,
    log_format: LogFormat,
) -> None:
    """Keep every declared registry region converged; any number of workers share the work."""
    import logging

    from inventory.db import watch_embedded
    from inventory.logs import configure as configure_logs
    from inventory.worker import Worker, WorkerOptions
    from inventory.worker.metrics import serve_metrics

    configure_logs(log_format)
    settings = load_settings()
    options = WorkerOptions(
        interval=interval,
        concurrency=concurrency,
        lease=lease,
        rate=rate,
        lock_timeout=lock_timeout,
        aws_max_attempts=settings.aws_max_attempts,
        webhook_timeout=settings.webhook_timeout,
        webhook_retry_scale=settings.webhook_retry_scale,
    )
    # A bad file (or webhook secret) is refused before anything starts; the worker reads the file again each round.
    config_path, _ = inventory_file(settings, config_file, secrets=True)
    stop = _stop_on_signal()
    # No ping per checkout: a worker checks out a connection several times per repository; one the
    # server dropped fails that repository's sync, which the next round repeats.
    with patient_engine(settings, stop, pool_size=concurrency + 4, pool_pre_ping=False) as engine:
        if engine is None:
            return
        watch_embedded(settings, stop)
        runner = Worker(engine, config_path, options)
        if metrics_port is not None:
            server = serve_metrics(
                metrics_host, metrics_port, engine, runner.metrics, healthy_within=max(30, 3 * lease)
            )
            host, port = server.server_address[:2]
            logging.getLogger("inventory.worker").info("metrics on http://%s:%s/metrics", host, port)
        runner.run(stop)


@main.command()
@config_option
@reports_errors
def status(config_file: Path | None) -> None:
    """How fresh each declared registry region is: stale or failing ones first."""
    from rich.console import Console, Group
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    from inventory.db import driver_connection
    from inventory.status import declared_freshness, worst_first

    settings = load_settings()
    path, config = inventory_file(settings, config_file)
    with inventory_engine(settings) as engine, engine.connect() as connection:
        both = declared_freshness(config, connection=driver_connection(connection))
    statuses = worst_first([status for status, _ in both])
    if not statuses:
        click.echo(f"No registries declared in {path}.")
        return
    rows, errors = [], []
    for s in statuses:
        state = "stale" if s.stale_since else ("never synced" if s.last_success_at is None else "fresh")
        code = s.last_error_code if s.stale_since and s.last_error_code else ""
        rows.append((s.registry_name, s.region, state, _when(s.last_success_at), _when(s.stale_since), code))
        if code:
            errors.append(Text(f"last error of {s.registry_name}/{s.region}: {code}: {s.last_error_message}"))
    whole = [max(map(len, column)) for column in zip(*rows, strict=True)]

    def table(codes: bool) -> Table:
        """Fitted to the terminal, nothing cut: a long registry name folds, a state wraps."""
        table = Table(title="Sync status")
        table.add_column("registry", overflow="fold", min_width=len("registry"))
        table.add_column("region", no_wrap=True, min_width=whole[1])
        table.add_column("state", min_width=len("synced"))
        table.add_column("last success", no_wrap=True, min_width=whole[3])
        table.add_column("stale since", no_wrap=True, min_width=whole[4])
        if codes:
            table.add_column("last error", no_wrap=True, min_width=whole[5])
        for row in rows:
            table.add_row(*row[: len(table.columns)])
        return table

    console = Console()
    wide = table(codes=True)
    fits = Measurement.get(console, console.options.update_width(10_000), wide).maximum <= console.width  # unwrapped
    console.print(Group(wide if fits else table(codes=False), *errors), crop=False)  # each error in full, below
    if config.event_queues or any(f.last_event_applied_at for _, f in both):
        events = Table(title="Full rounds and ECR events")
        events.add_column("registry region", overflow="fold")
        events.add_column("last full round", no_wrap=True)
        events.add_column("last event applied", no_wrap=True)
        for status, freshness in both:
            events.add_row(
                f"{status.registry_name}/{status.region}",
                _when(freshness.last_round_at),
                _when(freshness.last_event_applied_at),
            )
        console.print(events, crop=False)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


@main.command()
@config_option
@click.option(
    "--since",
    type=Since(),
    default=None,
    metavar="DURATION|TIMESTAMP",
    help="Only events of the last 30m, 1h, 7d… or since an ISO-8601 timestamp (UTC unless it says).",
)
@click.option("--follow", is_flag=True, help="Keep printing new events as they come, until Ctrl-C.")
@click.option("--type", "types", multiple=True, type=EventType(), help="Only events of this type (repeatable).")
@target_option("Only events of")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per event, or one JSON object per line (the fields of GraphQL's ImageEvent).",
)
@reports_errors
def events(
    config_file: Path | None,
    since: datetime | None,
    follow: bool,
    types: tuple[str, ...],
    targets: tuple[str, ...],
    output: str,
) -> None:
    """Print the change feed, oldest first: every change the syncs made, each once."""
    from inventory.feed.event import Event
    from inventory.feed.follow import FeedReader
    from inventory.feed.query import EventFilter
    from inventory.feed.render import Labels, event_json, event_line, target_scopes

    settings = load_settings()
    _, config = inventory_file(settings, config_file)
    scopes = target_scopes(config, _targets(targets)) if targets else None
    where = EventFilter(types=types or None, since=since, scopes=scopes)
    labels = Labels(config)

    def emit(event: Event) -> None:
        click.echo(event_json(event) if output == "json" else event_line(event, labels))

    with inventory_engine(settings) as engine:
        reader = FeedReader(engine, where)
        try:
            if follow:
                reader.follow(emit, _stop_on_signal())
            else:
                for event in reader.read():
                    emit(event)
        except BrokenPipeError:  # `inventory events | head`: the reader has seen enough
            sys.stderr.close()


@main.group()
def webhooks() -> None:
    """The webhooks of the inventory file: their status, a test ping, re-sending, re-enabling."""


@webhooks.command("list")
@config_option
@reports_errors
def webhooks_list(config_file: Path | None) -> None:
    """Each declared webhook: status, last success, failing since, backlog, deliveries."""
    from rich.console import Console

    from inventory.webhooks import ops

    settings = load_settings()
    path, config = inventory_file(settings, config_file)
    if not config.webhooks:
        click.echo(f"No webhooks declared in {path}.")
        return
    with inventory_engine(settings) as engine:
        found = ops.endpoints(engine, config)
    Console(soft_wrap=True).print(ops.table(found))


@webhooks.command("test")
@config_option
@click.argument("name")
@reports_errors
def webhooks_test(config_file: Path | None, name: str) -> None:
    """Send a signed webhook.ping to NAME now and print its answer (exit 1 unless 2xx)."""
    from inventory.webhooks import ops

    settings = load_settings()
    _, config = inventory_file(settings, config_file)
    with inventory_engine(settings) as engine:
        answer = ops.ping(engine, config, name, settings.webhook_timeout)
    outcome = f"HTTP {answer.status_code}" if answer.status_code is not None else answer.error
    click.echo(f"{name}: {outcome} in {answer.duration_ms} ms")
    if not answer.delivered:
        if answer.status_code is not None and answer.error:
            click.echo(answer.error, err=True)
        raise SystemExit(1)


@webhooks.command("recover")
@config_option
@click.argument("name")
@click.option(
    "--since",
    type=Since(),
    required=True,
    metavar="DURATION|TIMESTAMP",
    help="Deliveries written since 2h, 1d… ago or an ISO-8601 timestamp.",
)
@reports_errors
def webhooks_recover(config_file: Path | None, name: str, since: datetime) -> None:
    """Send NAME now what waits for a retry or failed to reach it since --since (the workers deliver it)."""
    from inventory.webhooks import ops

    settings = load_settings()
    _, config = inventory_file(settings, config_file)
    with inventory_engine(settings) as engine:
        recovered, endpoint = ops.recover(engine, config, name, since)
    failed = "failed delivery" if recovered.failed == 1 else "failed deliveries"
    click.echo(f"{name}: {recovered.waiting} waiting for a retry sent now, {recovered.failed} {failed} queued again")
    if endpoint.status == "disabled":
        click.echo(
            f"warning: {name} is {ops.status_of(endpoint)}: run `inventory webhooks enable {name}` for them to be sent",
            err=True,
        )


@webhooks.command("enable")
@config_option
@click.argument("name")
@reports_errors
def webhooks_enable(config_file: Path | None, name: str) -> None:
    """Deliver to NAME again (after a 410 or days of failures disabled it), from where it stopped."""
    from inventory.webhooks import ops

    settings = load_settings()
    _, config = inventory_file(settings, config_file)
    with inventory_engine(settings) as engine:
        endpoint = ops.enable(engine, config, name)
    click.echo(f"{name}: enabled, {endpoint.backlog} deliveries pending")


@main.command()
@config_option
@click.argument("subject", metavar="REGISTRY/REGION/REPOSITORY:TAG|@DIGEST", type=_SubjectType())
@reports_errors
def history(config_file: Path | None, subject: Any) -> None:
    """Where a tag pointed over time (…:TAG), or an image's events (…@DIGEST); newest first."""
    from rich.console import Console

    from inventory.feed.render import history_view

    settings = load_settings()
    _, config = inventory_file(settings, config_file)
    with inventory_engine(settings) as engine:
        view = history_view(engine, config, subject)
    if isinstance(view, str):
        click.echo(view)
    else:
        Console().print(view, crop=False)  # fitted to the terminal; a line that cannot fit wraps, never cut
    if config.retention.events is not None:  # the replay starts at the horizon: say so rather than look complete
        click.echo(
            f"note: events older than [retention] events ({config.retention.events / 86400:g}d) are pruned: "
            "what happened before is not shown",
            err=True,
        )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--seed", type=click.Choice(["demo", "empty"]), default="empty", show_default=True)
def emulator(host: str, port: int, seed: str) -> None:
    """Serve the ECR emulator (ECR, ECR Public, STS and an admin API) until stopped."""
    from inventory.testing import Emulator
    from inventory.testing.seed import SEEDS

    server = Emulator(host, port)
    SEEDS[seed](server.store)
    stop = _stop_on_signal()  # before the line that tells a supervisor it may signal us
    server.start()
    click.echo(f"ECR emulator listening on {server.url}")
    stop.wait()
    server.stop()


@main.command()
@reports_errors
def migrate() -> None:
    """Create or upgrade the inventory database schema (every command does it on start)."""
    from inventory.db import describe

    settings = load_settings()
    with inventory_engine(settings):
        pass
    click.echo(f"inventory database at the latest schema: {describe(settings)}")


# API tokens ----------------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """Create, list and revoke the API's bearer tokens and AWS access keys."""


@tokens.command("create")
@click.argument("name", type=TokenName())
@click.option(
    "--registries",
    type=RegistryNames(),
    metavar="NAME,NAME",
    default=None,
    help="Limit the token to these registries (names in the inventory file); default: all.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["read", "metrics", "admin"]),
    help="read: the inventory; metrics: /metrics; admin: read, and webhooks (repeatable; default: read).",
)
@click.option(
    "--expires",
    type=Duration(minimum=0, min_open=True, maximum=TOKEN_LIFETIME),
    default=None,
    metavar="DURATION",
    help="Expire after 30d, 12h… (default: never).",
)
@click.option(
    "--aws",
    is_flag=True,
    help="An AWS access key for the ECR-compatible endpoint (/ecr): prints AWS_ACCESS_KEY_ID=… and "
    "AWS_SECRET_ACCESS_KEY=…; needs INVENTORY_SECRET_KEY, as `serve` does.",
)
@reports_errors
def tokens_create(
    name: str, registries: list[str] | None, scopes: tuple[str, ...], expires: float | None, aws: bool
) -> None:
    """Create a token and print it, once: only its hash is stored (of an AWS key, only its id)."""
    from inventory.api.auth import new_token, token_hash
    from inventory.db import driver_connection
    from inventory.ecr import keys
    from inventory.tables import api_tokens

    access_key_id = None
    if aws:
        access_key_id = keys.new_access_key_id()
        token = keys.secret_for(keys.server_key(), access_key_id)
    else:
        token = new_token()
    with inventory_engine(load_settings()) as engine, engine.begin() as connection:
        if registries is not None:
            _check_registries(driver_connection(connection), registries)
        expires_at = None if expires is None else datetime.now(UTC) + timedelta(seconds=expires)
        created = api_tokens.create(
            name,
            token_hash(token),
            scopes=sorted(set(scopes or ("read",))),
            registries=registries,
            expires_at=expires_at,
            connection=driver_connection(connection),
            aws_access_key_id=access_key_id,
        )
    if not created:
        raise InventoryError(f"a token named {name!r} exists already: revoke it first, or choose another name")
    if access_key_id is not None:
        click.echo(f"AWS_ACCESS_KEY_ID={access_key_id}")
        click.echo(f"AWS_SECRET_ACCESS_KEY={token}")
        click.echo(
            f"AWS access key {name!r} created; the secret is shown only this once. Export both lines "
            "(export $(inventory tokens create …)) and call the endpoint with --endpoint-url "
            "http://HOST:PORT/ecr.",
            err=True,
        )
        return
    click.echo(token)
    click.echo(
        f"Token {name!r} created; it is shown only this once. Send it as 'Authorization: Bearer <token>'.", err=True
    )


def _check_registries(connection: Any, names: list[str]) -> None:
    """Every name is a registry the inventory knows (from the inventory file, stored by each sync)."""
    from inventory.tables import registries

    known = registries.names(connection=connection)
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none yet: run `inventory apply` first"
        raise InventoryError(f"--registries: no registry named {', '.join(map(repr, unknown))} (registries: {listed})")


@tokens.command("list")
@reports_errors
def tokens_list() -> None:
    """Every token: name, scopes, registries, created, expires, last used, state (never the token itself).

    One tab-separated line each, after a header line: easy to read, and to cut."""
    from inventory.db import driver_connection
    from inventory.tables import api_tokens

    with inventory_engine(load_settings()) as engine, engine.connect() as connection:
        rows = api_tokens.listed(connection=driver_connection(connection))
    if not rows:
        click.echo("No tokens: create one with `inventory tokens create NAME`.")
        return
    click.echo("\t".join(("name", "scopes", "registries", "created", "expires", "last used", "state")))
    now = datetime.now(UTC)
    for t in rows:
        state = "revoked" if t.revoked_at else ("expired" if t.expires_at and t.expires_at <= now else "live")
        registries = ",".join(t.registries) if t.registries is not None else "all"
        when = (_when(t.created_at), _when(t.expires_at), _when(t.last_used_at))
        click.echo("\t".join((t.name, ",".join(t.scopes), registries, *when, state)))


@tokens.command("revoke")
@click.argument("name")
@reports_errors
def tokens_revoke(name: str) -> None:
    """Revoke a token: every API process refuses it within 5 seconds."""
    from inventory.db import driver_connection
    from inventory.tables import api_tokens

    with inventory_engine(load_settings()) as engine, engine.begin() as connection:
        revoked = api_tokens.revoke(name, connection=driver_connection(connection))
    if not revoked:
        raise InventoryError(f"no live token named {name!r} (see `inventory tokens list`)")
    click.echo(f"Token {name!r} revoked.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the API listens.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--no-serve", is_flag=True, help="Stop after showing the inventory instead of serving the API.")
@reports_errors
def demo(host: str, port: int, no_serve: bool) -> None:
    """Sync the seeded emulator into the inventory database, show it, and serve the API over it (with GraphiQL)."""
    from inventory.demo import run_demo

    run_demo(load_settings(), serve=None if no_serve else (host, port))
