"""Stopping, moving and resuming the application service around the procedure (O1/O9, R1c/R13).

Three modes, chosen by the ``service_control`` parameter:

- ``manual``: a person does it; the task asks through Airflow's human-in-the-loop approval (with a
  timeout: no answer, or "Reject", fails the task and the restore path runs).
- ``kubernetes``: replace each client-facing Service's selector (to point at the other server's pods,
  or at none) and the application Deployments' scale, as the step's routes say, keeping the original
  on the object itself (``service/kubernetes.py``).
- ``simulator``: stop and start the embedded simulator's application load.

Every action returns a *record* of what it changed (kept in XCom); ``resume`` and ``restore`` put each
resource straight back to its state before the run (simulator: the first record of a resource holds
it; kubernetes: the object's annotation does, so a ``recover`` run with no history can too), so the
service ends as it was before the run whatever happened in between.

The modes' mechanics live in ``service/simulator.py`` and ``service/kubernetes.py``; this module
decides what to do, ``service/operator.py`` is the task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from altibase_ops.service import kubernetes, simulator


@dataclass(frozen=True)
class Placement:
    """Where the application writes, as read from the service control itself (never inferred from which
    steps ran). ``writers`` is None where nothing can be read (manual: a person moves it)."""

    writers: frozenset[str] | None
    changed: tuple[str, ...]  # what still differs from before the run (kept originals), by resource
    source: str

    @property
    def observed(self) -> bool:
        return self.writers is not None

    def describe(self) -> str:
        if self.writers is None:
            return f"not observable ({self.source})"
        where = ", ".join(sorted(self.writers)) or "no server"
        state = "as before the run" if not self.changed else "NOT as before the run (" + ", ".join(self.changed) + ")"
        return f"the application writes on {where}; {state} ({self.source})"


def observe(control: dict[str, Any], servers: list[str], clients: tuple[Any, ...] | None = None) -> Placement:
    """Read where the application writes now, and whether that is as before the run."""
    if control["mode"] == "kubernetes":
        return Placement(frozenset(kubernetes.writers(control, servers, clients)),
                         tuple(kubernetes.changed_objects(control, clients)), "read from the Services and Deployments")
    if control["mode"] == "simulator":
        kept = simulator.originals(control)
        running = simulator.writers(control)
        # a server whose load is not as it was before the run (kept originals that differ from now)
        changed = tuple(f"{name}'s load ({'none' if kept[name] is None else 'running'} before the run)"
                        for name in sorted(kept) if name in servers and (kept[name] is None) == (name in running))
        return Placement(frozenset(running & set(servers)), changed, "read from the simulator's application loads")
    return Placement(None, (), "manual service control: a person moves the application")


def perform(action: str, control: dict[str, Any], server: str, peer: str, history: list[dict[str, Any]],
            clients: tuple[Any, ...] | None = None, routes: dict[str, str | None] | None = None
            ) -> list[dict[str, Any]]:
    """Do ``action`` (stop | resume | move_to_peer | restore) automatically; returns new records.

    ``history``: the records earlier steps of this run made, oldest first (resume and restore put
    what they changed back as it was before the run). ``routes``: where each server's traffic goes
    after the step (``ddl/procedure.py`` derives them from the procedure; kubernetes mode follows
    them, and derives them from the action without).
    """
    if action in ("resume", "restore"):  # routes of these are "as before the run"
        records = return_to_original(control, history, None if action == "restore" else server, clients,
                                     servers=[name for name in (server, peer) if name])
    elif control["mode"] == "kubernetes":
        records = kubernetes.route(control, routes or action_routes(action, control, server, peer), clients)
    else:
        records = simulator.stop_or_move(control, server, peer if action == "move_to_peer" else None)
    return stamped(records, action, server)


def stamped(records: list[dict[str, Any]], action: str, server: str) -> list[dict[str, Any]]:
    """Each record with when it was done, by which action, for which server's service: the summary
    reads the outage (application stopped → resumed) from these, not from which steps ran."""
    at = time.time()
    return [{**record, "at": at, "action": action, "step_server": server} for record in records]


def action_routes(action: str, control: dict[str, Any], server: str, peer: str) -> dict[str, str | None]:
    """The routes an action means on its own: stop = nowhere, move = all on the peer, resume = as
    before the run, restore = every configured server as before the run."""
    if action == "stop":
        return {server: None}
    if action == "move_to_peer":
        return {server: peer, peer: peer}
    if action == "resume":
        return {server: server}
    configured = {*(control.get("services") or {}), *(control.get("deployments") or {})}
    return {name: name for name in sorted(configured)}


def _load(record: dict[str, Any]) -> str | None:
    """The server whose simulator load a record is about (None: approvals, "restored" markers)."""
    return record["server"] if record.get("kind") in ("simulator_stop", "simulator_start") else None


def return_to_original(control: dict[str, Any], history: list[dict[str, Any]], server: str | None,
                       clients: tuple[Any, ...] | None = None, servers: list[str] | None = None) -> list[dict[str, Any]]:
    """Put each resource the run changed (of ``server``, or all) straight back to its state before the
    run. Straight back, not by replaying undo steps: an undo sequence could briefly re-open a service
    on a server whose replication is already stopped. Stops come before starts, so the service never
    runs in two places at once."""
    if control["mode"] == "manual":
        return []  # a person put it back (the summary says whether the service runs)
    if control["mode"] == "kubernetes":  # the originals live on the objects (annotations), not in history
        records = kubernetes.route(control, action_routes("restore" if server is None else "resume", control,
                                                          server or "", ""), clients)
        return [{"kind": "restored", "server": r["server"], "state": f"{r['kind']} {r.get('now')}"} for r in records]
    # the originals kept with the application (a recover run has no history); else the first record of
    # a server's load in this run's history holds its state before the run
    names = servers or []
    kept = {name: load for name, load in simulator.originals(control).items()
            if (server is None and (not names or name in names)) or name == server}
    originals: dict[str, dict[str, Any]] = {}
    for record in history:
        name = _load(record)
        if name is not None and name not in originals and (server is None or name == server):
            originals[name] = record
    wanted = {name: (rec["load"] if rec["kind"] == "simulator_stop" else None) for name, rec in originals.items()}
    return simulator.return_to(control, {**wanted, **kept})


def left_changed(control: dict[str, Any], history: list[dict[str, Any]],
                 clients: tuple[Any, ...] | None = None, servers: list[str] | None = None) -> bool:
    """Whether a run left the service changed: this run's records say so, or (kubernetes) an object
    still carries the original it had before an earlier run."""
    if history:
        return True
    if control["mode"] == "simulator":
        kept = simulator.originals(control)  # kept until put back (return_to forgets them); this pair's only
        return any(servers is None or name in servers for name in kept)
    return control["mode"] == "kubernetes" and bool(kubernetes.changed_objects(control, clients))
