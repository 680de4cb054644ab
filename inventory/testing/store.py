"""The emulator's state: accounts, registries, repositories, images, tokens and faults.

Everything lives in memory behind one lock. Images are kept in push order, each
with a sequence number that paging tokens remember (a keyset position), so a
listing stays stable when images are added or removed between two pages.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from inventory.testing.sqs import Queue, Queues

RegistryType = Literal["ecr", "ecr-public"]
DEFAULT_ACCOUNT = "123456789012"
PUBLIC_REGION = "us-east-1"

# ImageDetail fields that only private ECR returns (ECR Public has none of them).
PRIVATE_ONLY_FIELDS = (
    "imageScanStatus",
    "imageScanFindingsSummary",
    "lastRecordedPullTime",
    "subjectManifestDigest",
    "imageStatus",
    "lastArchivedAt",
    "lastActivatedAt",
)
TIMESTAMP_FIELDS = frozenset(
    {
        "imagePushedAt",
        "lastRecordedPullTime",
        "lastArchivedAt",
        "lastActivatedAt",
        "imageScanCompletedAt",
        "vulnerabilitySourceUpdatedAt",
    }
)
SETTABLE_FIELDS = frozenset(
    {
        "imageTags",
        "imageSizeInBytes",
        "imagePushedAt",
        "imageManifestMediaType",
        "artifactMediaType",
        *PRIVATE_ONLY_FIELDS,
    }
)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


def utcnow() -> datetime:
    return datetime.now(UTC)


def digest_of(manifest: str) -> str:
    """The ``sha256:`` digest of an image manifest, as a registry computes it."""
    return "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()


@dataclass
class Image:
    """One image; ``detail`` holds its ImageDetail fields with ECR's names."""

    seq: int
    image_digest: str
    detail: dict[str, Any]

    @property
    def tags(self) -> list[str]:
        tags: list[str] = self.detail.setdefault("imageTags", [])
        return tags

    @property
    def status(self) -> str:
        return str(self.detail.get("imageStatus", "ACTIVE"))


@dataclass
class Repository:
    seq: int
    registry_type: RegistryType
    registry_id: str
    region: str
    name: str
    created_at: datetime
    images: dict[str, Image] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        if self.registry_type == "ecr-public":
            return f"arn:aws:ecr-public::{self.registry_id}:repository/{self.name}"
        return f"arn:aws:ecr:{self.region}:{self.registry_id}:repository/{self.name}"

    @property
    def uri(self) -> str:
        if self.registry_type == "ecr-public":
            return f"public.ecr.aws/a{self.registry_id[-8:]}/{self.name}"
        return f"{self.registry_id}.dkr.ecr.{self.region}.amazonaws.com/{self.name}"

    def image_by_tag(self, tag: str) -> Image | None:
        return next((image for image in self.images.values() if tag in image.tags), None)


@dataclass
class Token:
    """What a ``nextToken`` stands for: where a listing stopped, and for which request."""

    binding: tuple[Any, ...]
    after_seq: int
    expired: bool = False


@dataclass
class Faults:
    """Faults armed through the admin API."""

    throttle: dict[str, int] = field(default_factory=dict)
    server_error: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    """operation → answers to send malformed (not what the API documents), ``malformed_how``."""
    malformed_how: str = "identity"
    denied_accounts: set[str] = field(default_factory=set)
    delete_after_page: set[tuple[str, str, str, str]] = field(default_factory=set)
    expire_next_token: bool = False
    latency_seconds: float = 0.0
    drop_events: float = 0.0
    """The fraction of ECR events lost on their way to the queues (0..1): delivery is best effort."""
    rate_limits: dict[str, float] = field(default_factory=dict)
    """account → calls per second it is allowed; beyond, ``ThrottlingException``."""
    recent_calls: dict[str, deque[float]] = field(default_factory=dict)

    def over_rate(self, accounts: set[str], now: float) -> str | None:
        """The rate-limited account among ``accounts`` this call would exceed, if any; counts the call."""
        for account in sorted(accounts & self.rate_limits.keys()):
            calls = self.recent_calls.setdefault(account, deque())
            while calls and calls[0] <= now - 1.0:
                calls.popleft()
            if len(calls) >= self.rate_limits[account]:
                return account
            calls.append(now)
        return None


class Store:
    """All the emulator's state; use ``with store.locked():`` around every access."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._seq = 0
        self.repositories: dict[tuple[RegistryType, str, str, str], Repository] = {}
        self.access_keys: dict[str, str] = {}
        self.tokens: dict[str, Token] = {}
        self.faults = Faults()
        self.calls: dict[str, int] = {}
        self.queues: Queues = {}
        self.event_queues: list[tuple[str, str, str]] = []
        """The queues every ECR event is sent to (``inventory.testing.events``)."""
        self.events_emitted = 0
        self.events_dropped = 0
        self.random = random.Random()

    @contextmanager
    def locked(self) -> Iterator[Store]:
        with self._lock:
            yield self

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def reset(self) -> None:
        with self._lock:
            self.__init__()  # type: ignore[misc]

    # accounts ---------------------------------------------------------------

    def account_of(self, access_key_id: str | None) -> str:
        """The account that credentials act as: assumed-role keys map to their role's account."""
        return self.access_keys.get(access_key_id or "", DEFAULT_ACCOUNT)

    def issue_credentials(self, account: str) -> dict[str, str]:
        access_key_id = "ASIA" + secrets.token_hex(8).upper()
        self.access_keys[access_key_id] = account
        return {
            "AccessKeyId": access_key_id,
            "SecretAccessKey": secrets.token_urlsafe(30),
            "SessionToken": secrets.token_urlsafe(60),
        }

    # repositories and images ------------------------------------------------

    def repository(self, registry_type: RegistryType, registry_id: str, region: str, name: str) -> Repository | None:
        return self.repositories.get((registry_type, registry_id, _region(registry_type, region), name))

    def create_repository(
        self,
        registry_type: RegistryType,
        registry_id: str,
        region: str,
        name: str,
        created_at: datetime | None = None,
    ) -> Repository:
        region = _region(registry_type, region)
        repository = Repository(self.next_seq(), registry_type, registry_id, region, name, created_at or utcnow())
        self.repositories[(registry_type, registry_id, region, name)] = repository
        return repository

    def delete_repository(self, repository: Repository) -> None:
        key = (repository.registry_type, repository.registry_id, repository.region, repository.name)
        del self.repositories[key]

    def repositories_of(self, registry_type: RegistryType, registry_id: str, region: str) -> list[Repository]:
        region = _region(registry_type, region)
        return sorted(
            (
                repository
                for (kind, account, where, _), repository in self.repositories.items()
                if (kind, account, where) == (registry_type, registry_id, region)
            ),
            key=lambda repository: repository.seq,
        )

    def add_image(self, repository: Repository, detail: dict[str, Any]) -> Image:
        """Add an image, or update the one with its digest; a tag moves to the image it is put on."""
        digest = detail["imageDigest"]
        for tag in detail.get("imageTags") or []:
            holder = repository.image_by_tag(tag)
            if holder is not None and holder.image_digest != digest:
                holder.tags.remove(tag)
        previous = repository.images.get(digest)
        base = (
            previous.detail
            if previous
            else {
                "imageSizeInBytes": 0,
                "imagePushedAt": utcnow(),
                "imageManifestMediaType": DOCKER_MANIFEST,
            }
        )
        detail = {**base, **detail, "imageTags": list(detail.get("imageTags") or [])}
        if repository.registry_type == "ecr":
            detail.setdefault("imageStatus", "ACTIVE")
        image = Image(previous.seq if previous else self.next_seq(), digest, detail)
        repository.images[digest] = image
        return image

    def create_queue(self, account: str, region: str, name: str) -> Queue:
        key = (account, region, name)
        if key not in self.queues:
            self.queues[key] = Queue(account, region, name)
        return self.queues[key]

    # tokens -----------------------------------------------------------------

    def issue_token(self, binding: tuple[Any, ...], after_seq: int) -> str:
        token = secrets.token_urlsafe(48)
        self.tokens[token] = Token(binding, after_seq, expired=self.faults.expire_next_token)
        self.faults.expire_next_token = False
        return token

    def expire_tokens(self) -> int:
        for token in self.tokens.values():
            token.expired = True
        return len(self.tokens)

    # faults -----------------------------------------------------------------

    def take_fault(self, kind: Literal["throttle", "server_error", "malformed"], operation: str) -> bool:
        """Consume one armed fault of ``kind`` for ``operation``, if any."""
        armed = getattr(self.faults, kind)
        for key in (operation, "*"):
            if armed.get(key, 0) > 0:
                armed[key] -= 1
                return True
        return False


def _region(registry_type: RegistryType, region: str) -> str:
    return PUBLIC_REGION if registry_type == "ecr-public" else region


def synthetic_digest(*parts: object) -> str:
    """A stable, valid-looking digest for seeded images."""
    return digest_of("/".join(str(part) for part in parts))
