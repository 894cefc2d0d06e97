"""What the page shows, read from the servers when it is asked: for every pair of the fleet, each server's
reading (the health DAG's own check, ``health.judgement.read_server``: one short plain session, never
SYSDBA, so it never takes the session a maintenance step needs), then the pair's lock
(``SYS.AIRFLOW_DDL_LOCK``) and change history (``SYS.AIRFLOW_CHANGE_HISTORY``) on a second plain session.

Every server is read at once, each in a thread, and the page takes what answered within
``READ_DEADLINE_SECONDS``: a server that does not answer shows as such and never holds the page. A
server still not answering when the page is asked again is not read a second time (one thread per
server at most); its earlier read is named instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from altibase_ops.ddl.records import Lock, read_lock
from altibase_ops.ddl.summary import iso
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.health.config import targets
from altibase_ops.health.judgement import SENDER_STATUS, HealthReading, Thresholds, read_server
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.maintenance.history import HistoryRow, history_rows, merge
from altibase_ops.pairs import InvalidPairsError, pairs_from_env, validate_pairs

log = logging.getLogger(__name__)
CLIENT_INFO = "airflow:altibase_page"  # V$SESSION.CLIENT_APP_INFO of the page's sessions
# A login waits at most the hook's 5 s; the reads after it take milliseconds on a server that answers
READ_DEADLINE_SECONDS = 8.0
HISTORY_SHOWN = 20  # the newest rows per pair
ONE_LOOK = Thresholds(max_rep_gap=0, stall_check_seconds=0)  # no second look at the gap: no sleep

_running: dict[str, float] = {}  # server label -> when its read began, while it has not ended
_running_lock = threading.Lock()


def read_fleet(pairs: Any = None, *, airflow_root: str = "",
               deadline: float = READ_DEADLINE_SECONDS) -> dict[str, Any]:
    """``{"read_at", "deadline_seconds", "pairs": [...], "error"}`` for ``pairs`` (default: the fleet, read
    now); links to runs start with ``airflow_root`` (the UI's path prefix). ``error``: why the fleet
    could not be read (then no pair is shown)."""
    try:
        raw = pairs_from_env() if pairs is None else pairs
        fleet = validate_pairs(raw)
    except InvalidPairsError as exc:  # the page says so, as the DAGs' import errors do
        return {"read_at": iso(time.time(), milliseconds=False), "deadline_seconds": deadline, "pairs": [],
                "error": f"the fleet is unusable: {exc}"}
    servers = targets(raw)
    outcomes = _within(deadline, {t["label"]: (lambda t=t: _read_server(t)) for t in servers})
    views = []
    for pair in fleet:
        mine = [t for t in servers if t["pair"] == pair.name]
        views.append(_pair_view(pair.name, pair.replication_name, pair.topology,
                                [(t, outcomes[t["label"]]) for t in mine], airflow_root, deadline))
    return {"read_at": iso(time.time(), milliseconds=False), "deadline_seconds": deadline, "pairs": views,
            "error": None}


def run_path(airflow_root: str, dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI."""
    return f"{airflow_root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


# ------------------------------------------------------------------------------------ reading
def _read_server(target: dict[str, Any]) -> dict[str, Any]:
    reading = read_server(target, ONE_LOOK, log, client_info=CLIENT_INFO)
    found: dict[str, Any] = {"reading": reading, "lock": None, "history": [], "records_error": None}
    if not reading.reachable:
        found["records_error"] = "not read: the server could not be reached"
    elif reading.admin_mode == 1:
        found["records_error"] = "not read: ADMIN_MODE=1 refuses a plain login (SYSDBA is left to the run)"
    else:
        try:
            hook = AltibaseHook(altibase_conn_id=target["conn_id"], client_info=CLIENT_INFO)
            with hook.session() as session:
                found["lock"] = read_lock(session, target["replication_name"])
                found["history"] = history_rows(session, target["replication_name"], target["server"])
        except AltibaseServerError as exc:  # lost between the two sessions, or admin mode came on
            found["records_error"] = str(exc)
    return found


def _within(deadline: float, calls: dict[str, Callable[[], Any]]) -> dict[str, tuple[str, Any]]:
    """Each call in a thread of its own; ``{key: ("ok", value) | ("error", text) | ("late", text)}``
    once all ended or ``deadline`` seconds passed, whichever comes first."""
    results: dict[str, tuple[str, Any]] = {}

    def run(key: str, call: Callable[[], Any]) -> None:
        try:
            results[key] = ("ok", call())
        except Exception as exc:  # noqa: BLE001 - the page shows it beside the server
            results[key] = ("error", f"{type(exc).__name__}: {exc}")
        finally:
            with _running_lock:
                _running.pop(key, None)

    threads = []
    now = time.time()
    with _running_lock:
        busy = dict(_running)
        for key in calls:
            if key not in busy:
                _running[key] = now
    for key, call in calls.items():
        if key in busy:
            continue
        # daemon: a server that never answers must not keep the api-server from stopping
        thread = threading.Thread(target=run, args=(key, call), name=f"altibase-page {key}", daemon=True)
        thread.start()
        threads.append(thread)
    end = time.monotonic() + deadline
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    out = dict(results)
    for key in calls:
        if key not in out:
            since = busy.get(key)
            out[key] = ("late", f"no answer within {deadline:g} s" if since is None else
                        f"no answer: a read begun at {iso(since, milliseconds=False)} has not ended")
    return out


# ------------------------------------------------------------------------------------ the view
def _server_view(target: dict[str, Any], outcome: tuple[str, Any]) -> dict[str, Any]:
    kind, value = outcome
    view: dict[str, Any] = {"name": target["server"], "role": target["role"], "conn_id": target["conn_id"]}
    reading = value["reading"] if kind == "ok" else HealthReading(error=value)
    view.update({
        "reachable": reading.reachable, "answered": kind != "late", "error": reading.error,
        "admin_mode": reading.admin_mode, "replication_exists": reading.replication_exists,
        "replication_started": reading.replication_started,
        "sender": None if reading.sender_status is None else {
            "status": reading.sender_status, "status_name": SENDER_STATUS.get(reading.sender_status, "?"),
            "gap": reading.rep_gap, "rep_sn": reading.rep_sn},
        "receivers": None if reading.receivers is None else [
            {"peer": str(r["PEER_IP"]), "sql_apply_table_count": int(r["SQL_APPLY_TABLE_COUNT"])}
            for r in reading.receivers],
        "sql_apply_enable": reading.sql_apply_enable, "sql_apply_table_count": reading.sql_apply_table_count,
        "sessions": reading.sessions,
    })
    return view


def _lock_view(lock: Lock, airflow_root: str) -> dict[str, Any]:
    def when(epoch: int | None) -> str | None:
        return None if epoch is None else iso(epoch, milliseconds=False)

    return {"run_id": lock.run_id, "dag_id": lock.dag_id, "holder": lock.holder, "request_key": lock.request_key,
            "taken_at": when(lock.taken_at), "heartbeat_at": when(lock.heartbeat_at),
            "expires_at": when(lock.expires_at), "run_url": run_path(airflow_root, lock.dag_id, lock.run_id)}


def _history_view(row: HistoryRow, airflow_root: str) -> dict[str, Any]:
    return {"change_id": row.change_id, "outcome": row.outcome, "started_at": row.started_at,
            "ended_at": row.ended_at, "duration_seconds": row.duration_seconds, "run_id": row.run_id,
            "dag_id": row.dag_id, "run_url": run_path(airflow_root, row.dag_id, row.run_id), "reason": row.reason}


def _pair_view(name: str, replication: str, topology: str, servers: list[tuple[dict[str, Any], tuple[str, Any]]],
               airflow_root: str, deadline: float) -> dict[str, Any]:
    read = {t["server"]: value for t, (kind, value) in servers if kind == "ok" and value["records_error"] is None}
    unread = {t["server"]: (value["records_error"] if kind == "ok" else value) for t, (kind, value) in servers
              if t["server"] not in read}
    locks = {server: found["lock"] for server, found in read.items() if found["lock"] is not None}
    holders = {lock.run_id: lock for lock in locks.values()}
    if holders:
        lock: dict[str, Any] = {"state": "held", "holders": [_lock_view(h, airflow_root) for h in holders.values()],
                                "held_on": sorted(locks)}
    else:
        lock = {"state": "unknown" if not read else "free", "holders": [], "held_on": []}
    lock["not_read"] = unread
    history = merge([row for found in read.values() for row in found["history"]])[::-1][:HISTORY_SHOWN]
    return {"name": name, "replication_name": replication, "topology": topology,
            "servers": [_server_view(t, outcome) for t, outcome in servers], "lock": lock,
            "history": [_history_view(row, airflow_root) for row in history], "history_not_read": unread}
