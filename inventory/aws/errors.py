"""AWS errors, classified once at the boundary.

retryable       throttling and transient faults: botocore's standard retry mode
                retries them; what survives the retries becomes scope-skipping
scope-skipping  the scope cannot be fully observed (access denied, throttled past
                the retries, ServerException, an expired nextToken, a repository
                deleted between pages, a network failure, a malformed response):
                it is reported and its stored rows are left untouched
fatal           anything else is a bug and propagates
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inventory.errors import InventoryError

THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"})


class ScopeUnobservable(InventoryError):
    """A scope could not be fully observed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def classify(exc: Exception) -> ScopeUnobservable | None:
    """The scope-skipping form of ``exc``, or None when it is not an AWS failure."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return ScopeUnobservable(error.get("Code", "Unknown"), error.get("Message", str(exc)))
    if isinstance(exc, BotoCoreError):
        return ScopeUnobservable(type(exc).__name__, str(exc))
    if isinstance(exc, KeyError | TypeError):
        return ScopeUnobservable("MalformedResponse", f"missing or malformed field {exc}")
    return None


def is_throttled(response: Any) -> bool:
    """Whether a response as botocore's ``needs-retry`` event gives it ((http, parsed) or None) is throttling."""
    return response is not None and response[1].get("Error", {}).get("Code") in THROTTLING_CODES
