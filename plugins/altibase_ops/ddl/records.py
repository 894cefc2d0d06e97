"""What this tool leaves on the servers themselves, so that every Airflow that can reach a pair sees it:

- **the pair's lock** (``SYS.AIRFLOW_DDL_LOCK``, one row per replication): taken before anything
  changes, by one run of one request; a second run is refused naming the holder. The row stays when a
  run fails short of restoring everything, and it is the proof that a table out of the replication
  was taken out by *this* request (preflight resumes only that); the next run of the same request with
  ``recover=true`` takes it over. Released when the run ends with the pair whole.
- **what a DDL step ran** (``SYS.AIRFLOW_DDL_APPLIED``): BEGAN before a statement, DONE after, per
  request and statement. A statement whose effect the catalog cannot show (TRUNCATE) runs only when
  its server has no record of it for this request: a re-run never truncates twice.

Both tables are created on first use, outside any replication (the replication never lists them).
A request is identified by ``request_key``: the replication, the tables and the DDL text.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from airflow.sdk.exceptions import AirflowException

from altibase_ops.ddl.request import DdlRequest, Server
from altibase_ops.ddl.state import CLIENT_INFO
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.sql.templates import render_sql

LOCK_TABLE = "SYS.AIRFLOW_DDL_LOCK"
APPLIED_TABLE = "SYS.AIRFLOW_DDL_APPLIED"
ALREADY_EXISTS = "31022"  # The name is already used by an existing object: created meanwhile by another run
DUPLICATE_KEY = "11058"  # The row already exists in a unique index: another run took the lock meanwhile


class PairLockedError(AirflowException):
    """Another run (of this or another Airflow) holds the pair."""


class UnsureWhetherAppliedError(AirflowException):
    """A statement whose effect cannot be read began on a server and never reported back."""


@dataclass
class Lock:
    request_key: str
    run_id: str
    holder: str
    taken_at: int

    def describe(self) -> str:
        age = int(time.time()) - self.taken_at
        return (f"run {self.run_id!r} of {self.holder} (request {self.request_key}), since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(self.taken_at))} ({age // 60} min ago)")


def request_key(request: DdlRequest) -> str:
    """The request's identity: the same replication, tables and DDL are the same request."""
    body = json.dumps([request.replication_name, sorted(request.tables), [d.text for d in request.ddl]])
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def holder_name(dag_id: str) -> str:
    return f"{dag_id} on {socket.gethostname()}"[:250]


def sysdba_hook(server: Server) -> AltibaseHook:
    """The short SYSDBA session this tool's own tables are read and written on (lock, records, history)."""
    return AltibaseHook(altibase_conn_id=server.conn_id, sysdba=True, client_info=CLIENT_INFO)


def _ensure_tables(session: Any) -> None:
    present = {str(r["TABLE_NAME"]) for r in session.dicts(render_sql("records/read_record_tables.sql"))}
    for table, template in (("AIRFLOW_DDL_LOCK", "records/create_lock_table.sql"),
                            ("AIRFLOW_DDL_APPLIED", "records/create_applied_table.sql")):
        if table not in present:
            create_table(session, template)


def create_table(session: Any, template: str) -> None:
    """One of this tool's tables, from its template; created meanwhile by another run is as good."""
    try:
        session.execute(render_sql(template))
    except AltibaseServerError as exc:
        if exc.code != ALREADY_EXISTS:
            raise


def tables_exist(session: Any) -> bool:
    return len(session.dicts(render_sql("records/read_record_tables.sql"))) == 2


def read_lock(session: Any, replication_name: str) -> Lock | None:
    if not tables_exist(session):
        return None
    rows = session.dicts(render_sql("records/read_lock.sql"), (replication_name,))
    if not rows:
        return None
    row = rows[0]
    return Lock(str(row["REQUEST_KEY"]).strip(), str(row["RUN_ID"]).strip(), str(row["HOLDER"]).strip(),
                int(row["TAKEN_AT"]))


def take_lock(request: DdlRequest, run_id: str, holder: str, log: Any) -> dict[str, str]:
    """Hold the pair for this run on every server, or PairLockedError naming the holder. A lock of the
    same request left by a failed run is taken over only with ``recover=true``.

    Servers are taken in name order, so two runs racing for one pair meet on the same server first;
    a run refused on its second server gives back the first before it fails (it never leaves half a lock)."""
    key = request_key(request)
    taken: dict[str, str] = {}
    try:
        for server in sorted(request.servers, key=lambda s: s.name):
            with sysdba_hook(server).session() as session:
                _ensure_tables(session)
                current = read_lock(session, request.replication_name)
                now = int(time.time())
                if current is None:
                    try:
                        session.execute(render_sql("records/take_lock.sql"),
                                        (request.replication_name, key, run_id, holder, now))
                    except AltibaseServerError as exc:
                        if exc.code != DUPLICATE_KEY:
                            raise
                        current = read_lock(session, request.replication_name)
                        raise PairLockedError(_locked_message(request, server, current, key)) from None
                    taken[server.name] = "taken"
                elif current.run_id == run_id:
                    taken[server.name] = "already held by this run"
                elif current.request_key == key and request.recover:
                    session.execute(render_sql("records/take_over_lock.sql"),
                                    (run_id, holder, now, request.replication_name, key))
                    log.info("%s: took over the lock of %s (recover=true, same request)", server.name,
                             current.describe())
                    taken[server.name] = f"taken over from {current.run_id}"
                else:
                    raise PairLockedError(_locked_message(request, server, current, key))
    except Exception:
        for server in request.servers:
            if taken.get(server.name) == "taken":
                try:
                    with sysdba_hook(server).session() as session:
                        session.execute(render_sql("records/release_lock.sql"), (request.replication_name, run_id))
                    log.info("%s: gave back this run's lock (the pair could not be held whole)", server.name)
                except Exception as exc:  # noqa: BLE001 - the original error matters more; say what is left
                    log.warning("%s: could not give back this run's lock: %s (delete its row by hand: "
                                "DELETE FROM %s WHERE RUN_ID = '%s')", server.name, exc, LOCK_TABLE, run_id)
        raise
    log.info("the pair is held for run %s: %s", run_id, taken)
    return taken


def _locked_message(request: DdlRequest, server: Server, current: Lock | None, key: str) -> str:
    who = current.describe() if current else "another run"
    same = current is not None and current.request_key == key
    what = ("If that run failed and is not running any more, trigger this request again with recover=true: it "
            "takes the lock over and finishes the job." if same else
            "Wait for it to end. If it is gone for good (its Airflow was rebuilt), finish or undo its DDL by hand "
            f"and delete its row: DELETE FROM {LOCK_TABLE} WHERE REPLICATION_NAME = '{request.replication_name}' "
            "(on both servers).")
    return (f"replication {request.replication_name} on {server.name} is held by {who}; nothing was changed. "
            + what)


def release_lock(request: DdlRequest, run_id: str, log: Any) -> None:
    """Release this run's lock (only its own) on every server it can reach."""
    for server in request.servers:
        with sysdba_hook(server).session() as session:
            if tables_exist(session):
                session.execute(render_sql("records/release_lock.sql"), (request.replication_name, run_id))
    log.info("the pair is released by run %s", run_id)


def applied_records(session: Any, request: DdlRequest) -> dict[int, str]:
    """{statement number: BEGAN | DONE} of this request on the session's server."""
    if not tables_exist(session):
        return {}
    return {int(r["STATEMENT_NO"]): str(r["STATE"]).strip()
            for r in session.dicts(render_sql("records/read_applied.sql"), (request_key(request),))}


def record(server: Server, request: DdlRequest, numbers: list[int], state: str, run_id: str) -> None:
    """BEGAN (before the statements run) or DONE (after they succeeded) for ``numbers`` on a server."""
    if not numbers:
        return
    key, now = request_key(request), int(time.time())
    with sysdba_hook(server).session() as session:
        _ensure_tables(session)
        for number in numbers:
            if state == "BEGAN":
                try:
                    session.execute(render_sql("records/record_began.sql"), (key, number, run_id, now))
                except AltibaseServerError as exc:
                    if exc.code != DUPLICATE_KEY:  # began before (an earlier attempt): the row stays
                        raise
            else:
                session.execute(render_sql("records/record_done.sql"), (run_id, now, key, number))
