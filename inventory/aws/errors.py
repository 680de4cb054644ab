"""AWS errors, classified once at the boundary (see the tree in ``inventory.errors``).

retryable       throttling and transient faults: botocore's standard retry mode
                retries them; what survives the retries becomes scope-skipping
scope-skipping  botocore's ``ClientError`` (an error AWS answered), and what the network or
                the credentials did (connection and HTTP errors, timeouts, missing or
                unobtainable credentials): ``ScopeUnobservable``, raised by ``aws_calls``
                around the calls themselves and nowhere else
fatal           anything else is a bug and propagates, botocore's own client-side errors
                included (an unknown service, a parameter it refuses, a bad pagination
                config): those are ours to fix, not AWS's
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    TokenRetrievalError,
)

from inventory.errors import ScopeUnobservable

NETWORK_OR_CREDENTIALS = (
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
)
"""botocore's errors that say what the network or the credentials did (not our code)."""

THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"})


def unobservable(exc: Exception) -> ScopeUnobservable:
    """The scope-skipping form of an AWS or network failure."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return ScopeUnobservable(error.get("Message", str(exc)), code=error.get("Code", "Unknown"))
    return ScopeUnobservable(str(exc), code=type(exc).__name__)


@contextmanager
def aws_calls() -> Iterator[None]:
    """Around AWS calls only: what AWS or the network did becomes ``ScopeUnobservable``."""
    try:
        yield
    except (ClientError, *NETWORK_OR_CREDENTIALS) as exc:
        raise unobservable(exc) from exc


def is_throttled(response: Any) -> bool:
    """Whether a response as botocore's ``needs-retry`` event gives it ((http, parsed) or None) is throttling."""
    return response is not None and response[1].get("Error", {}).get("Code") in THROTTLING_CODES
