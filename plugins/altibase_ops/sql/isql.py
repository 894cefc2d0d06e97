"""iSQL: the ``is`` command line and the parsing of what it prints.

iSQL keeps going after an error inside a ``-f`` script and its exit status reflects only the last
statement (or 0 after ``EXIT;``), so success is read from the output: every ``[ERR-XXXXX : ...]``
is a failure unless the step kind lists that code as "already done" (``sql.steps.judge_results``).
The parser keys on result lines only — ``Alter success.``, ``1 row inserted.``, a SELECT's
header/dashes/rows/``N rows selected.``, ``[ERR-...]`` — and treats the ``iSQL>`` echo lines, when
present, only as labels.

The same command line is used by both runners (a local subprocess and a pod): the server, port,
user and password come from environment variables expanded by ``sh``, so the password is never
part of a command we build, log or put in a pod spec.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from altibase_ops.sql.steps import StatementResult

# Environment variables the command line reads; the runners set them (a Kubernetes Secret for the
# password in a pod, the Airflow Connection for a local run).
ENV_HOST = "ALTIBASE_HOST"
ENV_PORT = "ALTIBASE_PORT"
ENV_USER = "ALTIBASE_USER"
ENV_PASSWORD = "ALTIBASE_PASSWORD"

_ERROR_START = re.compile(r"^\[ERR-([0-9A-Fa-f]{5}) : ?(.*)$")
_SUCCESS = re.compile(r"^(\w+) success\.$")
_ROWS_CHANGED = re.compile(r"^(\d+) rows? (inserted|updated|deleted|merged)\.$")
_ROWS_SELECTED = re.compile(r"^(?:(\d+) rows?|No rows) selected\.$")
_DASHES = re.compile(r"^-{3,}[- ]*$")
_ECHO = re.compile(r"^iSQL> ?(.*)$")


def _row_from_line(line: str, spans: list[tuple[int, str]]) -> dict[str, str]:
    # Each value starts at its column's header offset and runs to the next column's offset.
    row = {}
    for index, (start, name) in enumerate(spans):
        end = spans[index + 1][0] if index + 1 < len(spans) else None
        row[name] = line[start:end].strip()
    return row


def parse_output(output: str) -> list[StatementResult]:
    """The results in the order iSQL printed them; unrecognised lines (banners, blanks) are skipped."""
    results: list[StatementResult] = []
    lines = output.splitlines()
    echoed: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        stripped = line.strip()
        index += 1
        if echo := _ECHO.match(stripped):
            echoed = echo.group(1).strip().rstrip(";").strip() or echoed
            continue
        if error := _ERROR_START.match(stripped):
            # the message runs until the closing bracket, possibly over several lines
            text = error.group(2)
            while not text.rstrip().endswith("]") and index < len(lines):
                text += "\n" + lines[index].rstrip()
                index += 1
            message = text.rstrip()[:-1].rstrip() if text.rstrip().endswith("]") else text.rstrip()
            code = error.group(1).upper()
            results.append(StatementResult("error", f"[ERR-{code} : {message}]", code, message,
                                           statement=echoed))
            echoed = None
            continue
        if _SUCCESS.match(stripped) or _ROWS_CHANGED.match(stripped):
            results.append(StatementResult("ok", stripped, statement=echoed))
            echoed = None
            continue
        if _ROWS_SELECTED.match(stripped):
            # a result set with no header (should not happen) still counts as a query result
            results.append(StatementResult("ok", stripped, statement=echoed))
            echoed = None
            continue
        if stripped and index < len(lines) and _DASHES.match(lines[index].strip()):
            spans = [(m.start(), m.group(0).upper()) for m in re.finditer(r"\S+", line)]
            index += 1
            rows = []
            while index < len(lines):
                row_line = lines[index].rstrip()
                if _ERROR_START.match(row_line.strip()):
                    break  # the query failed while fetching; the error is the statement's result
                index += 1
                if _ROWS_SELECTED.match(row_line.strip()):
                    results.append(StatementResult("ok", row_line.strip(), columns=[n for _, n in spans],
                                                   rows=rows, statement=echoed))
                    break
                if row_line.strip():
                    rows.append(_row_from_line(row_line, spans))
            echoed = None
    return results


def query_results(results: list[StatementResult]) -> list[dict[str, Any]] | None:
    """The XCom value: one entry per SELECT (statement, columns, rows as dicts of strings)."""
    queries = [{"statement": r.statement, "columns": r.columns, "rows": r.rows} for r in results if r.is_query]
    return queries or None


def isql_command(binary: str, script_word: str, *, sysdba: bool, nls_use: str | None = None) -> str:
    """The ``is`` command line as a shell string; connection settings come from the environment.

    ``script_word`` is the ``-f`` argument as shell text (``shlex.quote(path)``, or a quoted
    variable reference). The password is ``"$ALTIBASE_PASSWORD"``: sh expands it when it starts the
    client, so it is never in this string (what gets logged, or stored in a pod spec).
    """
    parts = [shlex.quote(binary), "-s", f'"${ENV_HOST}"', "-port", f'"${ENV_PORT}"',
             "-u", f'"${ENV_USER}"', "-p", f'"${ENV_PASSWORD}"']
    if sysdba:
        parts.append("-sysdba")
    if nls_use:
        parts += ["-NLS_USE", shlex.quote(nls_use)]
    parts += ["-silent", "-f", script_word]
    return " ".join(parts)
