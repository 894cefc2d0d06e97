"""The run summary: every statement per server, time in admin mode per server, rows checked."""

from __future__ import annotations

import time
from typing import Any

from altibase_ops.ddl.request import DdlRequest


def summarize(request: DdlRequest, audits: list[dict[str, Any]], post: dict[str, Any] | None,
              restored: dict[str, Any] | None, log: Any) -> dict[str, Any]:
    """The run summary: statements per server, time in admin mode per server, rows checked."""
    conn_to_name = {s.conn_id: s.name for s in request.servers}
    admin_window: dict[str, dict[str, float]] = {}
    lines = [f"Run summary — {request.variant}, replication {request.replication_name}"]
    for audit in sorted((a for a in audits if a), key=lambda a: a["started"]):
        server = conn_to_name.get(audit["conn_id"], audit["conn_id"])
        for statement in audit["statements"]:
            lines.append(f"  {time.strftime('%H:%M:%S', time.localtime(audit['started']))} {audit['step_id']:<7} "
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
        lines.append(f"  rows checked after the run ({post.get('row_count_verdict')}): {post.get('row_counts')}")
    if restored:
        lines.append(f"  restore: {restored.get('actions') or 'nothing to restore'}")
    log.info("\n".join(lines))
    return {"admin_mode_seconds": seconds, "statements": sum(len(a["statements"]) for a in audits if a),
            "row_counts": (post or {}).get("row_counts"), "text": "\n".join(lines)}
