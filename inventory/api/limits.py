"""The bounds of every GraphQL argument, checked once a query is valid and before anything runs.

Every argument of every field, literal or variable, inside input objects too, is held to the read
layer's bounds (``inventory.read.bounds``: list lengths, text), and a time must be one that can be told
in UTC (``0001-01-01T00:00:00+05:00`` cannot).

A value out of bounds is an ``InvalidParameterException`` that names the argument (as
``filter.tags``) and the bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLInputObjectType, GraphQLInputType, GraphQLList, GraphQLNonNull

from inventory.read.bounds import check_list, check_text
from inventory.read.errors import ReadError, invalid_parameter


def checked_arguments(arguments: Mapping[str, Any], types: Mapping[str, GraphQLInputType]) -> int:
    """The number of list items in ``arguments`` (coerced values by name, typed by ``types``);
    InvalidParameterException for the first value out of bounds."""
    return sum(_check(value, types[name], name) for name, value in arguments.items() if name in types)


def _check(value: Any, type_: GraphQLInputType, name: str) -> int:
    if value is None:
        return 0
    if isinstance(type_, GraphQLNonNull):
        return _check(value, type_.of_type, name)
    if isinstance(type_, GraphQLList):
        items = value if isinstance(value, list | tuple) else [value]
        check_list(items, name)
        return len(items) + sum(_check(item, type_.of_type, f"{name}[{i}]") for i, item in enumerate(items))
    if isinstance(type_, GraphQLInputObjectType) and isinstance(value, Mapping):
        return sum(
            _check(value.get(field_name), field.type, f"{name}.{field_name}")
            for field_name, field in type_.fields.items()
        )
    if isinstance(value, str):
        check_text(value, name)
    elif isinstance(value, datetime):
        _check_time(value, name)
    return 0


def _check_time(value: datetime, name: str) -> None:
    try:
        if value.tzinfo is not None:
            value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _time_out_of_range(name) from None


def _time_out_of_range(name: str) -> ReadError:
    return invalid_parameter(f"{name}: the time is out of range in UTC (years 1 to 9999)")
