"""Identifier validation and SQL template rendering.

Every replication, user or table name that reaches SQL passes through ``identifier`` or
``qualified_table`` first: a strict pattern, then upper-casing (Altibase stores unquoted names in
upper case, and the performance views report them that way). A name that does not match is
refused; nothing is quoted or escaped, so nothing can be smuggled in.

Templates under ``include/sql`` use the same functions as Jinja filters::

    ALTER REPLICATION {{ params.replication_name | ident }} DROP TABLE
        FROM {{ params.table | table }} TO {{ params.table | table }};

``render_sql`` renders such a file for code that runs outside Airflow's templating (the sensors);
``IsqlOperator`` adds the filters to the task's Jinja environment, so DAGs render the same files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jinja2

IDENTIFIER_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")

# include/sql sits next to plugins/ both in this repository and in an Astro-style AIRFLOW_HOME.
SQL_DIR = Path(os.environ.get("ALTIBASE_OPS_SQL_DIR") or Path(__file__).resolve().parents[2] / "include" / "sql")


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


def ddl_statement(text: Any) -> str:
    """A user's DDL statement, only after ddl_statements.parse_ddl accepted it (one accepted form)."""
    from altibase_ops.ddl_statements import parse_ddl  # imported late: it builds on this module

    return parse_ddl(text).text


SQL_FILTERS = {"ident": identifier, "table": qualified_table, "ddl": ddl_statement}


def sql_environment() -> jinja2.Environment:
    """A Jinja environment over include/sql with the identifier filters; undefined names fail."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(SQL_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters.update(SQL_FILTERS)
    return env


def render_sql(template: str, **params: Any) -> str:
    """Render ``include/sql/<template>`` with ``params`` available as ``params.<name>``.

    The variable is called ``params`` so that the same file renders unchanged under Airflow,
    where task and DAG params are ``params`` in the template context.
    """
    return sql_environment().get_template(template).render(params=params)
