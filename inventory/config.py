"""Settings from the environment, and the declarative inventory file.

``Settings`` holds what varies per deployment (database URL, home directory,
config path). ``InventoryConfig`` is the declarative ``inventory.toml``: which
registries the inventory covers, which SQS queues bring it ECR's events, which webhooks
it tells of changes, and how long it keeps its history. It is validated into frozen
models, and every problem of the file is reported at once, naming the file, the
registry, queue or webhook, and the key, in the words of TOML (a string, an array, a
table) rather than of the validation library.

A webhook names the environment variable that holds its secrets, never the secrets:
``webhook_secrets`` reads and checks them where they are used (and ``load_config``
with ``environ``, for the commands that send).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, time
from fnmatch import fnmatchcase
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from inventory import redact
from inventory.durations import parse_duration
from inventory.errors import ConfigError

DEFAULT_CONFIG_FILE = "inventory.toml"
DEMO_CONFIG_FILE = "demo-inventory.toml"
"""The sample file ``inventory demo`` writes in ``Settings.home``."""
DEFAULT_SYNC_RUNS_RETENTION = 30 * 86400.0
DEFAULT_WEBHOOK_ATTEMPTS_RETENTION = 30 * 86400.0
ECR_PUBLIC_REGION = "us-east-1"

_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$")
_ENDPOINT_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_ENVIRONMENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUEUE_URL = re.compile(r"^https?://[^\s/]+/(?P<account>[0-9]{12})/(?P<name>[A-Za-z0-9_-]{1,80}(\.fifo)?)$")

EVENT_TYPES = (
    "image.added",
    "image.changed",
    "image.restored",
    "image.removed",
    "repository.added",
    "repository.removed",
)
"""The change feed's event types (``inventory.tables.image_events``)."""
WEBHOOK_TYPES = (*EVENT_TYPES, "scope.backfilled")
"""What a webhook can subscribe to (``webhook.ping`` is sent by ``inventory webhooks test`` only)."""
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
"""ECR's finding severities, worst first."""


def is_region(text: str) -> bool:
    """Whether ``text`` is spelled like an AWS region (``us-east-1``, ``us-gov-west-1``)."""
    return bool(_REGION.match(text))


class Settings(BaseSettings):
    """Deployment settings, read from ``INVENTORY_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_", frozen=True)

    database_url: str | None = None
    """A PostgreSQL URL; unset means the embedded server under ``home``."""
    home: Path = Path(".inventory")
    """Where the embedded server keeps its data."""
    database_connect_timeout: int = Field(default=10, ge=1, le=3600)
    """Seconds to wait for the database to accept a connection and answer it."""
    config: Path | None = None
    """The declarative file, when ``-c/--config`` is not given."""
    aws_max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts per AWS call, retries included (botocore's standard retry mode)."""
    webhook_timeout: float = Field(default=15.0, gt=0)
    """Seconds a webhook endpoint has to answer one delivery attempt."""
    webhook_retry_scale: float = Field(default=1.0, gt=0, le=1)
    """Multiplies the webhook retry schedule's delays (below 1 only to compress it, in tests)."""

    def config_path(self, explicit: str | os.PathLike[str] | None = None) -> Path:
        """The inventory file: ``-c/--config``, else ``$INVENTORY_CONFIG``, else ./inventory.toml."""
        if explicit is not None:
            return Path(explicit)
        return self.config or Path(DEFAULT_CONFIG_FILE)


def _glob(value: str) -> str:
    if not value.strip():
        raise ValueError("a glob must not be empty")
    return value


Glob = Annotated[str, AfterValidator(_glob)]


def _checked_role_arn(value: str | None) -> str | None:
    if value is not None and not _ROLE_ARN.match(value):
        raise ValueError(f"not an IAM role ARN (arn:aws:iam::<account>:role/<name>): {value!r}")
    return value


def _checked_endpoint_url(value: str | None) -> str | None:
    if value is not None and not _ENDPOINT_URL.match(value):
        raise ValueError(f"not an http(s) URL: {redact.url(value)!r}")
    return value


RoleArn = Annotated[str | None, AfterValidator(_checked_role_arn)]
"""An IAM role's ARN to assume (of a registry, of an event queue)."""
EndpointUrl = Annotated[str | None, AfterValidator(_checked_endpoint_url)]
"""An endpoint URL in place of AWS's (an emulator's, a VPC endpoint's)."""


class RegistryConfig(BaseModel):
    """One ``[[registries]]`` entry: an AWS account's private ECR or ECR Public."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    type: Literal["ecr", "ecr-public"] = "ecr"
    account_id: str
    regions: tuple[str, ...] = Field(min_length=1)
    role_arn: RoleArn = None
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    repositories: tuple[Glob, ...] = ("*",)
    exclude: tuple[Glob, ...] = ()
    endpoint_url: EndpointUrl = None

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_id(cls, value: Any) -> Any:
        if not isinstance(value, str) or not _ACCOUNT_ID.match(value):
            raise ValueError(f"must be a string of 12 digits, got {_given(value)}")
        return value

    def covers(self, repository_name: str) -> bool:
        """Whether the include globs take ``repository_name`` and no exclude glob drops it."""
        return any(fnmatchcase(repository_name, glob) for glob in self.repositories) and not any(
            fnmatchcase(repository_name, glob) for glob in self.exclude
        )

    @model_validator(mode="wrap")
    @classmethod
    def _coherent(cls, data: Any, handler: ModelWrapValidatorHandler[RegistryConfig]) -> RegistryConfig:
        """Adds the problems of ``_registry_rules`` to those of each key. Not an ``after`` validator: it
        would run only once every key is valid; nor field validators: each reports one problem at most."""
        return _with_rules(cls.__name__, data, handler, "registry_rule", _registry_rules)


M = TypeVar("M")


def _with_rules(
    name: str,
    data: Any,
    handler: Callable[[Any], M],
    kind: str,
    rules: Callable[[dict[str, Any]], Iterable[tuple[str, str]]],
) -> M:
    """``handler(data)``, with the problems ``rules`` finds in the entry as written (``(key, message)``, of
    type ``kind``) added to those of each key: every problem at once."""
    broken: list[InitErrorDetails] = [
        {"type": PydanticCustomError(kind, message), "loc": (key,), "input": data.get(key)}
        for key, message in (rules(data) if isinstance(data, dict) else ())
    ]
    try:
        model = handler(data)
    except ValidationError as exc:
        if not broken:
            raise
        raise ValidationError.from_exception_data(name, [*map(_raised_again, exc.errors()), *broken]) from None
    if broken:
        raise ValidationError.from_exception_data(name, broken)
    return model


def _registry_rules(entry: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The problems of a registry's regions and of keys that go together, as ``(key, message)``, read on
    the entry as written so that they are found whatever else is wrong with it."""
    regions = entry.get("regions")
    names = [region for region in regions if isinstance(region, str)] if isinstance(regions, list | tuple) else []
    unknown = list(dict.fromkeys(region for region in names if not _REGION.match(region)))
    if unknown:
        yield "regions", f"not an AWS region: {', '.join(map(repr, unknown))}"
    duplicated = [region for region, n in Counter(names).items() if n > 1]
    if duplicated:
        yield "regions", f"listed more than once: {', '.join(map(repr, duplicated))}"
    if entry.get("type") == "ecr-public" and any(region != ECR_PUBLIC_REGION for region in names):
        yield "regions", f"ECR Public exists only in {ECR_PUBLIC_REGION}, got {list(names)}"
    if entry.get("external_id") is not None and entry.get("role_arn") is None:
        yield "external_id", "only meaningful together with role_arn"


def _raised_again(error: ErrorDetails) -> InitErrorDetails:
    """A reported error as ``ValidationError.from_exception_data`` takes it, to raise it again with others."""
    return {"type": error["type"], "loc": error["loc"], "input": error["input"], "ctx": error.get("ctx", {})}


class EventQueueConfig(BaseModel):
    """One ``[[event_queues]]`` entry: an SQS queue that EventBridge fills with ECR's events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    url: str
    """The queue's URL, ``https://sqs.<region>.amazonaws.com/<account>/<name>``."""
    region: str
    """The queue's region (the one its URL names, for AWS)."""
    role_arn: RoleArn = None
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    endpoint_url: EndpointUrl = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _QUEUE_URL.match(value):
            raise ValueError(
                f"not an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>): {redact.url(value)!r}"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"not an AWS region: {value!r}")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _coherent(cls, data: Any, handler: ModelWrapValidatorHandler[EventQueueConfig]) -> EventQueueConfig:
        """Adds the problems of keys that go together to those of each key (see ``RegistryConfig``)."""
        return _with_rules(cls.__name__, data, handler, "queue_rule", _queue_rules)


def _queue_rules(entry: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The problems of a queue's keys that go together, as ``(key, message)``."""
    if entry.get("external_id") is not None and entry.get("role_arn") is None:
        yield "external_id", "only meaningful together with role_arn"
    url, region = entry.get("url"), entry.get("region")
    if isinstance(url, str) and isinstance(region, str) and _REGION.match(region):
        host = re.match(r"^https?://sqs\.([a-z0-9-]+)\.amazonaws\.com/", url)
        if host is not None and host[1] != region:
            yield "region", f"the queue's URL is in {host[1]}, not {region}"


class WebhookConfig(BaseModel):
    """One ``[[webhooks]]`` entry: an HTTP endpoint told of the changes it subscribes to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    url: str
    secret_env: str
    """The environment variable holding the endpoint's ``whsec_`` secrets (space-separated while rotating)."""
    types: tuple[Literal[WEBHOOK_TYPES], ...] = WEBHOOK_TYPES  # type: ignore[valid-type]
    registries: tuple[str, ...] | None = None
    """Names of ``[[registries]]``; None: every registry."""
    repositories: tuple[Glob, ...] = ("*",)
    min_severity: Literal[SEVERITIES] | None = None  # type: ignore[valid-type]
    """Only images with a finding this severe or worse (repository events always pass)."""
    backfill: bool = Field(default=False, strict=True)
    """Send a scope's first sync image by image; by default one ``scope.backfilled`` summary instead."""
    concurrency: int = Field(default=4, ge=1, le=64, strict=True)
    """Images delivered in parallel (each image's events still in order)."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _ENDPOINT_URL.match(value):
            raise ValueError(f"not an http(s) URL: {redact.url(value)!r}")
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: str) -> str:
        if not _ENVIRONMENT_NAME.match(value):
            raise ValueError(f"not an environment variable name: {value!r}")
        return value

    def covers(self, repository_name: str) -> bool:
        return any(fnmatchcase(repository_name, glob) for glob in self.repositories)


def webhook_secrets(webhook: WebhookConfig, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The webhook's ``whsec_`` secrets from its variable; ``ValueError`` saying what is wrong with them,
    never quoting them."""
    value = (os.environ if environ is None else environ).get(webhook.secret_env)
    variable = f"variable {webhook.secret_env}"
    if value is None:
        raise ValueError(f"{variable} is not set")
    secrets = tuple(value.split())
    if not secrets:
        raise ValueError(f"{variable} is empty")
    for n, secret in enumerate(secrets, 1):
        which = f"{variable}: secret {n} of {len(secrets)}" if len(secrets) > 1 else variable
        body = secret.removeprefix("whsec_")
        if body == secret:
            raise ValueError(f"{which}: not a whsec_ secret (whsec_ then base64)")
        try:
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except binascii.Error:
            raise ValueError(f"{which}: not a whsec_ secret (whsec_ then base64)") from None
        if not 24 <= len(key) <= 64:
            raise ValueError(f"{which}: a whsec_ secret holds 24 to 64 bytes, this one {len(key)}")
    return secrets


class RetentionConfig(BaseModel):
    """The ``[retention]`` table: how long history is kept, in seconds (written ``"30d"``, ``"12h"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sync_runs: float = DEFAULT_SYNC_RUNS_RETENTION
    """Sync runs older than this are pruned by the workers."""
    events: float | None = None
    """Change events older than this are pruned by the workers; None (the default): kept forever."""
    webhook_attempts: float = DEFAULT_WEBHOOK_ATTEMPTS_RETENTION
    """Webhook deliveries (and their attempts) older than this are pruned by the workers."""

    @field_validator("sync_runs", "events", "webhook_attempts", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f'must be a duration string such as "30d", got {_given(value)}')
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError(f"must be longer than zero, got {value!r}")
        return seconds


class InventoryConfig(BaseModel):
    """The whole declarative file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registries: tuple[RegistryConfig, ...] = ()
    event_queues: tuple[EventQueueConfig, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    retention: RetentionConfig = RetentionConfig()

    def registry(self, name: str) -> RegistryConfig:
        """The registry labelled ``name``."""
        for registry in self.registries:
            if registry.name == name:
                return registry
        raise KeyError(name)

    def webhook(self, name: str) -> WebhookConfig:
        """The webhook labelled ``name``."""
        for webhook in self.webhooks:
            if webhook.name == name:
                return webhook
        raise KeyError(name)


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> InventoryConfig:
    """Read and validate ``path``; raise ``ConfigError`` listing every problem. With ``environ``, the
    webhooks' secrets are checked in it too (by the commands that send)."""
    where = str(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        demo = Settings().home / DEMO_CONFIG_FILE
        hint = f"name one with -c FILE or $INVENTORY_CONFIG (`inventory demo` writes a sample to {demo})"
        raise ConfigError(where, [f"{where}: no such file; {hint}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, [f"{where}: cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, [f"{where}: not valid TOML: {exc}"]) from None
    return parse_config(document, where, environ=environ)


def parse_config(document: dict[str, Any], where: str, *, environ: Mapping[str, str] | None = None) -> InventoryConfig:
    """Validate a parsed document; ``where`` names its origin in messages."""
    known = ("registries", "event_queues", "webhooks", "retention")
    problems = [f"{where}: unknown key {key!r}" for key in document if key not in known]
    registries = _tables(document, "registries", RegistryConfig, where, problems)
    queues = _tables(document, "event_queues", EventQueueConfig, where, problems)
    declared = {registry.name for _, registry in registries}
    webhooks = [
        webhook
        for label, webhook in _tables(document, "webhooks", WebhookConfig, where, problems)
        if _webhook_fits(webhook, f"{where}: {label}", declared, environ, problems)
    ]
    retention = _retention(document.get("retention", {}), where, problems)

    if problems:
        raise ConfigError(where, problems)
    return InventoryConfig(
        registries=tuple(r for _, r in registries),
        event_queues=tuple(q for _, q in queues),
        webhooks=tuple(webhooks),
        retention=retention,
    )


Table = TypeVar("Table", RegistryConfig, EventQueueConfig, WebhookConfig)


def _tables(
    document: dict[str, Any], key: str, model: type[Table], where: str, problems: list[str]
) -> list[tuple[str, Table]]:
    """The valid entries of the array of tables ``key``, with their labels; every problem, and names
    used twice, added to ``problems``."""
    entries = document.get(key, [])
    if not isinstance(entries, list):
        problems.append(f"{where}: {key}: must be an array of tables ([[{key}]]), got {_toml_type(entries)}")
        return []
    found: list[tuple[str, Table]] = []
    for index, entry in enumerate(entries):
        label = _label(key, index, entry)
        if not isinstance(entry, dict):
            problems.append(f"{where}: {label}: must be a table, got {_toml_type(entry)}")
            continue
        try:
            found.append((label, model.model_validate(entry)))
        except ValidationError as exc:
            problems.extend(f"{where}: {label}: {_describe(error)}" for error in exc.errors())
    names = Counter(
        entry.get("name") for entry in entries if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    )
    for name, count in names.items():
        if count > 1:
            problems.append(f"{where}: {key}: name {name!r} is used by {count} {key}")
    return found


def _webhook_fits(
    webhook: WebhookConfig, where: str, registries: set[str], environ: Mapping[str, str] | None, problems: list[str]
) -> bool:
    """Whether the webhook names declared registries and (with ``environ``) has good secrets; else the
    problems are added."""
    before = len(problems)
    unknown = [name for name in webhook.registries or () if name not in registries]
    if unknown:
        declared = ", ".join(sorted(registries)) or "none"
        problems.append(
            f"{where}: registries: no registry named {', '.join(map(repr, unknown))} (declared: {declared})"
        )
    if environ is not None:
        try:
            webhook_secrets(webhook, environ)
        except ValueError as exc:
            problems.append(f"{where}: secret_env: {exc}")
    return len(problems) == before


def _retention(table: object, where: str, problems: list[str]) -> RetentionConfig:
    """The ``[retention]`` table; its problems are added to ``problems`` (the default stands in)."""
    if not isinstance(table, dict):
        problems.append(f"{where}: retention: must be a table ([retention]), got {_toml_type(table)}")
        return RetentionConfig()
    try:
        return RetentionConfig.model_validate(table)
    except ValidationError as exc:
        problems.extend(f"{where}: retention: {_describe(error)}" for error in exc.errors())
    return RetentionConfig()


def _label(table: str, index: int, entry: object) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"{table}[{index}] ({name!r})" if isinstance(name, str) else f"{table}[{index}]"


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean (true or false)",
    "tuple_type": "an array",
    "model_type": "a table",
}
_ARRAYS = {
    "regions": "a list of regions",
    "repositories": "a list of globs",
    "exclude": "a list of globs",
    "types": "a list of event types",
    "registries": "a list of registry names",
}
"""What each array key holds, for ``must be a list of globs, got a string``."""


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as ``key: message``, in the file's words (``exclude[0]``, ``got a string``)."""
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    kind, ctx, given = error["type"], error.get("ctx", {}), _toml_type(error["input"])
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    elif kind in _EXPECTED:
        expected = _ARRAYS.get(key, "an array") if kind == "tuple_type" else _EXPECTED[kind]
        message = f"must be {expected}, got {given}"
    elif kind in ("too_short", "string_too_short"):
        least = ctx["min_length"]
        message = "must not be empty" if least == 1 else f"must be at least {least} characters long"
    elif kind == "string_too_long":
        message = f"must be at most {ctx['max_length']} characters long"
    elif kind == "greater_than_equal":
        message = f"must be at least {ctx['ge']}, got {error['input']!r}"
    elif kind == "less_than_equal":
        message = f"must be at most {ctx['le']}, got {error['input']!r}"
    elif kind == "literal_error":
        message = f"must be one of {ctx['expected']}, got {_given(error['input'])}"
    else:  # our own checks (value_error, registry_rule), whose messages are the user's words already
        message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}" if key else message


def _given(value: object) -> str:
    """A value as a problem quotes it: a string or a number as written, anything else by its TOML type."""
    return repr(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else _toml_type(value)


_TOML_TYPES: tuple[tuple[type | UnionType, str], ...] = (
    (bool, "a boolean"),  # before int, its base class
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (datetime, "a date-time"),  # before date, its base class
    (date, "a date"),
    (time, "a time"),
    (list | tuple, "an array"),
    (dict, "a table"),
)


def _toml_type(value: object) -> str:
    """What TOML calls the type of a parsed ``value``."""
    return next((name for kind, name in _TOML_TYPES if isinstance(value, kind)), type(value).__name__)
