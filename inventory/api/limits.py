"""The bounds of every argument, checked once a query is valid and before anything runs.

Every argument of every field, literal or variable, inside input objects too:

- a list holds at most ``MAX_LIST_ITEMS`` (100, as ECR bounds ``imageIds``) items;
- a string holds at most ``MAX_STRING_LENGTH`` characters, and neither NUL nor a lone
  surrogate (neither can be stored, matched or logged as text);
- a time can be told in UTC (``0001-01-01T00:00:00+05:00`` cannot).

A value out of bounds is an ``InvalidParameterException`` that names the argument (as
``filter.tags``) and the bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLInputObjectType, GraphQLInputType, GraphQLList, GraphQLNonNull

from inventory.api.errors import ApiError, invalid_parameter
from inventory.globs import InvalidGlob, glob_regex

MAX_LIST_ITEMS = 100
"""The most items a list argument may hold."""
MAX_STRING_LENGTH = 2048
"""The most characters a string argument may hold (a cursor of the longest key is about 600)."""


def unclean(value: str) -> str | None:
    """Why ``value`` cannot be taken as text (NUL, a lone surrogate, too long), or None."""
    if len(value) > MAX_STRING_LENGTH:
        return f"at most {MAX_STRING_LENGTH} characters, got {len(value):,}"
    if "\x00" in value:
        return "must not contain NUL (\\u0000)"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "must not contain a lone surrogate (not valid Unicode)"
    return None


def check_text(value: str, name: str) -> str:
    """``value``, if it can be taken as text; InvalidParameterException naming ``name`` otherwise."""
    problem = unclean(value)
    if problem is not None:
        raise invalid_parameter(f"{name}: {problem}")
    return value


def check_globs(globs: Sequence[str] | None, name: str) -> None:
    """InvalidParameterException naming ``name`` unless every one of ``globs`` is a glob."""
    for glob in globs or ():
        try:
            glob_regex(glob)
        except InvalidGlob as exc:
            raise invalid_parameter(f"{name}: {exc}") from None


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
        if len(items) > MAX_LIST_ITEMS:
            raise invalid_parameter(f"{name}: at most {MAX_LIST_ITEMS} items, got {len(items):,}")
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


def _time_out_of_range(name: str) -> ApiError:
    return invalid_parameter(f"{name}: the time is out of range in UTC (years 1 to 9999)")
