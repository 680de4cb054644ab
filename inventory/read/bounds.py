"""The bounds of what a reader may ask, whatever face it comes through: list lengths, text, globs.

- a list holds at most ``MAX_LIST_ITEMS`` (100, as ECR bounds ``imageIds``) items;
- a string holds at most ``MAX_STRING_LENGTH`` characters, and neither NUL nor a lone surrogate
  (neither can be stored, matched or logged as text);
- a repository-name glob is a valid glob.

A value out of bounds is an ``InvalidParameterException`` that names the argument and the bound.
"""

from __future__ import annotations

from collections.abc import Sequence

from inventory.globs import InvalidGlob, glob_regex
from inventory.read.errors import invalid_parameter

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


def check_list(items: Sequence[object], name: str) -> None:
    """InvalidParameterException naming ``name`` if ``items`` holds more than ``MAX_LIST_ITEMS``."""
    if len(items) > MAX_LIST_ITEMS:
        raise invalid_parameter(f"{name}: at most {MAX_LIST_ITEMS} items, got {len(items):,}")


def check_globs(globs: Sequence[str] | None, name: str) -> None:
    """InvalidParameterException naming ``name`` unless every one of ``globs`` is a glob."""
    for glob in globs or ():
        try:
            glob_regex(glob)
        except InvalidGlob as exc:
            raise invalid_parameter(f"{name}: {exc}") from None
