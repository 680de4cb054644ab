"""Shell-style globs (``payments/*``) as PostgreSQL reads them: the one spelling, for every table's filters."""

from __future__ import annotations

import re


def glob_regex(glob: str) -> str:
    """A shell glob (``*``, ``?``, ``[...]``) as an anchored POSIX regular expression."""
    out = []
    for part in re.split(r"(\*|\?|\[[^\]]*\])", glob):
        if part == "*":
            out.append(".*")
        elif part == "?":
            out.append(".")
        elif part.startswith("[") and part.endswith("]") and len(part) > 2:
            out.append("[" + ("^" + part[2:-1] if part[1] == "!" else part[1:-1]) + "]")
        else:
            out.append(re.sub(r"([.^$+{}()|\\\[\]*?])", r"\\\1", part))
    return "^" + "".join(out) + "$"
