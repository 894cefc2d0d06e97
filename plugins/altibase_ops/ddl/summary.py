"""The run summary: every statement per server, time in admin mode per server, rows checked."""

from __future__ import annotations

import time
from typing import Any

from altibase_ops.ddl.request import DdlRequest

_WHAT = {"stop": "stopped", "move_to_peer": "moved to the other server"}


def service_statement(service_steps: list[tuple[str, str, str, str | None]], restored: dict[str, Any] | None) -> str:
    """Whether the application service is as it was before the run, from the service steps that ran
    ((step id, action, server, task state), in procedure order) and what restore did."""
    done = [(step_id, action, server) for step_id, action, server, state in service_steps if state == "success"]
    if not done:
        return "application service: not touched by this run"
    step_id, action, server = done[-1]
    if action in ("resume", "restore"):
        return f"application service: back as before the run ({step_id})"
    if restored and any(a.startswith("service on") for a in restored.get("actions") or []):
        return "application service: brought back by restore"
    return (f"application service: NOT as before the run — {_WHAT.get(action, action)} at {step_id} ({server}) and "
            "not brought back (see run_restore). Bring it back once the pair is whole: a run with recover=true "
            "finishes the procedure and does")


def summarize(request: DdlRequest, audits: list[dict[str, Any]], post: dict[str, Any] | None,
              restored: dict[str, Any] | None, log: Any,
              service_steps: list[tuple[str, str, str, str | None]] | None = None) -> dict[str, Any]:
    """The run summary: statements per server, time in admin mode per server, the data checked, and
    whether the application service is as it was."""
    conn_to_name = {s.conn_id: s.name for s in request.servers}
    admin_window: dict[str, dict[str, float]] = {}
    lines = [f"Run summary — {request.variant}, replication {request.replication_name} (times in UTC)"]
    steps = []
    for audit in sorted((a for a in audits if a), key=lambda a: a["started"]):
        server = conn_to_name.get(audit["conn_id"], audit["conn_id"])
        steps.append({"step_id": audit["step_id"], "server": server, "started": iso(audit["started"]),
                      "seconds": round(audit["seconds"], 3),
                      "statements": [{"statement": st["statement"], "result": st["result"],
                                      "already_done": st["already_done"]} for st in audit["statements"]]})
        for statement in audit["statements"]:
            lines.append(f"  {time.strftime('%H:%M:%S', time.gmtime(audit['started']))} {audit['step_id']:<7} "
                         f"{server:<12} {statement['statement']} -> {statement['result']}"
                         f"{' (already done)' if statement['already_done'] else ''}")
            text = (statement["statement"] or "").upper()
            if "ADMIN_MODE = 1" in text:
                admin_window.setdefault(server, {})["on"] = audit["started"]
            if "ADMIN_MODE = 0" in text:
                admin_window.setdefault(server, {})["off"] = audit["started"] + audit["seconds"]
    seconds = {s: round(w["off"] - w["on"], 2) for s, w in admin_window.items() if "on" in w and "off" in w}
    lines.append(f"  time in admin mode per server (s): {seconds or 'n/a'}")
    if post:
        # read by run_post_checks after the procedure, on both servers, while the application kept writing:
        # a count is that moment's, not the number of rows the application committed during the run
        lines.append(f"  rows per table when run_post_checks read them ({post.get('row_count_verdict')}; the "
                     f"application may have written more since): {post.get('row_counts')}")
    if restored:
        lines.append(f"  restore: {restored.get('actions') or 'nothing to restore'}")
    service = service_statement(service_steps or [], restored)
    lines.append(f"  {service}")
    log.info("\n".join(lines))
    return {"admin_mode_seconds": seconds, "statements": sum(len(a["statements"]) for a in audits if a),
            "row_counts": (post or {}).get("row_counts"), "service": service, "text": "\n".join(lines),
            "steps": steps}


def iso(epoch: float, milliseconds: bool = True) -> str:
    """A time as a person reads it: ISO 8601, UTC (the audit: with milliseconds; the history: seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + (
        f".{int(epoch % 1 * 1000):03d}Z" if milliseconds else "Z")


def failure_advice(restored: dict[str, Any] | None, began: bool) -> str:
    """What a failed run left and what an operator does next, in a few lines (the failure notice)."""
    if not began:
        return ("Nothing was changed: the run stopped before it held the pair (its params, the preflight, the "
                "pair's lock or the maintenance window). Fix what the failed task says and trigger it again.")
    if restored is None:
        return ("Restore did NOT make the pair safe, and the pair stays held by this run: run_restore's log says "
                "what each server is left in and how to finish (usually a new run of the same request with "
                "recover=true once the cause is fixed). The application service may still be stopped.")
    actions = "; ".join(restored.get("actions") or []) or "nothing needed restoring"
    return (f"Restore made the pair whole again ({actions}). The DDL is not applied everywhere: fix the cause "
            "shown in the failed task's log, then trigger the run again.")
