"""Errors the API returns on purpose: a message that says what was wrong, and a stable code.

Every expected error is a ``GraphQLError`` with ``extensions.code`` (ECR's
exception names where ECR has one). Anything else is masked by ``MaskErrors``
and logged with the request id.
"""

from __future__ import annotations

from datetime import datetime

from graphql import GraphQLError

from inventory.aws.semantics import EcrError


class ApiError(GraphQLError):
    """An expected error: shown to the client with its code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, extensions={"code": code})
        self.code = code


def invalid_parameter(message: str) -> ApiError:
    return ApiError("InvalidParameterException", message)


def history_not_retained(since: datetime, argument: str = "asOf") -> ApiError:
    """A time before the inventory's retained history: what it held then is not known."""
    return ApiError(
        "HistoryNotRetained",
        f"{argument}: history is kept since {since.isoformat()}; what the inventory held before then is not known",
    )


def query_timeout() -> ApiError:
    """A statement ran past the server's ``--statement-timeout`` and was cancelled."""
    return ApiError(
        "QUERY_TIMEOUT",
        "the query ran past the server's statement timeout and was cancelled: "
        "ask for smaller pages or narrower filters",
    )


def database_unavailable() -> ApiError:
    """The database cannot be reached: the request is answered HTTP 503 with ``Retry-After``."""
    return ApiError("DATABASE_UNAVAILABLE", "the inventory database is unavailable; retry in a few seconds")


def from_ecr(error: EcrError) -> ApiError:
    return ApiError(error.code, error.message)


def is_expected(error: GraphQLError) -> bool:
    """Errors the client may see: ours, and GraphQL's own validation and parse errors."""
    original = error.original_error
    return original is None or isinstance(original, ApiError | GraphQLError)
