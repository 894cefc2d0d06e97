"""The one step runner: statements that change a server, judged by one "already done" table.

A step is one or more statements of one *kind* (stop replication, add a table, the user's DDL…).
Re-running a step after a failure must finish it, so some errors mean "this was already done" —
but only for their own kind: ERR-61027 after STOP means "already stopped", after FLUSH it means the
gap can no longer be drained, a real failure. ``ALREADY_DONE`` is the only place that decides it;
``judge_results`` applies it to whatever ran the statements:

- ``run_script`` here: the statements on one session through ``AltibaseHook`` (restore, the
  post-run FLUSH, provisioning's proof rows, the fault matrix);
- ``IsqlOperator``: the ``is`` client, locally or in a pod, whose output ``sql/isql.py`` parses.

Callers read the state first and act only where needed; these codes only let a repeated or cleared
step finish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from airflow.sdk.exceptions import AirflowException

from altibase_ops.exceptions import AltibaseServerError

if TYPE_CHECKING:
    from altibase_ops.hooks.altibase import AltibaseSession

_EXIT = re.compile(r"^(EXIT|QUIT)$", re.IGNORECASE | re.ASCII)


class StepKind(StrEnum):
    """Kinds of step, each with its own set of "already done" error codes."""

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
    PROOF_ROW = "proof_row"


# The single place that decides which errors mean "this step was already done", so a cleared task
# can be re-run. A code is accepted only for its own step kind: 61027 after STOP means "already
# stopped", but after FLUSH it means the gap can no longer be drained — a real failure.
ALREADY_DONE: dict[StepKind, frozenset[str]] = {
    StepKind.REPLICATION_STOP: frozenset({"61027"}),  # Replication did not start.
    StepKind.REPLICATION_START: frozenset({"6100A"}),  # The sender has already been started.
    # No replication items found: the table exists and is not an item (a table that does not exist is
    # ERR-61111, a real failure)
    StepKind.REPLICATION_DROP_TABLE: frozenset({"6111A"}),
    # ADD TABLE of an item already there: no documented error (the source suggests the item catalog's
    # unique index, ERR-11058, which also means other things), so no code at all; the DDL steps read
    # SYS_REPL_ITEMS_ first and add only what is missing.
    StepKind.REPLICATION_ADD_TABLE: frozenset(),
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
    # P7's proof row: a duplicate key is never "already done" (the row may be the application's).
    StepKind.PROOF_ROW: frozenset(),
}

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
    rowcount: int | None = None  # rows changed, when the client reports it (run_script)
    accepted: bool = False  # an error accepted as "already done" for the step kind

    @property
    def is_query(self) -> bool:
        return bool(self.columns)


class StepError(AirflowException):
    """A statement of a step failed (an error not in the step kind's "already done" set), or the
    client did not report a result for every statement."""

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


def judge_results(
    results: list[StatementResult],
    statements: list[str],
    *,
    step_kind: StepKind | str | None,
    exit_status: int = 0,
    output: str = "",
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
        raise StepError(
            f"{len(failures)} error(s); first{where}: {first.summary}"
            + (f" (and {', '.join('ERR-' + str(f.code) for f in failures[1:])})" if len(failures) > 1 else ""),
            results,
        )
    if len(results) < len(statements):
        raise StepError(
            f"the client returned {len(results)} result(s) for {len(statements)} statement(s) "
            f"(exit status {exit_status}); output:\n{output[-2000:]}",
            results,
        )
    # iSQL's status is the last statement's: an error in the output (even an accepted one)
    # explains a non-zero status; without one, something else went wrong (usage, crash).
    if exit_status != 0 and not any(r.status == "error" for r in results):
        raise StepError(f"the client exited with status {exit_status} without reporting an error; output:\n"
                        f"{output[-2000:]}", results)
    return results


def run_script(session: AltibaseSession, script: str, *, step_kind: StepKind | str) -> list[StatementResult]:
    """Run a step's statements in order on ``session``; StepError on the first error that is not
    "already done" for ``step_kind`` (later statements are not sent: unlike iSQL, which goes on)."""
    statements = split_statements(script)
    results: list[StatementResult] = []
    for statement in statements:
        try:
            cursor = session.execute(statement)
        except AltibaseServerError as exc:
            if exc.code is None:
                raise  # no Altibase code: the session itself broke
            results.append(StatementResult("error", f"[ERR-{exc.code} : {exc.altibase_message}]", exc.code,
                                           exc.altibase_message, statement=statement))
            if exc.code not in ALREADY_DONE[StepKind(step_kind)]:
                break
            continue
        rowcount = cursor.rowcount if cursor.rowcount is not None and cursor.rowcount >= 0 else None
        cursor.close()
        results.append(StatementResult("ok", "success" if rowcount is None else f"{rowcount} row(s)",
                                       statement=statement, rowcount=rowcount))
    return judge_results(results, statements, step_kind=step_kind)
