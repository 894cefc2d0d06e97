"""The page's HTML, from ``read.read_fleet``'s view: one section per pair (its servers, its lock, its
change history). Plain server-side HTML, every value escaped; links open in the Airflow window itself
(the page is shown in the UI's frame)."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem; color: #1a202c; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: .5rem 0; } th, td { border: 1px solid #cbd5e0; padding: .25rem .5rem;
text-align: left; vertical-align: top; } th { background: #edf2f7; }
.bad { color: #c53030; font-weight: 600; } .ok { color: #2f855a; } .muted { color: #718096; }
"""


def _e(value: Any) -> str:
    return "–" if value is None else escape(str(value))


def _run_link(dag_id: str, run_id: str, url: str) -> str:
    return f'<a href="{escape(url)}" target="_top" title="{escape(dag_id)}">{escape(run_id)}</a>'


def _server_row(s: dict[str, Any]) -> str:
    if not s["reachable"] or s["replication_exists"] is None:
        why = "no answer" if not s["answered"] else "unreachable"
        state = f'<span class="bad">{why}</span>: {_e(s["error"])}'
        if s["admin_mode"] == 1:  # it answered, refusing the plain login: nothing else could be read
            state = f'<span class="bad">ADMIN_MODE=1</span>: {_e(s["error"])}'
        return (f"<tr><td>{_e(s['name'])}</td><td>{_e(s['role'])}</td><td>{_e(s['conn_id'])}</td>"
                f'<td colspan="6">{state}</td></tr>')
    admin = f'<span class="bad">{s["admin_mode"]}</span>' if s["admin_mode"] else _e(s["admin_mode"])
    if not s["replication_exists"]:
        sender = '<span class="bad">replication missing</span>'
    elif s["sender"] is None:
        sender = "not running"
    else:
        sender = (f"{_e(s['sender']['status_name'])}, gap {_e(s['sender']['gap'])} "
                  f"(REP_SN {_e(s['sender']['rep_sn'])})")
    receivers = ", ".join(f"from {_e(r['peer'])} (SQL apply tables {r['sql_apply_table_count']})"
                          for r in s["receivers"] or []) or "none"
    apply = f"{_e(s['sql_apply_enable'])} / {_e(s['sql_apply_table_count'])}"
    if s["sql_apply_enable"] or s["sql_apply_table_count"]:
        apply = f'<span class="bad">{apply}</span>'
    return (f"<tr><td>{_e(s['name'])}</td><td>{_e(s['role'])}</td><td>{_e(s['conn_id'])}</td>"
            f'<td class="ok">reachable</td><td>{admin}</td><td>{sender}</td><td>{receivers}</td><td>{apply}</td>'
            f"<td>{_e(s['sessions'])}</td></tr>")


def _lock(lock: dict[str, Any]) -> str:
    missing = "".join(f"<li>{_e(server)}: {_e(why)}</li>" for server, why in lock["not_read"].items())
    missing = f'<ul class="muted">{missing}</ul>' if missing else ""
    if lock["state"] == "unknown":
        return f"<p>Lock: <b>unknown</b> — no server could be read.</p>{missing}"
    if lock["state"] == "free":
        return f"<p>Lock: free (no run holds the pair).</p>{missing}"
    holders = "".join(
        f"<li>run {_run_link(h['dag_id'], h['run_id'], h['run_url'])} of {_e(h['holder'])}, since "
        f"{_e(h['taken_at'])}, last heartbeat {_e(h['heartbeat_at'])}, lease until {_e(h['expires_at'])}</li>"
        for h in lock["holders"])
    return f"<p>Lock: <b>held</b> on {_e(', '.join(lock['held_on']))} by</p><ul>{holders}</ul>{missing}"


def _history(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class=\"muted\">No change recorded.</p>"
    body = "".join(
        f"<tr><td>{_e(r['change_id'])}</td><td>{_e(r['outcome'])}</td><td>{_e(r['ended_at'])}</td>"
        f"<td>{_e(r['duration_seconds'])} s</td><td>{_run_link(r['dag_id'], r['run_id'], r['run_url'])}</td>"
        f"<td>{_e(r['reason'] or None)}</td></tr>" for r in rows)
    return ("<table><tr><th>change</th><th>outcome</th><th>ended (UTC)</th><th>took</th><th>run</th>"
            f"<th>reason</th></tr>{body}</table>")


def render_page(view: dict[str, Any]) -> str:
    sections = []
    for pair in view["pairs"]:
        rows = "".join(_server_row(s) for s in pair["servers"])
        sections.append(
            f'<section id="pair-{_e(pair["name"])}"><h2>{_e(pair["name"])}</h2>'
            f"<p>replication {_e(pair['replication_name'])}, {_e(pair['topology'].replace('_', '-'))}</p>"
            "<table><tr><th>server</th><th>role</th><th>connection</th><th>state</th><th>admin mode</th>"
            "<th>sender</th><th>receivers</th><th>SQL apply (enabled / tables)</th><th>other sessions</th></tr>"
            f"{rows}</table>{_lock(pair['lock'])}<h3>Change history</h3>{_history(pair['history'])}</section>")
    error = f'<p class="bad">{_e(view["error"])}</p>' if view.get("error") else ""
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Altibase pairs</title>"
            f"<style>{STYLE}</style></head><body><h1>Altibase pairs</h1>"
            f"<p class=\"muted\">Read from the servers at {_e(view['read_at'])} (each server answers within "
            f"{view['deadline_seconds']:g} s or shows as not answering; plain sessions, never SYSDBA). "
            f'<a href="">Read again</a> · <a href="api/pairs">JSON</a></p>{error}{"".join(sections)}</body></html>')
