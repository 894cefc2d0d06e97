"""Replication health of configured pairs: read each server, judge it, say exactly what is wrong.

Used by the ``altibase_replication_health`` DAG (the pairs come from ``health/config.py``): one mapped task per server (``check_server``), then
a report over all of them. Each server is read on one short session (``state.server.read_state``)
and judged against the thresholds; every problem is one line naming the pair, the server and the
value, so the failed task's message is what a DBA reads first.

The read logs in *without* SYSDBA. A server allows one SYSDBA session at a time (ERR-41041), and a
maintenance run (``altibase_replicated_ddl``) needs that session for its iSQL steps: a health check
holding it at the wrong moment would fail the maintenance. A plain login is refused only while
``ADMIN_MODE = 1`` (ERR-4106E), which is itself the finding "admin mode is on"; the rest of that
server is then left unread on purpose, instead of competing for the SYSDBA session.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from logging import Logger
from typing import Any

from airflow.sdk.exceptions import AirflowNotFoundException

from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.sql.templates import render_sql
from altibase_ops.state.server import read_state

CLIENT_INFO = "airflow:altibase_replication_health"
SENDER_STATUS = {0: "STOP", 1: "RUN", 2: "RETRY"}  # V$REPSENDER.STATUS
ADMIN_MODE_REFUSED = "4106E"  # plain login refused because ADMIN_MODE = 1


@dataclass(frozen=True)
class Thresholds:
    max_rep_gap: int  # REP_GAP, in REPLICATION_GAP_UNIT (1 MiB by default)
    stall_check_seconds: float  # 0: no second look at a non-zero gap

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Thresholds:
        return cls(int(params["max_rep_gap"]), float(params["stall_check_seconds"]))


@dataclass
class HealthReading:
    """What one check saw on one server (JSON-able: it goes to XCom and into the report)."""

    reachable: bool = False
    error: str | None = None
    admin_mode: int | None = None
    replication_exists: bool | None = None
    replication_started: bool | None = None
    sender_status: int | None = None  # None: no V$REPSENDER row, i.e. the sender is not running
    rep_gap: int | None = None
    rep_sn: int | None = None  # the sender's position in the log
    receivers: list[dict[str, Any]] | None = None
    sql_apply_enable: int | None = None
    sql_apply_table_count: int | None = None
    sessions: int | None = None
    stalled_rep_sn: int | None = None  # set when the sender did not move during the stall check


def read_server(target: dict[str, Any], thresholds: Thresholds, log: Logger,
                client_info: str = CLIENT_INFO) -> HealthReading:
    """Read one server; connection and login failures become part of the reading, not exceptions.
    ``client_info``: whose session V$SESSION shows (the fleet page reads with this same check)."""
    reading = HealthReading()
    try:
        state = read_state(target["conn_id"], target["replication_name"], [], sysdba=False,
                           client_info=client_info)
    except AltibaseServerError as exc:  # refused login, or the server lost mid-read, with its code
        if exc.code == ADMIN_MODE_REFUSED:
            reading.reachable, reading.admin_mode = True, 1
            reading.error = f"{exc} (not retried as SYSDBA: that would take the session a maintenance step needs)"
        else:
            reading.error = str(exc)
        return reading
    except AirflowNotFoundException as exc:  # the Connection is not defined: this server cannot be checked
        reading.error = str(exc)
        return reading
    reading.reachable = True
    reading.admin_mode = state.properties.get("ADMIN_MODE")
    reading.replication_exists = state.replication_exists
    reading.replication_started = state.is_started
    reading.sender_status = state.sender_status
    reading.rep_gap, reading.rep_sn = state.gap, state.rep_sn
    reading.receivers = state.receivers
    reading.sql_apply_enable = state.properties.get("REPLICATION_SQL_APPLY_ENABLE")
    reading.sql_apply_table_count = state.sql_apply_table_count
    reading.sessions = state.other_sessions
    if thresholds.stall_check_seconds > 0 and state.gap:
        try:
            reading.stalled_rep_sn = _stalled(target, thresholds.stall_check_seconds, log)
        except AltibaseServerError as exc:  # lost between two reads: what was read still counts
            log.warning("%s: the second look at the gap failed: %s", target["label"], exc)
    return reading


def _stalled(target: dict[str, Any], seconds: float, log: Logger) -> int | None:
    """REP_SN when the sender did not advance in ``seconds`` while log was waiting to be sent.

    A large gap that shrinks is a busy sender; a small gap that does not move is a stuck one (paused,
    blocked on the peer). REP_SN is the sender's position in the log: unchanged means no progress.
    """
    hook = AltibaseHook(altibase_conn_id=target["conn_id"], client_info=CLIENT_INFO)
    sql = render_sql("checks/read_replication_progress.sql")
    first = hook.get_records_as_dicts(sql, (target["replication_name"],))
    if not first:
        return None
    log.info("%s: REP_GAP=%s at REP_SN %s, looking again in %ss to see whether the sender moves",
             target["label"], first[0]["REP_GAP"], first[0]["REP_SN"], seconds)
    time.sleep(seconds)
    second = hook.get_records_as_dicts(sql, (target["replication_name"],))
    if second and int(second[0]["REP_SN"]) == int(first[0]["REP_SN"]) and int(second[0]["REP_GAP"]) > 0:
        return int(second[0]["REP_SN"])
    return None


# ------------------------------------------------------------------------------------ judging
def find_problems(target: dict[str, Any], reading: HealthReading, thresholds: Thresholds) -> list[str]:
    """Every threshold the reading breaks, one line each: pair, server (role, connection), value."""
    who = f"pair {target['pair']}, server {target['server']} ({target['role']}, {target['conn_id']})"
    rep = target["replication_name"]
    problems: list[str] = []
    if reading.admin_mode == 1:
        problems.append(f"{who}: ADMIN_MODE=1 — only SYSDBA can log in, the application cannot. Expected only "
                        "while a maintenance run is in progress; otherwise: ALTER SYSTEM SET ADMIN_MODE = 0")
    if not reading.reachable:
        problems.append(f"{who}: could not be read — {reading.error}")
    if reading.admin_mode == 1 or not reading.reachable:
        return problems  # nothing more was read
    if not reading.replication_exists:
        return [*problems, f"{who}: replication {rep} does not exist (SYSTEM_.SYS_REPLICATIONS_)"]
    if target["expects_sender"]:
        if reading.sender_status is None:
            problems.append(f"{who}: the sender of {rep} is not running (no V$REPSENDER row; IS_STARTED="
                            f"{int(bool(reading.replication_started))}); {target['topology']} needs it running "
                            f"on the {target['role']}: ALTER REPLICATION {rep} START")
        elif reading.sender_status != 1:
            status = SENDER_STATUS.get(reading.sender_status, "?")
            problems.append(f"{who}: the sender of {rep} has STATUS={reading.sender_status} ({status}), not 1 (RUN)"
                            f" — it cannot reach {target['peer']}")
    if reading.rep_gap is not None and reading.rep_gap > thresholds.max_rep_gap:
        problems.append(f"{who}: REP_GAP={reading.rep_gap} exceeds max_rep_gap={thresholds.max_rep_gap} "
                        f"(log not yet acknowledged by {target['peer']}; the sender is at REP_SN {reading.rep_sn})")
    if reading.stalled_rep_sn is not None:
        problems.append(f"{who}: the gap of {rep} is stuck — REP_SN stayed at {reading.stalled_rep_sn} for "
                        f"{thresholds.stall_check_seconds:g}s with REP_GAP={reading.rep_gap} "
                        "waiting (sender paused or blocked)")
    if reading.sql_apply_enable == 1:
        problems.append(f"{who}: REPLICATION_SQL_APPLY_ENABLE=1 — SQL apply mode was left on after a rolling DDL;"
                        " once SQL_APPLY_TABLE_COUNT is 0: ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 0")
    if reading.sql_apply_table_count:
        problems.append(f"{who}: SQL_APPLY_TABLE_COUNT={reading.sql_apply_table_count} — tables of {rep} differ "
                        f"from {target['peer']}'s and are applied as SQL")
    return problems


def read_and_judge(target: dict[str, Any], thresholds: Thresholds, log: Logger) -> dict[str, Any]:
    """Read and judge one server: ``{"target", "reading", "problems"}``."""
    reading = read_server(target, thresholds, log)
    problems = find_problems(target, reading, thresholds)
    log.info("%s: %s", target["label"], _one_line(reading))
    for problem in problems:
        log.error("%s", problem)
    return {"target": target, "reading": asdict(reading), "problems": problems}


# ------------------------------------------------------------------------------------- report
_COLUMNS = ("server", "role", "admin", "sender", "gap", "rep_sn", "receivers", "sql apply", "sessions")


def report_table(results: list[dict[str, Any]]) -> str:
    """The readings of every server as a fixed-width table (the report task's log)."""
    rows = [_COLUMNS]
    for result in sorted(results, key=lambda r: r["target"]["label"]):
        t, r = result["target"], result["reading"]
        if not r["reachable"]:
            rows.append((t["label"], t["role"], "-", "DOWN", "-", "-", "-", "-", "-"))
            continue
        sender = "-" if r["sender_status"] is None else SENDER_STATUS.get(r["sender_status"], str(r["sender_status"]))
        receivers = "-" if r["receivers"] is None else ",".join(str(x["PEER_IP"]) for x in r["receivers"]) or "none"
        rows.append((t["label"], t["role"], _s(r["admin_mode"]), sender, _s(r["rep_gap"]), _s(r["rep_sn"]),
                     receivers, f"{_s(r['sql_apply_enable'])}/{_s(r['sql_apply_table_count'])}", _s(r["sessions"])))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def missing_results(expected: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[str]:
    """Servers whose check left no result (the task crashed or timed out before judging)."""
    seen = {r["target"]["label"] for r in results}
    return [f"pair {t['pair']}, server {t['server']} ({t['role']}, {t['conn_id']}): no result — the check "
            "itself failed; see the log of check_server for this server" for t in expected if t["label"] not in seen]


def _s(value: Any) -> str:
    return "-" if value is None else str(value)


def _one_line(reading: HealthReading) -> str:
    return ", ".join(f"{k}={v}" for k, v in asdict(reading).items() if v is not None)
