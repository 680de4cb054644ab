"""Shell-style globs (``payments/*``) as PostgreSQL reads them: the one spelling, for every table's filters.

``*`` is any run of characters, ``?`` any one, ``[abc]``, ``[a-z]`` one of a class and
``[!abc]`` one not in it; a ``[`` without its ``]`` (or ``[]``) is itself. A class that
holds nothing (``[!]``) or a range that runs backwards (``[z-a]``) is refused
(``InvalidGlob``), so every glob that is accepted is a valid regular expression.
"""

from __future__ import annotations

import re

_PARTS = re.compile(r"(\*|\?|\[[^\]]*\])")
_SPECIAL = re.compile(r"([.^$+{}()|\\\[\]*?])")
_IN_CLASS = re.compile(r"([\\\^\-\[\]])")


class InvalidGlob(ValueError):
    """A glob that is not one: its message says why."""


def glob_regex(glob: str) -> str:
    """A shell glob (``*``, ``?``, ``[...]``) as an anchored POSIX regular expression; InvalidGlob if it is
    not a glob."""
    out = []
    for part in _PARTS.split(glob):
        if part == "*":
            out.append(".*")
        elif part == "?":
            out.append(".")
        elif part.startswith("[") and part.endswith("]") and len(part) > 2:
            out.append(_class(part, glob))
        else:
            out.append(_SPECIAL.sub(r"\\\1", part))
    return "^" + "".join(out) + "$"


def _class(part: str, glob: str) -> str:
    negated = part[1] == "!"
    members = part[2:-1] if negated else part[1:-1]
    if not members:
        raise InvalidGlob(f"{glob!r}: the class {part} holds no character")
    out = []
    i = 0
    while i < len(members):
        if i + 2 < len(members) and members[i + 1] == "-":
            low, high = members[i], members[i + 2]
            if low > high:
                raise InvalidGlob(f"{glob!r}: the range {low}-{high} in {part} runs backwards")
            out.append(f"{_escaped(low)}-{_escaped(high)}")
            i += 3
        else:
            out.append(_escaped(members[i]))
            i += 1
    return "[" + ("^" if negated else "") + "".join(out) + "]"


def _escaped(member: str) -> str:
    return _IN_CLASS.sub(r"\\\1", member)
