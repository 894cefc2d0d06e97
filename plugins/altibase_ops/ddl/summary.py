"""The run summary: the pair and its Connections, the outage and the time in admin mode per server, every
statement per server, rows checked, and the pair as read at the end."""

from __future__ import annotations

import time
from typing import Any

from altibase_ops.ddl.request import DdlRequest


def observe_pair(request: DdlRequest, service_history: list[dict[str, Any]]) -> dict[str, Any]:
    """The pair as it is now, read from the servers and the service control (never from which steps
    ran): where the application writes, each server's state, and the invariant (``ddl/invariant.py``)."""
    from altibase_ops.ddl import invariant
    from altibase_ops.ddl.restore import assumed_writers
    from altibase_ops.ddl.state import MissingTableError, read_all
    from altibase_ops.service.control import observe

    try:
        states = read_all(request)
    except Exception as exc:  # noqa: BLE001 - a server that cannot be read is what the summary reports
        return {"readable": False, "error": str(exc)}
    try:
        placement = observe(request.service_control, [s.name for s in request.servers])
    except Exception as exc:  # noqa: BLE001
        return {"readable": False, "error": f"the service control could not be read: {exc}",
                "servers": {n: s.summary() for n, s in states.items()}}
    try:
        verdict = invariant.check(request, states, placement, assumed_writers(request, service_history))
    except MissingTableError as exc:  # a listed table that is not there (preflight refused it): say so
        return {"readable": False, "error": f"the pair's state cannot be judged: {exc}",
                "servers": {n: s.summary() for n, s in states.items()}}
    return {"readable": True, "observed": placement.observed, "changed": list(placement.changed),
            "placement": placement.describe(), "writers": verdict.writers, "invariant": verdict.as_dict(),
            "servers": {n: s.summary() for n, s in states.items()}}


def service_statement(observation: dict[str, Any]) -> str:
    """The application service as read at the end of the run."""
    if not observation.get("readable"):
        return f"application service: COULD NOT BE READ — {observation.get('error')}"
    writes = ", ".join(observation["writers"]) or "no server"
    if not observation["observed"]:
        return (f"application service: not observable (manual service control); the approved steps put it on "
                f"{writes} — check it")
    if observation["changed"]:
        return (f"application service: NOT as before the run — the application writes on {writes}; "
                f"{', '.join(observation['changed'])} still differ from before the run")
    return f"application service: as before the run — the application writes on {writes} ({observation['placement']})"


def pair_statement(observation: dict[str, Any]) -> str:
    """The pair as read at the end of the run: whole, in the named intermediate state, or what is wrong."""
    if not observation.get("readable"):
        return "pair: COULD NOT BE READ"
    verdict = observation["invariant"]
    servers = "; ".join(f"{name}: admin_mode {s['admin_mode']}, sender {'running' if s['sender_running'] else 'stopped'}"
                        f", SQL apply {s['sql_apply_enable']}, tables in replication {s['tables_in_replication']}"
                        for name, s in observation["servers"].items())
    if verdict["problems"]:
        return "pair: NOT WHOLE — " + " | ".join(verdict["problems"]) + f" (read: {servers})"
    if verdict["intermediate"]:
        return f"pair: intermediate state — {verdict['intermediate']} (read: {servers})"
    return f"pair: whole (read: {servers})"


def outage(request: DdlRequest, service_records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per server, each time this run took its application away (stopped, or moved onto the peer) and
    gave it back, as the service steps' and restore's records say (``service.control.stamped``): never
    inferred from which steps ran. An interval with no record of the service coming back has no end."""
    spans: dict[str, list[dict[str, Any]]] = {s.name: [] for s in request.servers}
    for record in sorted((r for r in service_records if r and r.get("at") is not None), key=lambda r: r["at"]):
        server, action = record.get("server"), record.get("action")
        if server not in spans:
            continue
        open_span = spans[server][-1] if spans[server] and spans[server][-1]["to"] is None else None
        if action == "stop" or (action == "move_to_peer" and server == record.get("step_server")):
            if open_span is None:
                peer = next((s.name for s in request.servers if s.name != server), "")
                spans[server].append({"effect": "stopped" if action == "stop" else f"moved to {peer}",
                                      "from": record["at"], "to": None, "kind": record.get("kind")})
        elif action in ("resume", "restore") and open_span is not None and record.get("state") != "no service":
            open_span["to"] = record["at"]
    return spans


def outage_lines(request: DdlRequest, spans: dict[str, list[dict[str, Any]]],
                 admin_seconds: dict[str, float]) -> list[str]:
    """One line per server: the application's outage (stopped → resumed) beside the time in admin mode."""
    manual = request.service_control.get("mode") == "manual"
    lines = ["  outage and time in admin mode per server (the outage: the application stopped → resumed, as the "
             "service steps and restore recorded it" + ("; manual: when a person approved each step" if manual else "")
             + "):"]
    for server in request.servers:
        parts = []
        for span in spans.get(server.name, []):
            begun = clock(span["from"])
            if span["to"] is None:
                parts.append(f"{span['effect']} {begun} → no resume recorded by this run")
            else:
                again = "resumed" if span["effect"] == "stopped" else "back"
                parts.append(f"{span['effect']} {begun} → {again} {clock(span['to'])} "
                             f"({span['to'] - span['from']:.2f} s)")
        admin = admin_seconds.get(server.name)
        lines.append(f"    {server.name:<12} {'; '.join(parts) or 'application not stopped by this run'}"
                     f" · admin mode {'n/a' if admin is None else f'{admin:.2f} s'}")
    return lines


def summarize(request: DdlRequest, audits: list[dict[str, Any]], post: dict[str, Any] | None,
              restored: dict[str, Any] | None, log: Any, observation: dict[str, Any],
              service_records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The run summary: the pair and its Connections, the outage and the time in admin mode per server,
    statements per server (restore's included), the data checked, and — read at the end — where the
    application writes and the pair's state."""
    conn_to_name = {s.conn_id: s.name for s in request.servers}
    admin_window: dict[str, dict[str, float]] = {}
    steps, statements = [], []
    for audit in sorted((a for a in audits if a), key=lambda a: a["started"]):
        server = conn_to_name.get(audit["conn_id"], audit["conn_id"])
        steps.append({"step_id": audit["step_id"], "server": server, "started": iso(audit["started"]),
                      "seconds": round(audit["seconds"], 3),
                      "statements": [{"statement": st["statement"], "result": st["result"],
                                      "already_done": st["already_done"]} for st in audit["statements"]]})
        for statement in audit["statements"]:
            statements.append(f"    {time.strftime('%H:%M:%S', time.gmtime(audit['started']))} {audit['step_id']:<7} "
                              f"{server:<12} {statement['statement']} -> {statement['result']}"
                              f"{' (already done)' if statement['already_done'] else ''}")
            text = (statement["statement"] or "").upper()
            if "ADMIN_MODE = 1" in text:
                admin_window.setdefault(server, {})["on"] = audit["started"]
            if "ADMIN_MODE = 0" in text:
                admin_window.setdefault(server, {})["off"] = audit["started"] + audit["seconds"]
    seconds = {s: round(w["off"] - w["on"], 2) for s, w in admin_window.items() if "on" in w and "off" in w}
    spans = outage(request, service_records or [])
    lines = [f"Run summary of {request.describe_pair()}",
             f"  {request.variant}, replication {request.replication_name}, tables {', '.join(request.tables)} "
             "(times in UTC)",
             *outage_lines(request, spans, seconds),
             "  statements, per server:", *(statements or ["    none sent"])]
    if post:
        # read by run_post_checks after the procedure, on both servers, while the application kept writing:
        # a count is that moment's, not the number of rows the application committed during the run
        lines.append(f"  rows per table when run_post_checks read them ({post.get('row_count_verdict')}; the "
                     f"application may have written more since): {post.get('row_counts')}")
    if restored:
        lines.append(f"  restore: {restored.get('actions') or 'nothing to restore'}")
        if restored.get("data"):
            lines.append(f"  restore's data check: {restored['data']['verdict']} ({restored['data']['detail']})")
    service = service_statement(observation)
    pair = pair_statement(observation)
    lines += [f"  {service}", f"  {pair}"]
    whole = bool(observation.get("readable")) and observation["invariant"]["whole"] and not observation["changed"]
    (log.info if whole else log.error)("\n".join(lines))
    outage_seconds = {name: round(sum(s["to"] - s["from"] for s in server_spans if s["to"] is not None), 2)
                      for name, server_spans in spans.items() if server_spans}
    return {"pair": pair, "pair_name": request.pair, "connections": {s.name: s.conn_id for s in request.servers},
            "admin_mode_seconds": seconds, "outage_seconds": outage_seconds,
            "outage": {name: [{**span, "from": iso(span["from"]), "to": None if span["to"] is None else iso(span["to"])}
                              for span in server_spans] for name, server_spans in spans.items()},
            "statements": sum(len(a["statements"]) for a in audits if a),
            "row_counts": (post or {}).get("row_counts"), "service": service, "whole": whole,
            "observation": observation, "text": "\n".join(lines), "steps": steps}


def clock(epoch: float) -> str:
    """A time of day in UTC to the millisecond: outages last seconds."""
    return time.strftime("%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}"


# The tasks before the procedure and after it, in the order they run: the first that failed holds the
# explanation of a failed run.
GATE_TASKS = ("validate_params", "recover_leftovers", "run_preflight", "plan", "stop_if_dry_run", "wait_for_window",
              "hold_pair")


def failure_message(states: dict[str, str], step_task_ids: list[str]) -> str:
    """What a failed run says in one line: the task whose log holds the explanation (the first that failed,
    as Airflow has the states now), and run_restore only when it ran."""
    failed = [t for t in (*GATE_TASKS, *step_task_ids, "run_post_checks") if states.get(t) == "failed"]
    where = (f"{failed[0]} failed: its log says why" + (f" (also failed: {', '.join(failed[1:])})" if failed[1:] else "")
             if failed else "no task of the run failed before the summary (a task was marked by hand?)")
    restore = states.get("run_restore")
    if restore == "success":
        where += "; run_restore put the pair back: its log says what it did"
    elif restore == "failed":
        where += "; run_restore failed: its log says what each server is left in and the one action to take"
    else:
        where += f"; run_restore did not run ({restore or 'no state'})"
    return f"the procedure did not complete: {where}."


def iso(epoch: float, milliseconds: bool = True) -> str:
    """A time as a person reads it: ISO 8601, UTC (the audit: with milliseconds; the history: seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + (
        f".{int(epoch % 1 * 1000):03d}Z" if milliseconds else "Z")


def failure_advice(restored: dict[str, Any] | None, began: bool, observation: dict[str, Any] | None = None) -> str:
    """What a failed run left and what an operator does next, in a few lines (the failure notice): the
    pair and the application as read at the end, not as the steps that ran suggest."""
    observation = observation or {}
    verdict = observation.get("invariant") or {}
    now = f"{service_statement(observation)}. {pair_statement(observation)}." if observation else ""
    if not began:
        return ("Nothing was changed: the run stopped before it held the pair (its params, the preflight, the "
                f"pair's lock or the maintenance window). Fix what the failed task says and trigger it again. {now}")
    if verdict.get("intermediate") and not verdict.get("problems"):
        return ("The pair is in a safe intermediate state and stays held by this run: " + verdict["intermediate"]
                + f". Fix the cause shown in the failed task's log, then trigger this request again with "
                f"recover=true. {now}")
    if restored is None or not verdict.get("whole"):
        return ("Restore did NOT make the pair whole, and the pair stays held by this run: run_restore's log says "
                "what each server is left in and the one action that finishes the job (usually a new run of the "
                f"same request with recover=true once the cause is fixed). {now}")
    actions = "; ".join(restored.get("actions") or []) or "nothing needed restoring"
    return (f"Restore made the pair whole again ({actions}). The DDL is not applied everywhere: fix the cause "
            f"shown in the failed task's log, then trigger the run again. {now}")
