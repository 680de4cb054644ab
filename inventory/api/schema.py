"""The GraphQL schema: queries, and the hardening every request goes through."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from functools import partial
from typing import Annotated

import strawberry
from graphql import ASTValidationRule, GraphQLError, GraphQLSyntaxError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import relay
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
from strawberry.types import Info

from inventory.api.auth import require_scope
from inventory.api.context import Context
from inventory.api.cost import QueryCost
from inventory.api.describe import describe_images
from inventory.api.diff import ImageDiffConnection, diff_connection
from inventory.api.errors import invalid_parameter, is_expected
from inventory.api.events import (
    EventConnection,
    EventFilterInput,
    TagAssignmentConnection,
    event_connection,
    event_filter,
    tag_history,
)
from inventory.api.execution import execution_context_class
from inventory.api.limits import check_text
from inventory.api.resolvers import resolver
from inventory.api.types import (
    LONG,
    AsOf,
    DescribeImagesFilter,
    DescribeImagesResult,
    Image,
    ImageConnection,
    ImageFilterInput,
    ImageIdInput,
    ImageOrder,
    Long,
    Registry,
    RegistryType,
    Repository,
    RepositoryConnection,
    RepositoryFilterInput,
    SyncRunConnection,
    SyncRunFilterInput,
    config_type_of,
    image_node_id,
)
from inventory.api.webhooks import Webhook, webhooks

log = logging.getLogger("inventory.api")
audit = logging.getLogger("inventory.api.audit")

MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 15
CACHED_QUERIES = 256


@strawberry.type
class Query:
    @resolver(description="Any Image, Repository, Registry or ImageEvent by its global id.")
    async def node(self, info: Info[Context, None], id: relay.GlobalID) -> relay.Node | None:
        check_text(id.type_name, "id")
        check_text(id.node_id, "id")
        try:
            found: relay.Node | None = await id.resolve_node(info, required=False)
        except (ValueError, KeyError, TypeError):
            raise invalid_parameter(f"id: not the id of an Image, Repository, Registry or ImageEvent: {id}") from None
        return found

    @resolver(description="The registries declared in the config.")
    async def registries(self, info: Info[Context, None]) -> list[Registry]:
        return await info.context.registries()

    @resolver()
    async def repositories(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[RepositoryFilterInput | None, strawberry.argument(name="filter")] = None,
        as_of: AsOf = None,
    ) -> RepositoryConnection:
        return await info.context.repository_connection(first, after, filter, as_of)

    @resolver(description="One repository; private ECR unless registryType says ECR_PUBLIC.")
    async def repository(
        self,
        info: Info[Context, None],
        registry_id: str,
        region: str,
        repository_name: str,
        registry_type: RegistryType = RegistryType.ECR,
        as_of: AsOf = None,
    ) -> Repository | None:
        key = (config_type_of(registry_type), registry_id, region, repository_name)
        (found,) = await info.context.repositories_or_none([key], as_of)
        return found

    @resolver(description="One image; of private ECR unless registryType says ECR_PUBLIC.")
    async def image(
        self,
        info: Info[Context, None],
        registry_id: str,
        region: str,
        repository_name: str,
        image_digest: str,
        registry_type: RegistryType = RegistryType.ECR,
        as_of: AsOf = None,
    ) -> Image | None:
        node_id = image_node_id(config_type_of(registry_type), registry_id, region, repository_name, image_digest)
        (found,) = await info.context.images_by_node_id([node_id], as_of)
        return found

    @resolver(description="Cross-account image search, newest first unless orderBy says otherwise.")
    async def images(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[ImageFilterInput | None, strawberry.argument(name="filter")] = None,
        order_by: ImageOrder = ImageOrder.PUSHED_AT,
        as_of: AsOf = None,
    ) -> ImageConnection:
        return await info.context.image_connection(first, after, filter, order_by, as_of=as_of)

    @resolver(
        description="The change feed, oldest first: every change the syncs made. On the last page nextToken is "
        "null and pageInfo.endCursor is the position to resume from later (never skipping an event)."
    )
    async def events(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[EventFilterInput | None, strawberry.argument(name="filter")] = None,
    ) -> EventConnection:
        return await event_connection(info.context, first, after, event_filter(filter))

    @resolver(
        description="Where a tag of a repository pointed over time, newest first (until null while it still does)."
    )
    async def tag_history(
        self,
        info: Info[Context, None],
        registry_id: str,
        region: str,
        repository_name: str,
        tag: str,
        first: int | None = None,
        after: str | None = None,
        registry_type: RegistryType = RegistryType.ECR,
    ) -> TagAssignmentConnection:
        repository = (config_type_of(registry_type), registry_id, region, repository_name)
        return await tag_history(info.context, repository, tag, first, after)

    @resolver(
        description="The net change per image between two times: ADDED (present at `to` only), REMOVED (at "
        "`from` only), CHANGED (at both, with different values). An image added and removed inside the window, "
        "or unchanged, does not appear. Ordered by image identity."
    )
    async def diff(
        self,
        info: Info[Context, None],
        since: Annotated[datetime, strawberry.argument(name="from")],
        until: Annotated[datetime, strawberry.argument(name="to")],
        filter: Annotated[
            ImageFilterInput | None,
            strawberry.argument(name="filter", description="Images that match it at either time."),
        ] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> ImageDiffConnection:
        return await diff_connection(info.context, since, until, filter, first, after)

    @resolver(
        description="The webhooks declared in the inventory file, by name: status, backlog, deliveries "
        "(tokens with the admin scope)."
    )
    async def webhooks(self, info: Info[Context, None]) -> list[Webhook]:
        require_scope(info, "admin")
        return await webhooks(info.context)

    @resolver(description="Sync runs, newest first: one per scope and sync.")
    async def sync_runs(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[SyncRunFilterInput | None, strawberry.argument(name="filter")] = None,
    ) -> SyncRunConnection:
        return await info.context.sync_run_connection(first, after, filter)

    @resolver(
        description="ECR's DescribeImages, answered from the inventory with ECR's semantics: of private ECR, "
        "as ECR's own API, unless registryType says ECR_PUBLIC (ECR Public's DescribeImages, which takes no filter)."
    )
    async def describe_images(
        self,
        info: Info[Context, None],
        region: str,
        repository_name: str,
        registry_type: RegistryType = RegistryType.ECR,
        registry_id: str | None = None,
        image_ids: list[ImageIdInput] | None = None,
        filter: Annotated[DescribeImagesFilter | None, strawberry.argument(name="filter")] = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> DescribeImagesResult:
        return await describe_images(
            info.context,
            registry_type=registry_type,
            registry_id=registry_id,
            region=region,
            repository_name=repository_name,
            image_ids=image_ids,
            filter=filter,
            max_results=max_results,
            next_token=next_token,
        )


def _unexpected(error: GraphQLError) -> bool:
    return not is_expected(error)


class _MaskUnexpected(MaskErrors):
    """Our own defects leave as INTERNAL_SERVER_ERROR with the request's id, which is also in the log line
    that holds the traceback: a client can quote it."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        request_id = context.request_id if isinstance(context, Context) else uuid.uuid4().hex[:12]
        log.error("unexpected error (request %s)", request_id, exc_info=error.original_error,
                  extra={"request_id": request_id})  # fmt: skip
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


def build_schema(*, introspection: bool = True) -> strawberry.Schema:
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
    built = _Schema(query=Query, extensions=extensions, config=StrawberryConfig(scalar_map={Long: LONG}))  # type: ignore[arg-type]
    built.execution_context_class = execution_context_class(built._schema)
    return built


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Expected errors are answers, not incidents: only the others are logged (by ``_MaskUnexpected``).

        A document that does not parse ends here without the operation's extensions (the parser cache
        raises before they run its end): its errors get their codes here."""
        with_codes(errors)


schema = build_schema()
"""The public schema (``schema/schema.graphql`` is its SDL)."""
