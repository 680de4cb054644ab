"""The errors a read refuses with: a stable code (ECR's exception name where ECR has one) and a message
that says what was wrong. Every face shows both: GraphQL as ``extensions.code``, the ECR endpoint as
``__type`` with the HTTP status, the console as the page's message.
"""

from __future__ import annotations

from datetime import datetime

from inventory.aws.semantics import EcrError


class ReadError(EcrError):
    """A read refused on purpose (never a defect of ours)."""

    @property
    def extensions(self) -> dict[str, str]:
        """The code as GraphQL carries it (graphql-core reads an original error's ``extensions``)."""
        return {"code": self.code}


def invalid_parameter(message: str) -> ReadError:
    return ReadError("InvalidParameterException", message)


def from_ecr(error: EcrError) -> ReadError:
    """ECR's own refusal (``inventory.aws.semantics``), as the read's."""
    return ReadError(error.code, error.message, error.status)


def history_not_retained(since: datetime, argument: str = "asOf") -> ReadError:
    """A time before the inventory's retained history: what it held then is not known."""
    return ReadError(
        "HistoryNotRetained",
        f"{argument}: history is kept since {since.isoformat()}; what the inventory held before then is not known",
    )


def query_timeout() -> ReadError:
    """A statement ran past the server's statement timeout and was cancelled."""
    return ReadError(
        "QUERY_TIMEOUT",
        "the query ran past the server's statement timeout and was cancelled: "
        "ask for smaller pages or narrower filters",
        500,
    )


RETRY_AFTER_SECONDS = 5
"""What a face asks a client to wait when the database is unavailable (``Retry-After``)."""


class Unavailable(ReadError):
    """The inventory database is unavailable; retry in a few seconds."""

    def __init__(self) -> None:
        super().__init__("DATABASE_UNAVAILABLE", (self.__doc__ or "").strip(), 503)
