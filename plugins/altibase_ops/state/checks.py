"""The three state checks behind the sensors: replication gap, other sessions, SQL apply count.

Each check opens one SYSDBA connection, runs one query from ``include/sql/checks/``, closes the
connection and returns a ``CheckReading``. SYSDBA because after ``ADMIN_MODE = 1`` nothing else can log
in; closed at once because the server allows a single SYSDBA session and the next step (an iSQL
script) needs it. The same function serves a sensor's ``poke`` (on a worker) and the trigger (in
the triggerer, via a thread), so both read and judge the state the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.sql.identifiers import identifier
from altibase_ops.sql.templates import render_sql
from altibase_ops.state.server import read_startup_time, restart_message

DONE, WAITING, FAILED = "done", "waiting", "failed"

# ERR-41041 "Another SYSDBA session is already running": someone else (a step of another run, an
# operator) holds the server's single SYSDBA session. The state is unknown, not bad: read again.
_BUSY_CODES = frozenset({"41041"})
_MAX_SESSIONS_LOGGED = 20


@dataclass
class CheckReading:
    """One poke's result: ``done`` (success), ``waiting`` (poke again) or ``failed`` (stop now)."""

    status: str
    message: str
    value: Any = None

    def as_event(self) -> dict[str, Any]:
        return asdict(self)


def replication_gap(hook: AltibaseHook, *, replication_name: str) -> CheckReading:
    """Done when V$REPGAP has the replication's row with REP_GAP = 0.

    Only columns every modelled version has: a 7.1 server has no REP_GAP_SIZE (its REP_GAP counts log
    records; 7.3's counts REPLICATION_GAP_UNIT units of REP_GAP_SIZE bytes, so both are 0 together).

    No row means the sender is not running: V$REPGAP lists only running senders, so "no rows" is
    never "gap 0". That cannot resolve by waiting, so it fails.
    """
    name = identifier(replication_name)
    rows = hook.get_records_as_dicts(render_sql("checks/read_replication_gap.sql", replication_name=name))
    if not rows:
        return CheckReading(FAILED, (
            f"replication {name} on {hook.altibase_conn_id}: no row in V$REPGAP, so its sender is not "
            f"running (replication stopped, never started, or its sender died); the gap cannot be "
            f"confirmed as 0. Start it (ALTER REPLICATION {name} START) or see V$REPSENDER."
        ))
    row = rows[0]
    gap, rep_sn = int(row["REP_GAP"]), int(row["REP_SN"])
    return CheckReading(
        DONE if gap == 0 else WAITING,
        f"replication {name} on {hook.altibase_conn_id}: REP_GAP={gap} (sender at REP_SN {rep_sn})",
        {"replication_name": name, "rep_gap": gap, "rep_sn": rep_sn},
    )


def other_sessions(hook: AltibaseHook, *, max_sessions: int) -> CheckReading:
    """Done when V$SESSION has at most ``max_sessions`` rows besides the checking session itself.

    The message lists who is still connected, so the task log shows what blocks the run.
    """
    rows = hook.get_records_as_dicts(render_sql("checks/list_sessions.sql"))
    sessions = [
        {"id": row.get("ID"), "user": row.get("DB_USERNAME"), "client_info": row.get("CLIENT_APP_INFO"),
         "login_time": row.get("LOGIN_TIME")}
        for row in rows
    ]
    shown = "; ".join(
        f"id={s['id']} user={s['user']} client_info={s['client_info']!r} login_time={s['login_time']}"
        for s in sessions[:_MAX_SESSIONS_LOGGED]
    )
    more = f"; and {len(sessions) - _MAX_SESSIONS_LOGGED} more" if len(sessions) > _MAX_SESSIONS_LOGGED else ""
    return CheckReading(
        DONE if len(sessions) <= max_sessions else WAITING,
        f"{len(sessions)} other session(s) on {hook.altibase_conn_id} (allowed {max_sessions})"
        + (f": {shown}{more}" if sessions else ""),
        {"count": len(sessions), "sessions": [{k: _jsonable(v) for k, v in s.items()} for s in sessions]},
    )


def sql_apply(hook: AltibaseHook, *, replication_name: str | None) -> CheckReading:
    """Done when SQL_APPLY_TABLE_COUNT is 0 on every V$REPRECEIVER row (of the replication, if named).

    A named replication with no receiver row is waiting: its peer's sender is not connected, so the
    count cannot be read yet. With no name, no receiver at all means nothing is in SQL apply mode.
    """
    name = identifier(replication_name) if replication_name else None
    rows = hook.get_records_as_dicts(render_sql("checks/read_sql_apply_count.sql", replication_name=name))
    counts = {str(row["REP_NAME"]): int(row["SQL_APPLY_TABLE_COUNT"]) for row in rows}
    target = f"replication {name}" if name else "all replications"
    if name and not rows:
        return CheckReading(WAITING, (
            f"{target} on {hook.altibase_conn_id}: no row in V$REPRECEIVER (the peer's sender is not "
            f"connected); SQL_APPLY_TABLE_COUNT cannot be read yet"
        ), {"counts": counts})
    pending = {rep: count for rep, count in counts.items() if count != 0}
    return CheckReading(
        WAITING if pending else DONE,
        f"{target} on {hook.altibase_conn_id}: SQL_APPLY_TABLE_COUNT per receiver {counts or '(no receivers)'}",
        {"counts": counts},
    )


CHECKS = {"replication_gap": replication_gap, "sessions": other_sessions, "sql_apply": sql_apply}


def run_check(check: str, altibase_conn_id: str, arguments: dict[str, Any], *, client_info: str,
              server_started_at: int | None = None) -> CheckReading:
    """Run one check on a fresh SYSDBA connection (opened and closed inside).

    ``server_started_at``: the server's V$INSTANCE.STARTUP_TIME_SEC when the run began; a server that
    restarted since fails the check (what the run set with ALTER SYSTEM is gone)."""
    hook = AltibaseHook(altibase_conn_id=altibase_conn_id, sysdba=True, client_info=client_info)
    try:
        if server_started_at is not None:
            with hook.session() as session:
                actual = read_startup_time(session)
            if actual != int(server_started_at):
                return CheckReading(FAILED, restart_message(altibase_conn_id, int(server_started_at), actual))
        return CHECKS[check](hook, **arguments)
    except AltibaseServerError as exc:
        if exc.code in _BUSY_CODES:
            return CheckReading(WAITING, f"{exc} — another SYSDBA session is open; reading again at the next poke")
        raise


def _jsonable(value: Any) -> Any:
    # XCom and trigger events carry JSON; LOGIN_TIME may come back as a datetime from ODBC.
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)
