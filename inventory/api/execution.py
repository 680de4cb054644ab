"""A faster way through plain fields: most of an image page is leaves read straight off an object.

graphql-core runs every field through the same machinery (a path, resolve info, the resolver,
awaitable checks, value completion): about 800 times for a 100-image page. A field that strawberry
resolves by reading an attribute (no resolver, no arguments, no extensions) and whose type is a
scalar, an enum or a list of them needs none of it: it is read and serialized here directly. Any
value that would not serialize cleanly (a null in a non-null field, a failing scalar) goes the
usual way, so errors are graphql-core's own; so does every other field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    Undefined,
    is_leaf_type,
    is_object_type,
)
from graphql.execution.collect_fields import GroupedFieldSet
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

Reader = Callable[[Any], Any]
SLOW = object()
"""A reader's answer when the value needs graphql-core's full path (it will raise the error)."""


def _serializer(type_: GraphQLOutputType) -> Reader | None:
    """The value's serialization, or None when the type is not (a list of) scalars or enums."""
    non_null = isinstance(type_, GraphQLNonNull)
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if is_leaf_type(inner):
        coerce = inner.coerce_output_value
        plain_strings = inner is GraphQLString  # most leaves: a str is its own serialization

        def leaf(value: Any) -> Any:
            if plain_strings and value.__class__ is str:
                return value
            if value is None:
                return SLOW if non_null else None
            try:
                coerced = coerce(value)
            except Exception:
                return SLOW
            return SLOW if coerced is None or coerced is Undefined else coerced

        return leaf
    if isinstance(inner, GraphQLList):
        item = _serializer(inner.of_type)
        if item is None:
            return None

        def items(value: Any) -> Any:
            if value is None:
                return SLOW if non_null else None
            if not isinstance(value, list | tuple):
                return SLOW
            out = [item(v) for v in value]
            return SLOW if SLOW in out else out

        return items
    return None


def plain_readers(schema: GraphQLSchema) -> dict[tuple[str, str], Reader]:
    """Readers for the fields of every object type that strawberry resolves by reading an attribute."""
    readers: dict[tuple[str, str], Reader] = {}
    for type_ in schema.type_map.values():
        if not is_object_type(type_) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if field.args or definition is None or not getattr(field.resolve, "_is_default", False):
                continue
            serialize = _serializer(field.type)
            if serialize is not None:
                readers[type_.name, name] = _reader(definition.python_name, serialize)
    return readers


def _reader(attribute: str, serialize: Reader) -> Reader:
    def read(source: Any) -> Any:
        value = getattr(source, attribute, SLOW)
        return SLOW if value is SLOW or isinstance(value, Exception) else serialize(value)

    return read


def execution_context_class(schema: GraphQLSchema) -> type[StrawberryGraphQLCoreExecutionContext]:
    readers = plain_readers(schema)

    class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # graphql-core hands every object of a list the same (memoized) field set: plan it once.
            self._plans: dict[int, tuple[GroupedFieldSet, list[tuple[str, Reader | None]]]] = {}
            self._plain = not (self.middleware_manager and self.middleware_manager.middlewares)

        def execute_fields(
            self,
            parent_type: GraphQLObjectType,
            source_value: Any,
            path: Path | None,
            grouped_field_set: GroupedFieldSet,
            position_context: Any,
        ) -> Any:
            if not self._plain:
                return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
            plan = self._plans.get(id(grouped_field_set))
            if plan is None or plan[0] is not grouped_field_set:
                fields = [
                    (response_name, readers.get((parent_type.name, details[0].node.name.value)))
                    for response_name, details in grouped_field_set.items()
                ]
                plan = self._plans[id(grouped_field_set)] = (grouped_field_set, fields)
            results: dict[str, Any] = {}
            rest: GroupedFieldSet = {}
            for response_name, read in plan[1]:
                value = SLOW if read is None else read(source_value)
                if value is SLOW:
                    rest[response_name] = grouped_field_set[response_name]
                    results[response_name] = None  # keeps the response's field order
                else:
                    results[response_name] = value
            if not rest:
                return results
            others = super().execute_fields(parent_type, source_value, path, rest, position_context)
            if self.is_awaitable(others):
                return _merged(results, rest, others)
            return _merge(results, rest, cast(dict[str, Any], others))

    return ExecutionContext


def _merge(results: dict[str, Any], rest: GroupedFieldSet, others: dict[str, Any]) -> dict[str, Any]:
    for response_name in rest:
        if response_name in others:
            results[response_name] = others[response_name]
        else:
            del results[response_name]
    return results


async def _merged(results: dict[str, Any], rest: GroupedFieldSet, others: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    return _merge(results, rest, await others)
