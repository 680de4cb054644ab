"""A faster way through plain fields: most of an image page is leaves read straight off an object.

graphql-core runs every field through the same machinery (a path, resolve info, the resolver,
awaitable checks, value completion): about 800 times for a 100-image page. A field that strawberry
resolves by reading an attribute (no resolver, no arguments, no extensions) and whose type is a
scalar, an enum or a list of them needs none of it: it is read and serialized here directly. So
does such a field whose type is a list of objects when every field selected on them is one of those
(an image page's ``nodes``, an event's ``changes``): one loop per object, without a call for a value
that is its own serialization (a str in a String field). Any value that would not serialize cleanly
(a null in a non-null field, a failing scalar, an object of another type) goes the usual way, so
errors are graphql-core's own; so does every other field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    Undefined,
    is_leaf_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

Reader = Callable[[Any], Any]
SLOW = object()
"""A reader's answer when the value needs graphql-core's full path (it will raise the error)."""
_SEQUENCES = (list, tuple)
_SELF_SERIALIZED: dict[str, type] = {GraphQLString.name: str, GraphQLID.name: str, GraphQLBoolean.name: bool}
"""The classes whose instances (exactly: not a subclass's) are their own serialization in these scalars."""
SelfSerialized = Mapping[str, type]
"""Scalars' names → the class whose instances are their own serialization in it."""


def _nullable(type_: Any) -> Any:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def _self_serialized(type_: GraphQLOutputType, selves: SelfSerialized) -> type | None:
    """The class whose values a leaf of ``type_`` (null or not) answers as they are: str for a String."""
    inner = _nullable(type_)
    return selves.get(inner.name) if isinstance(inner, GraphQLScalarType) else None


def _serializer(type_: GraphQLOutputType, selves: SelfSerialized) -> Reader | None:
    """The value's serialization, or None when the type is not (a list of) scalars or enums."""
    non_null = isinstance(type_, GraphQLNonNull)
    inner = _nullable(type_)
    if is_leaf_type(inner):
        coerce = inner.coerce_output_value
        same = _self_serialized(inner, selves)  # most leaves: a str is its own serialization

        def leaf(value: Any) -> Any:
            if value.__class__ is same:
                return value
            if value is None:
                return SLOW if non_null else None
            if isinstance(value, Exception):  # graphql-core's: a returned exception is the field's error
                return SLOW
            try:
                coerced = coerce(value)
            except Exception:
                return SLOW
            return SLOW if coerced is None or coerced is Undefined else coerced

        return leaf
    if isinstance(inner, GraphQLList):
        item = _serializer(inner.of_type, selves)
        if item is None:
            return None
        item_same = _self_serialized(inner.of_type, selves)

        def items(value: Any) -> Any:
            if value is None:
                return SLOW if non_null else None
            if not isinstance(value, _SEQUENCES):
                return SLOW
            for v in value:
                if v.__class__ is not item_same:  # one needs its serialization (or fails): each through ``item``
                    out = [v if v.__class__ is item_same else item(v) for v in value]
                    return SLOW if SLOW in out else out
            return list(value)

        return items
    return None


@dataclass(frozen=True)
class Leaf:
    """A plain field of (a list of) scalars or enums: the attribute it reads and its serialization."""

    attribute: str
    serialize: Reader
    same: type | None
    """The class whose values are their own serialization (``_self_serialized``), if any."""

    def read(self, source: Any) -> Any:
        value = getattr(source, self.attribute, SLOW)
        return SLOW if value is SLOW else self.serialize(value)


@dataclass(frozen=True)
class ObjectList:
    """A plain field whose type is a list of objects: read here when their selected fields all are leaves."""

    attribute: str
    item_type: GraphQLObjectType
    non_null: bool
    items_non_null: bool

    def reader(self, fields: list[tuple[str, Leaf]], source_type: Any) -> Reader:
        """Reads the list, each item's fields in one loop (no call for a value that is its own serialization)."""
        plan = [(name, leaf.attribute, leaf.same, leaf.serialize) for name, leaf in fields]

        def read(source: Any) -> Any:
            value = getattr(source, self.attribute, SLOW)
            if value is None:
                return SLOW if self.non_null else None
            if value is SLOW or not isinstance(value, _SEQUENCES):
                return SLOW
            out: list[dict[str, Any] | None] = []
            for item in value:
                if item is None:
                    if self.items_non_null:
                        return SLOW
                    out.append(None)
                    continue
                if source_type is not None and item.__class__ is not source_type:
                    return SLOW
                row = {}
                for response_name, attribute, same, serialize in plan:
                    field_value = getattr(item, attribute, SLOW)
                    if field_value.__class__ is not same:
                        field_value = SLOW if field_value is SLOW else serialize(field_value)
                        if field_value is SLOW:
                            return SLOW
                    row[response_name] = field_value
                out.append(row)
            return out

        return read


def _object_list(field: GraphQLField, attribute: str) -> ObjectList | None:
    non_null = isinstance(field.type, GraphQLNonNull)
    list_type = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if not isinstance(list_type, GraphQLList):
        return None
    items_non_null = isinstance(list_type.of_type, GraphQLNonNull)
    item = list_type.of_type.of_type if isinstance(list_type.of_type, GraphQLNonNull) else list_type.of_type
    return ObjectList(attribute, item, non_null, items_non_null) if is_object_type(item) else None


def plain_readers(
    schema: GraphQLSchema, self_serialized: SelfSerialized | None = None
) -> tuple[dict[tuple[str, str], Leaf], dict[tuple[str, str], ObjectList]]:
    """The leaf fields of every object type that strawberry resolves by reading an attribute, and those
    of its plain fields that are lists of objects; ``self_serialized`` adds scalars of the schema's own
    (by name) to those whose values of a class are their own serialization."""
    selves = {**_SELF_SERIALIZED, **(self_serialized or {})}
    readers: dict[tuple[str, str], Leaf] = {}
    lists: dict[tuple[str, str], ObjectList] = {}
    for type_ in schema.type_map.values():
        if not is_object_type(type_) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if field.args or definition is None or not getattr(field.resolve, "_is_default", False):
                continue
            serialize = _serializer(field.type, selves)
            if serialize is not None:
                same = _self_serialized(field.type, selves)
                readers[type_.name, name] = Leaf(definition.python_name, serialize, same)
            elif (objects := _object_list(field, definition.python_name)) is not None:
                lists[type_.name, name] = objects
    return readers, lists


def execution_context_class(
    schema: GraphQLSchema, self_serialized: SelfSerialized | None = None
) -> type[StrawberryGraphQLCoreExecutionContext]:
    readers, lists = plain_readers(schema, self_serialized)

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
                    (response_name, self._reader(parent_type, details))
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

        def _reader(self, parent_type: GraphQLObjectType, details: FieldDetailsList) -> Reader | None:
            """The field's fast reader, if it has one for this selection."""
            key = (parent_type.name, details[0].node.name.value)
            objects = lists.get(key)
            if objects is None:
                leaf = readers.get(key)
                return None if leaf is None else leaf.read
            item_type = objects.item_type
            sub_fields, deferred, _ = self.collect_subfields(item_type, details)
            fields = [(name, readers.get((item_type.name, sub[0].node.name.value))) for name, sub in sub_fields.items()]
            if deferred or not fields or any(leaf is None for _, leaf in fields):
                return None
            return objects.reader(cast(list[tuple[str, Leaf]], fields), _python_type(item_type))

    return ExecutionContext


def _python_type(type_: GraphQLObjectType) -> type | None:
    """The strawberry class an object type's values are (None: unknown, no check)."""
    definition = (type_.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    origin = getattr(definition, "origin", None)
    return origin if isinstance(origin, type) else None


def _merge(results: dict[str, Any], rest: GroupedFieldSet, others: dict[str, Any]) -> dict[str, Any]:
    for response_name in rest:
        if response_name in others:
            results[response_name] = others[response_name]
        else:
            del results[response_name]
    return results


async def _merged(results: dict[str, Any], rest: GroupedFieldSet, others: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    return _merge(results, rest, await others)
