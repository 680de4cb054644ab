"""Errors the API returns on purpose: a message that says what was wrong, and a stable code.

Every expected error has ``extensions.code``: the read layer's refusals (``inventory.read.errors``,
ECR's exception names where ECR has one) and the API's own (``ApiError``: a forbidden field, a query
too costly). Anything else is masked by ``MaskErrors`` and logged with the request id.
"""

from __future__ import annotations

from graphql import GraphQLError

from inventory.read.errors import ReadError


class ApiError(GraphQLError):
    """An expected error of the API itself: shown to the client with its code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, extensions={"code": code})
        self.code = code


def is_expected(error: GraphQLError) -> bool:
    """Errors the client may see: the reads' refusals, ours, and GraphQL's own validation and parse errors."""
    original = error.original_error
    return original is None or isinstance(original, ApiError | ReadError | GraphQLError)
