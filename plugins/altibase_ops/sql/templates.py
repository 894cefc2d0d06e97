"""The SQL templates under ``include/sql``: one Jinja environment with the identifier filters.

Templates never interpolate a name unchecked::

    ALTER REPLICATION {{ params.replication_name | ident }} DROP TABLE
        FROM {{ params.table | table }} TO {{ params.table | table }};

``render_sql`` renders a file for code that runs outside Airflow's templating; ``IsqlOperator`` adds
the same filters to a task's Jinja environment, so DAGs render the same files. A job adds filters of
its own (the DDL job's ``ddl`` filter accepts only statements its parser accepted) through
``render_sql(..., filters=...)`` and its DAG's ``user_defined_filters``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2

from altibase_ops.sql.identifiers import identifier, qualified_table

# include/sql sits next to plugins/ both in this repository and in an Astro-style AIRFLOW_HOME.
SQL_DIR = Path(os.environ.get("ALTIBASE_OPS_SQL_DIR") or Path(__file__).resolve().parents[3] / "include" / "sql")
SQL_FILTERS: dict[str, Callable[[Any], str]] = {"ident": identifier, "table": qualified_table}


def sql_environment(filters: Mapping[str, Callable[[Any], str]] | None = None) -> jinja2.Environment:
    """A Jinja environment over include/sql with the identifier filters; undefined names fail. One per
    set of filters, kept: its template cache spares a compile per render (a step reads its server with
    a dozen templates)."""
    return _environment(tuple(sorted((filters or {}).items())))


@functools.lru_cache(maxsize=8)
def _environment(filters: tuple[tuple[str, Callable[[Any], str]], ...]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(SQL_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters.update(SQL_FILTERS)
    env.filters.update(dict(filters))
    return env


def render_sql(template: str, *, filters: Mapping[str, Callable[[Any], str]] | None = None, **params: Any) -> str:
    """Render ``include/sql/<template>`` with ``params`` available as ``params.<name>``.

    The variable is called ``params`` so that the same file renders unchanged under Airflow,
    where task and DAG params are ``params`` in the template context.
    """
    return sql_environment(filters).get_template(template).render(params=params)
