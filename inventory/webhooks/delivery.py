"""One delivery attempt over HTTP, and what follows from its answer.

Signed per Standard Webhooks with the ``standardwebhooks`` library: ``webhook-id`` is
the message's id (the same on every attempt), ``webhook-timestamp`` the attempt's time,
and ``webhook-signature`` one ``v1,`` signature per active secret (two while a secret
is rotated: a receiver knowing either verifies). Only a 2xx answer delivers. A 410
disables the endpoint; a 429 or 503 with ``Retry-After`` is tried again when it says;
any other failure (an error status, no answer within the timeout, a refused
connection) is tried again on the Standard Webhooks schedule, with jitter, until it runs out.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from standardwebhooks import Webhook

from inventory import redact

SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
"""Seconds before attempt n + 1, after n attempts failed (the first is immediate): 10 attempts in all."""
DISABLE_AFTER = timedelta(days=5)
"""An endpoint failing without a success for this long is disabled."""
MAX_RETRY_AFTER = 86400.0
_BODY_KEPT = 200
"""Characters of an error answer's body kept with the attempt."""
_BODY_READ = 64 * 1024
"""Bytes of an answer's body read: a longer body is left unread, and its connection closed."""


@dataclass(frozen=True)
class Answer:
    """What one attempt got: a status code, or an error (no answer)."""

    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


class Signer:
    """Signs a message with each of a webhook's secrets."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._keys = [Webhook(secret) for secret in secrets]

    def headers(self, message_id: str, at: datetime, payload: str) -> dict[str, str]:
        # ``sign`` reads the time as UTC whatever its zone: give it UTC.
        at = at.astimezone(UTC)
        return {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": " ".join(key.sign(message_id, at, payload) for key in self._keys),
        }


def client(url: str, concurrency: int) -> aiohttp.ClientSession:
    """An HTTP client for one webhook: ``concurrency`` kept-alive connections, idle ones dropped before
    common servers drop them (5 s), no cookies kept, through the environment's proxy for ``url`` if it
    names one. Call it on the event loop that uses it.

    aiohttp, not httpx: a bare httpx client spends about six times aiohttp's CPU on a request (measured
    by ``bench/webhooks.py``), and sending is most of a dispatcher's work."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=4.0),
        headers={"user-agent": "ecr-inventory-webhooks"},
        timeout=aiohttp.ClientTimeout(None),  # ``attempt`` bounds the whole exchange itself
        cookie_jar=aiohttp.DummyCookieJar(),
        proxy=proxy_for(url),
    )


def proxy_for(url: str) -> str | None:
    """The proxy that ``HTTPS_PROXY``/``HTTP_PROXY`` name for the URL's scheme, unless ``NO_PROXY`` exempts its
    host. Read once per client: aiohttp's ``trust_env`` reads it again, in a thread, on every request."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


async def attempt(
    http: aiohttp.ClientSession, url: str, signer: Signer, message_id: str, payload: str, timeout: float
) -> Answer:
    """POST the payload once, redirects not followed (a 3xx is a failure); the whole exchange, the answer's
    body included, within ``timeout`` seconds."""
    at = datetime.now(UTC)
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    try:
        async with (
            asyncio.timeout(timeout),
            http.post(
                url, data=payload.encode(), headers=signer.headers(message_id, at, payload), allow_redirects=False
            ) as response,
        ):
            status = response.status
            body = await _read(response.content)  # read, so that the connection is kept alive
            if not 200 <= status < 300:
                text = body.decode(errors="replace")
                error = f"HTTP {status}: {text[:_BODY_KEPT]}".rstrip(": ")
            if status in (429, 503):
                retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    except TimeoutError:  # before ClientError: aiohttp's own timeouts are both
        error = f"no answer within {timeout:g}s"
    except aiohttp.ClientError as exc:  # refused, reset, TLS, protocol: the endpoint's side
        # aiohttp may quote the URL (InvalidURL): as everywhere it is shown, without its credentials
        error = f"{type(exc).__name__}: {str(exc).replace(url, redact.url(url))}" if str(exc) else type(exc).__name__
    duration = round((time.perf_counter() - started) * 1000)
    return Answer(at, status, duration, error, retry_after)


async def _read(content: aiohttp.StreamReader) -> bytes:
    """The body, or its first ``_BODY_READ`` bytes."""
    body = b""
    while len(body) < _BODY_READ and (chunk := await content.read(_BODY_READ - len(body))):
        body += chunk
    return body


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds (delay-seconds or an HTTP date), at most a day; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


def next_attempt(failed_attempts: int, answer: Answer, scale: float = 1.0) -> float | None:
    """Seconds until the next attempt after ``failed_attempts`` failures (this one included); None: give up."""
    if failed_attempts >= len(SCHEDULE):
        return None
    if answer.retry_after is not None:  # the endpoint's own word: as it says, never scaled
        return answer.retry_after
    return SCHEDULE[failed_attempts] * scale * random.uniform(0.8, 1.2)
