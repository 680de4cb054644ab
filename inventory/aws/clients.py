"""boto3 clients per (registry, region), and of the event queues: assumed roles, endpoints, retries, timeouts.

A registry with ``role_arn`` gets refreshable credentials from ``sts:AssumeRole``
(with its ``external_id``), renewed by botocore before they expire. An
``endpoint_url`` in the config wins; otherwise boto3's own resolution applies,
which honours the standard ``AWS_ENDPOINT_URL_ECR``-style variables.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.loaders import create_loader
from botocore.session import get_session
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from inventory.aws.budget import Budgets
from inventory.aws.errors import is_throttled
from inventory.config import ECR_PUBLIC_REGION, EventQueueConfig, RegistryConfig

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecr_public import ECRPublicClient
    from mypy_boto3_sqs import SQSClient


class Identity(Protocol):
    """Who a client acts as: a registry or an event queue of the config."""

    @property
    def role_arn(self) -> str | None: ...
    @property
    def external_id(self) -> str | None: ...
    @property
    def endpoint_url(self) -> str | None: ...


CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=32,
    # Our requests have a fixed shape (tested against the emulator and moto), and AWS validates them
    # anyway: botocore's own check of every request is a tenth of a call's CPU for nothing.
    parameter_validation=False,
)


def client_config(max_attempts: int) -> Config:
    """Our client settings with ``max_attempts`` attempts per call (retries included)."""
    return CLIENT_CONFIG.merge(Config(retries={"mode": "standard", "total_max_attempts": max_attempts}))


SESSION_NAME = "ecr-inventory"


def _assume_role_fetcher(registry: Identity, region: str) -> Any:
    def fetch() -> dict[str, str]:
        sts = boto3.client("sts", region_name=region, endpoint_url=registry.endpoint_url, config=CLIENT_CONFIG)
        options: dict[str, Any] = {"RoleArn": registry.role_arn, "RoleSessionName": SESSION_NAME}
        if registry.external_id is not None:
            options["ExternalId"] = registry.external_id
        credentials = sts.assume_role(**options)["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    return fetch


def parse_timestamp(value: Any) -> datetime:
    """Timestamps as UTC datetimes (``datetime.timezone.utc``) whatever the machine's zone.

    botocore's default gives ``tzlocal()`` datetimes for the epoch numbers ECR sends;
    UTC ones compare, hash, pickle and COPY faster and print the same everywhere.
    """
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        return botocore_parse_timestamp(value).astimezone(UTC)


_LOADER = create_loader()
"""Shared by every session: service models and endpoint rules are parsed from botocore's JSON
once per process, not once per client (that parsing was most of a small region's sync)."""


def session_for(registry: Identity, region: str) -> boto3.Session:
    """A boto3 session acting as ``registry``'s account (its role when one is set)."""
    botocore_session = get_session()
    botocore_session.register_component("data_loader", _LOADER)
    botocore_session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    botocore_session.set_config_variable("region", region)
    if registry.role_arn is not None:
        fetch = _assume_role_fetcher(registry, region)
        credentials = RefreshableCredentials.create_from_metadata(
            metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
        )
        botocore_session._credentials = credentials  # type: ignore[attr-defined]  # no public setter
    return boto3.Session(botocore_session=botocore_session)


def ecr_client(
    registry: RegistryConfig, region: str, config: Config = CLIENT_CONFIG, session: boto3.Session | None = None
) -> ECRClient:
    """A private ECR client for ``registry`` in ``region`` (from ``session``, else a session of its own)."""
    session = session or session_for(registry, region)
    return session.client("ecr", region_name=region, endpoint_url=registry.endpoint_url, config=config)


def ecr_public_client(
    registry: RegistryConfig, config: Config = CLIENT_CONFIG, session: boto3.Session | None = None
) -> ECRPublicClient:
    """An ECR Public client for ``registry`` (ECR Public lives in us-east-1 only)."""
    session = session or session_for(registry, ECR_PUBLIC_REGION)
    return session.client(
        "ecr-public", region_name=ECR_PUBLIC_REGION, endpoint_url=registry.endpoint_url, config=config
    )


def sqs_client(queue: EventQueueConfig, wait_seconds: float, max_attempts: int = 5) -> SQSClient:
    """A client of ``queue``'s region (its role when one is set) whose reads outlast a long poll of
    ``wait_seconds``. Without an ``endpoint_url``, boto3's resolution applies (``AWS_ENDPOINT_URL_SQS``)."""
    config = client_config(max_attempts).merge(Config(read_timeout=wait_seconds + 10))
    session = session_for(queue, queue.region)
    return session.client("sqs", region_name=queue.region, endpoint_url=queue.endpoint_url, config=config)


@dataclass
class CallStats:
    """HTTP attempts made and attempts answered with throttling."""

    api_calls: int = 0
    throttled_calls: int = 0


class CallCounter:
    """Counts the calls of watched clients, per thread (botocore runs its hooks in the calling
    thread), so concurrent scopes sharing a client each see their own calls."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _counts(self) -> CallStats:
        counts: CallStats | None = getattr(self._local, "counts", None)
        if counts is None:
            counts = self._local.counts = CallStats()
        return counts

    def _sent(self, **_: Any) -> None:
        self._counts().api_calls += 1

    def _answered(self, response: Any = None, **_: Any) -> None:
        if is_throttled(response):
            self._counts().throttled_calls += 1

    def snapshot(self) -> CallStats:
        """This thread's calls so far."""
        counts = self._counts()
        return CallStats(counts.api_calls, counts.throttled_calls)

    def since(self, before: CallStats) -> CallStats:
        """This thread's calls since ``before`` (a snapshot)."""
        now = self._counts()
        return CallStats(now.api_calls - before.api_calls, now.throttled_calls - before.throttled_calls)

    def watch(self, client: Any) -> None:
        client.meta.events.register("before-send", self._sent)
        client.meta.events.register_first("needs-retry", self._answered)


class ClientFactory:
    """One client per (registry, region), made on first use by any thread; calls counted in
    ``stats``; with ``budgets``, each client spends from its (account, region) rate budget."""

    def __init__(self, max_attempts: int = 5, budgets: Budgets | None = None) -> None:
        self.stats = CallCounter()
        self.budgets = budgets
        self.config = client_config(max_attempts)
        self._clients: dict[tuple[RegistryConfig, str], Any] = {}
        self._sessions: dict[tuple[str | None, str | None, str | None], boto3.Session] = {}
        self._lock = threading.Lock()

    def __call__(self, registry: RegistryConfig, region: str) -> Any:
        key = (registry, region)
        with self._lock:  # boto3 clients are thread-safe once made; sessions and making clients are not
            if key not in self._clients:
                # One session per identity: every registry reached with the same credentials shares it
                # (a session costs more to make than a client).
                identity = (registry.role_arn, registry.external_id, registry.endpoint_url)
                if identity not in self._sessions:
                    self._sessions[identity] = session_for(registry, region)
                session = self._sessions[identity]
                client: Any = (
                    ecr_public_client(registry, self.config, session)
                    if registry.type == "ecr-public"
                    else ecr_client(registry, region, self.config, session)
                )
                self.stats.watch(client)
                if self.budgets is not None:
                    self.budgets.attach(client, registry.account_id, region)
                self._clients[key] = client
            return self._clients[key]
