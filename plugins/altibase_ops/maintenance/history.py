"""The change history of a pair, kept on its servers (``SYS.AIRFLOW_CHANGE_HISTORY``).

Like Flyway's schema history table, and for the same reasons: it lives with the data it describes, so
it survives Airflow being rebuilt (a new metadata database knows nothing), every Airflow that reaches
the pair reads the same history, and a DBA queries it with iSQL::

    SELECT CHANGE_ID, OUTCOME, ENDED_AT, RUN_ID, REASON FROM SYS.AIRFLOW_CHANGE_HISTORY WHERE REPLICATION_NAME = 'REP1';

One row per DDL run that reached an outcome, written by the DDL DAG itself on both servers (a change
applied by hand through the DDL DAG is recorded too, under ``manual-<request key>``). The table is not
in any replication; each server keeps its own copy, and readers merge the two.

Outcomes: ``applied`` (the run finished and its checks passed), ``found_applied`` (the DDL was already
in the catalog on the whole pair: nothing ran), ``failed`` (the run began changing the pair and did
not finish; see its restore — or, written by the maintenance DAG, a change refused before anything held
the pair: REASON holds the refusal's message where the maintenance DAG saw it, else where to read it).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from altibase_ops.ddl.records import DUPLICATE_KEY, create_table, request_key, sysdba_hook
from altibase_ops.ddl.request import DdlRequest, Server
from altibase_ops.ddl.summary import iso
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.sql.templates import render_sql

HISTORY_TABLE = "SYS.AIRFLOW_CHANGE_HISTORY"
APPLIED_OUTCOMES = ("applied", "found_applied")
# REASON's size in bytes (include/sql/history/create_history_table.sql): a longer reason is cut to fit
REASON_BYTES = 2000


@dataclass(frozen=True)
class HistoryRow:
    change_id: str
    checksum: str
    outcome: str
    run_id: str
    dag_id: str
    started_at: str
    ended_at: str
    duration_seconds: int
    server: str = ""
    reason: str = ""  # why it failed, where the writer said (a refusal's message)


def change_checksum(tables: list[str], ddl: list[str]) -> str:
    """What a change does to the schema: its tables and DDL text. A change file whose checksum differs
    from the one recorded was edited after it ran. (Its pairs, approver and service mode are not part
    of it: adding a pair to a change does not make it a new change.)"""
    body = json.dumps([sorted(tables), [" ".join(d.split()) for d in ddl]])
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def history_key(request: DdlRequest) -> tuple[str, str]:
    """(change id, checksum) under which a run of this request is recorded."""
    checksum = request.change_checksum or change_checksum(request.tables, [d.text for d in request.ddl])
    return request.change_id or f"manual-{request_key(request)}", checksum


def _columns(session: Any) -> set[str]:
    """The history table's columns on the session's server (none before the table exists)."""
    return {str(r["COLUMN_NAME"]).strip() for r in session.dicts(render_sql("history/read_history_columns.sql"))}


def _ensure_table(session: Any) -> None:
    columns = _columns(session)
    if not columns:
        create_table(session, "history/create_history_table.sql")
    elif "REASON" not in columns:  # a table made by an earlier version (our own table, in no replication)
        try:
            session.execute(render_sql("history/add_history_reason.sql"))
        except AltibaseServerError:
            if "REASON" not in _columns(session):  # not added meanwhile by another run: a real failure
                raise


def fit_reason(reason: str) -> str:
    """The reason as REASON holds it: cut at REASON_BYTES (UTF-8), saying so."""
    data = reason.strip().encode()
    if len(data) <= REASON_BYTES:
        return reason.strip()
    mark = " […]"
    return data[: REASON_BYTES - len(mark.encode())].decode(errors="ignore") + mark


def record_outcome(request: DdlRequest, outcome: str, run_id: str, dag_id: str, started_at: float,
                   log: Any, reason: str = "") -> list[str]:
    """Write this run's outcome on every server it can reach; returns the servers written. A server
    that cannot be reached is logged, not fatal: the other server's row is the record."""
    change_id, checksum = history_key(request)
    return record_change(request.servers, request.replication_name, change_id, checksum, outcome, run_id, dag_id,
                         started_at, log, reason)


def record_change(servers: list[Server], replication_name: str, change_id: str, checksum: str, outcome: str,
                  run_id: str, dag_id: str, started_at: float, log: Any, reason: str = "") -> list[str]:
    """``record_outcome`` for a change known by its id and checksum (a refusal may come before any
    request could be built); returns the servers written."""
    ended = time.time()
    values = (checksum, outcome, dag_id, iso(started_at, milliseconds=False), iso(ended, milliseconds=False),
              max(0, round(ended - started_at)), fit_reason(reason) or None)
    written = []
    for server in servers:
        try:
            with sysdba_hook(server).session() as session:
                _ensure_table(session)
                try:
                    session.execute(render_sql("history/insert_history.sql"),
                                    (replication_name, change_id, *values[:2], run_id, *values[2:]))
                except AltibaseServerError as exc:
                    if exc.code != DUPLICATE_KEY:  # this run's row exists (the task ran again): update it
                        raise
                    session.execute(render_sql("history/update_history.sql"),
                                    (*values, replication_name, change_id, run_id))
            written.append(server.name)
        except Exception as exc:  # noqa: BLE001 - one server's history must not hide the run's outcome
            log.warning("%s: could not record %s of %s in %s: %s", server.name, outcome, change_id,
                        HISTORY_TABLE, exc)
    log.info("history: %s %s (checksum %s) recorded on %s", change_id, outcome, checksum, written or "no server")
    return written


def history_rows(session: Any, replication_name: str, server: str) -> list[HistoryRow]:
    """The history one server keeps for a replication ([] before the table exists)."""
    columns = _columns(session)
    if not columns:
        return []
    return [HistoryRow(*(str(r[c]).strip() for c in ("CHANGE_ID", "CHECKSUM", "OUTCOME", "RUN_ID", "DAG_ID",
                                                     "STARTED_AT", "ENDED_AT")), int(r["DURATION_SECONDS"]), server,
                       str(r.get("REASON") or "").strip())
            for r in session.dicts(render_sql("history/read_history.sql", reason="REASON" in columns),
                                   (replication_name,))]


def merge(rows: list[HistoryRow]) -> list[HistoryRow]:
    """Both servers' rows as one history (a run recorded on either counts once), oldest first."""
    unique = {(r.change_id, r.run_id): r for r in reversed(rows)}  # the first server's row wins
    return sorted(unique.values(), key=lambda r: (r.ended_at, r.run_id))


def read_history(servers: list[Server], replication_name: str) -> tuple[list[HistoryRow], list[str]]:
    """The pair's history merged from both servers, oldest first, and the servers that could not be
    read (with why)."""
    rows: list[HistoryRow] = []
    unreadable = []
    for server in servers:
        try:
            with sysdba_hook(server).session() as session:
                rows += history_rows(session, replication_name, server.name)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, who decides
            unreadable.append(f"{server.name}: {exc}")
    return merge(rows), unreadable


def latest(rows: list[HistoryRow], change_id: str) -> HistoryRow | None:
    """The change's most recent outcome on the pair."""
    mine = [r for r in rows if r.change_id == change_id]
    return mine[-1] if mine else None


# A run with no history on its pair: the plan's few dozen steps and their waits, generously
DEFAULT_EXPECTED_SECONDS = 300


def expected_seconds(rows: list[HistoryRow]) -> int:
    """How long a DDL run on this pair is expected to take (hold to summary): the longest of its last
    five applied runs with a 50 % margin (at least 60 s), else DEFAULT_EXPECTED_SECONDS. A manual
    approval's wait is not in it: a person's answer cannot be predicted."""
    done = [r.duration_seconds for r in rows if r.outcome == "applied"][-5:]
    return max(60, int(max(done) * 1.5)) if done else DEFAULT_EXPECTED_SECONDS
