"""The GraphQL schema: the domains' queries composed (``inventory``, ``history``, ``sync``, ``webhooks``), and
the hardening every request goes through."""

from __future__ import annotations

import logging
import uuid
from functools import partial

import strawberry
from graphql import ASTValidationRule, GraphQLError, GraphQLSyntaxError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from inventory.api.context import Context
from inventory.api.cost import QueryCost
from inventory.api.errors import is_expected
from inventory.api.execution import execution_context_class
from inventory.api.history import HistoryQuery
from inventory.api.inventory import InventoryQuery
from inventory.api.scalars import LONG, Long
from inventory.api.sync import SyncQuery
from inventory.api.turns import TakesTurns, Turns
from inventory.api.webhooks import WebhookQuery

log = logging.getLogger("inventory.api")
audit = logging.getLogger("inventory.api.audit")

MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 15
CACHED_QUERIES = 256


Query = merge_types("Query", (InventoryQuery, HistoryQuery, SyncQuery, WebhookQuery))
"""The schema's queries: each domain's fields (inventory, history, sync, webhooks), composed."""


def _unexpected(error: GraphQLError) -> bool:
    return not is_expected(error)


class _MaskUnexpected(MaskErrors):
    """Our own defects leave as INTERNAL_SERVER_ERROR with the request's id, which is also in the log line
    that holds the traceback: a client can quote it."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        request_id = context.request_id if isinstance(context, Context) else uuid.uuid4().hex[:12]
        log.error(
            "unexpected error (request %s)", request_id, exc_info=error.original_error, extra={"request_id": request_id}
        )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        return masked


class _ErrorCodes(SchemaExtension):
    """Every error leaves with a code: syntax errors get GRAPHQL_PARSE_FAILED, GraphQL's own validation
    errors GRAPHQL_VALIDATION_FAILED."""

    def on_operation(self):  # type: ignore[no-untyped-def]
        yield
        with_codes(getattr(self.execution_context.result, "errors", None) or [])


def with_codes(errors: list[GraphQLError]) -> None:
    """Give each error without a code its own: GRAPHQL_PARSE_FAILED or GRAPHQL_VALIDATION_FAILED."""
    for error in errors:
        if error.extensions is None or "code" not in error.extensions:
            code = "GRAPHQL_PARSE_FAILED" if isinstance(error, GraphQLSyntaxError) else "GRAPHQL_VALIDATION_FAILED"
            error.extensions = {**(error.extensions or {}), "code": code}


class _Audit(SchemaExtension):
    """One line per request: who asked (the token's name, never the token), which operation, at what cost."""

    def on_operation(self):  # type: ignore[no-untyped-def]
        yield
        ec = self.execution_context
        context = ec.context
        token = context.principal.name if isinstance(context, Context) else None
        cost = context.cost if isinstance(context, Context) else None
        try:
            operation = ec.operation_name
        except Exception:  # an unparsable document has no operation
            operation = None
        request_id = context.request_id if isinstance(context, Context) else None
        audit.info(
            "graphql request=%s token=%s operation=%s cost=%s",
            request_id,
            token,
            operation,
            cost,
            extra={"request_id": request_id, "token_name": token, "operation": operation, "cost": cost},
        )


def build_schema(*, introspection: bool = True, turns: Turns | None = None) -> strawberry.Schema:
    """The schema, with every limit; costly queries take turns in ``turns``' lanes (``inventory.api.turns``)."""
    # The rules are made once, so that a query's validation is cached across requests (keyed by its rules).
    rules: list[type[ASTValidationRule]] = [
        query_depth_limiter.create_validator(MAX_DEPTH, None, None),
        max_aliases.create_validator(MAX_ALIASES),
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions: list[object] = [
        _Audit,
        _ErrorCodes,  # first in, last out: it sees the errors after masking
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(ParserCache, maxsize=CACHED_QUERIES),
        partial(AddValidationRules, rules),
        partial(ValidationCache, maxsize=CACHED_QUERIES),
        QueryCost,  # after validation: a valid document only
        partial(_MaskUnexpected, should_mask_error=_unexpected),
    ]
    if turns is not None:
        extensions.insert(extensions.index(QueryCost) + 1, partial(TakesTurns, turns))  # once costed
    built = _Schema(query=Query, extensions=extensions, config=StrawberryConfig(scalar_map={Long: LONG}))  # type: ignore[arg-type]
    # an int is its own serialization in Long (``int``): its leaves need no call either
    built.execution_context_class = execution_context_class(built._schema, {"Long": int})
    return built


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Expected errors are answers, not incidents: only the others are logged (by ``_MaskUnexpected``).

        A document that does not parse ends here without the operation's extensions (the parser cache
        raises before they run its end): its errors get their codes here."""
        with_codes(errors)


schema = build_schema()
"""The public schema (``schema/schema.graphql`` is its SDL)."""
