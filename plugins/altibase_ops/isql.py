"""iSQL work: split a script, build the ``is`` command line, parse its output, judge the result.

iSQL keeps going after an error inside a ``-f`` script and its exit status reflects only the last
statement (or 0 after ``EXIT;``), so success is read from the output: every ``[ERR-XXXXX : ...]``
is a failure unless the step kind lists that code as "already done" (ALREADY_DONE, the one table
that decides it). The parser keys on result lines only — ``Alter success.``, ``1 row inserted.``,
a SELECT's header/dashes/rows/``N rows selected.``, ``[ERR-...]`` — and treats the ``iSQL>`` echo
lines, when present, only as labels.

The same command line is used by both runners (a local subprocess and a pod): the server, port,
user and password come from environment variables expanded by ``sh``, so the password is never
part of a command we build, log or put in a pod spec.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from airflow.sdk.exceptions import AirflowException


class StepKind(StrEnum):
    """Kinds of iSQL step, each with its own set of "already done" error codes."""

    REPLICATION_STOP = "replication_stop"
    REPLICATION_START = "replication_start"
    REPLICATION_FLUSH = "replication_flush"
    REPLICATION_DROP_TABLE = "replication_drop_table"
    REPLICATION_ADD_TABLE = "replication_add_table"
    ADMIN_MODE = "admin_mode"
    SQL_APPLY_MODE = "sql_apply_mode"
    DDL = "ddl"
    QUERY = "query"
    PROVISION_CREATE = "provision_create"
    REPLICATION_DROP = "replication_drop"


# The single place that decides which errors mean "this step was already done", so a cleared task
# can be re-run. A code is accepted only for its own step kind: 61027 after STOP means "already
# stopped", but after FLUSH it means the gap can no longer be drained — a real failure.
ALREADY_DONE: dict[StepKind, frozenset[str]] = {
    StepKind.REPLICATION_STOP: frozenset({"61027"}),  # Replication did not start.
    StepKind.REPLICATION_START: frozenset({"6100A"}),  # The sender has already been started.
    StepKind.REPLICATION_DROP_TABLE: frozenset({"6111A"}),  # No replication items found.
    # ADD TABLE of a table already in the replication: the manuals name no error; 3129B
    # "Duplicate table names." is the closest documented one and what the simulator raises.
    StepKind.REPLICATION_ADD_TABLE: frozenset({"3129B"}),
    StepKind.REPLICATION_FLUSH: frozenset(),
    StepKind.ADMIN_MODE: frozenset(),  # ALTER SYSTEM SET is idempotent; any error is real
    StepKind.SQL_APPLY_MODE: frozenset(),
    StepKind.DDL: frozenset(),
    StepKind.QUERY: frozenset(),
    # Provisioning (P6: CREATE TABLE and CREATE REPLICATION on a node) and its teardown. The DAGs
    # read every node first and refuse objects that differ from their parameters; these codes only
    # let a repeated or cleared step finish.
    StepKind.PROVISION_CREATE: frozenset({
        "31022",  # CREATE TABLE: The name is already used by an existing object.
        "61100",  # CREATE REPLICATION: Duplicate replication names.
    }),
    StepKind.REPLICATION_DROP: frozenset({"6111B"}),  # Undefined replication name.
}

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
_EXIT = re.compile(r"^(EXIT|QUIT)$", re.IGNORECASE)


@dataclass
class StatementResult:
    """One statement's outcome as iSQL printed it."""

    status: str  # "ok" or "error"
    summary: str  # the result line: "Alter success.", "2 rows selected.", or the error text
    code: str | None = None  # Altibase error code (5 hex digits) for errors
    message: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)
    statement: str | None = None  # the statement it belongs to, when known
    accepted: bool = False  # an error accepted as "already done" for the step kind

    @property
    def is_query(self) -> bool:
        return bool(self.columns)


class IsqlError(AirflowException):
    """iSQL reported an error (or did not report a result) for a statement of the script."""

    def __init__(self, message: str, results: list[StatementResult]):
        super().__init__(message)
        self.results = results
        self.codes = [r.code for r in results if r.status == "error" and not r.accepted]


def split_statements(script: str) -> list[str]:
    """The statements of a script, without their ``;``; ``EXIT``/``QUIT`` and ``--`` comments dropped.

    Semicolons inside string literals do not end a statement.
    """
    statements, current, in_string = [], [], False
    for line in script.splitlines():
        if not in_string and line.strip().startswith("--"):
            continue
        for ch in line:
            if ch == "'":
                in_string = not in_string
            if ch == ";" and not in_string:
                statements.append("".join(current).strip())
                current = []
            else:
                current.append(ch)
        current.append("\n")
    tail = "".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s and not _EXIT.match(s)]


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


def judge(
    results: list[StatementResult],
    statements: list[str],
    *,
    step_kind: StepKind | str | None,
    exit_status: int,
    output: str,
) -> list[StatementResult]:
    """Label results with their statements, accept "already done" codes, raise IsqlError on failure.

    Fails when any error is not accepted for ``step_kind`` (whatever the exit status says), when
    fewer results than statements came back (the client stopped or never logged in), or when the
    exit status is non-zero without any error in the output.
    """
    accepted_codes = ALREADY_DONE[StepKind(step_kind)] if step_kind else frozenset()
    if len(results) == len(statements):
        # one result per statement, in order: label each with its full text (the echo, when there
        # is one, shows only the first line of a multi-line statement)
        for result, statement in zip(results, statements, strict=True):
            result.statement = statement
    for result in results:
        if result.status == "error" and result.code in accepted_codes:
            result.accepted = True
    failures = [r for r in results if r.status == "error" and not r.accepted]
    if failures:
        first = failures[0]
        where = f" in statement {first.statement!r}" if first.statement else ""
        raise IsqlError(
            f"iSQL reported {len(failures)} error(s); first{where}: {first.summary}"
            + (f" (and {', '.join('ERR-' + str(f.code) for f in failures[1:])})" if len(failures) > 1 else ""),
            results,
        )
    if len(results) < len(statements):
        raise IsqlError(
            f"iSQL returned {len(results)} result(s) for {len(statements)} statement(s) "
            f"(exit status {exit_status}); output:\n{output[-2000:]}",
            results,
        )
    # iSQL's status is the last statement's: an error in the output (even an accepted one)
    # explains a non-zero status; without one, something else went wrong (usage, crash).
    if exit_status != 0 and not any(r.status == "error" for r in results):
        raise IsqlError(f"iSQL exited with status {exit_status} without reporting an error; output:\n"
                        f"{output[-2000:]}", results)
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
