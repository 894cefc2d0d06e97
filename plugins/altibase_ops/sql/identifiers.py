"""Identifier validation: every name that reaches SQL passes through here first.

Every replication, user or table name passes ``identifier`` or ``qualified_table``: a strict
pattern, then upper-casing (Altibase stores unquoted names in upper case, and the performance views
report them that way). A name that does not match is refused; nothing is quoted or escaped, so
nothing can be smuggled in. The same functions are the ``ident`` and ``table`` filters of the SQL
templates (``altibase_ops.sql.templates``).

Server names and Airflow connection ids have one pattern each here, shared by every job's params.
"""

from __future__ import annotations

import re
from typing import Any

IDENTIFIER_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
# A server's name in a pair (also a pool name's part): letters, digits, '_', '-', '.'; up to 63.
SERVER_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
CONN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,250}")


class InvalidIdentifierError(ValueError):
    """A name that would have to be quoted or escaped to be used in SQL."""


def identifier(name: Any) -> str:
    """``name`` upper-cased, after checking it against IDENTIFIER_PATTERN."""
    if not isinstance(name, str) or not IDENTIFIER_PATTERN.fullmatch(name):
        raise InvalidIdentifierError(
            f"{name!r} is not a valid identifier: expected a letter followed by up to 39 letters, "
            "digits or underscores"
        )
    return name.upper()


def qualified_table(name: Any) -> str:
    """``USER.TABLE`` with both parts validated; a table without its user is refused.

    Replication statements name tables as user.table on both sides, so an unqualified name would
    silently mean "the connecting user's table".
    """
    parts = name.split(".") if isinstance(name, str) else []
    if len(parts) != 2:
        raise InvalidIdentifierError(f"{name!r} is not a qualified table name: expected USER.TABLE")
    return f"{identifier(parts[0])}.{identifier(parts[1])}"


def split_top_level(body: str) -> list[str]:
    """Split a column list on the commas that are not inside a type's parentheses (stripped parts)."""
    parts, depth, current = [], 0, []
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]
