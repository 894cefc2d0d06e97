"""Stopping, moving and resuming the application service around the procedure (O1/O9, R1c/R13).

Three modes, chosen by the ``service_control`` parameter:

- ``manual``: a person does it; the task asks through Airflow's human-in-the-loop approval (with a
  timeout: no answer, or "Reject", fails the task and the restore path runs).
- ``kubernetes``: patch the client-facing Service's selector (to point at the other server, or at
  nothing) and/or scale the application Deployment, recording what was there to restore it.
- ``simulator``: stop and start the embedded simulator's application load.

Every action returns a *record* of what it changed (kept in XCom); ``resume`` and ``restore`` put each
resource straight back to its state before the run (the first record of a resource holds it), so the
service ends as it was before the run whatever happened in between.

The modes' mechanics live in ``service/simulator.py`` and ``service/kubernetes.py``; this module
decides what to do, ``service/operator.py`` is the task.
"""

from __future__ import annotations

from typing import Any

from altibase_ops.service import kubernetes, simulator


def perform(action: str, control: dict[str, Any], server: str, peer: str, history: list[dict[str, Any]],
            clients: tuple[Any, Any] | None = None) -> list[dict[str, Any]]:
    """Do ``action`` (stop | resume | move_to_peer | restore) automatically; returns new records.

    ``history``: the records earlier steps of this run made, oldest first (resume and restore put
    what they changed back as it was before the run).
    """
    mode = control["mode"]
    if action in ("resume", "restore"):
        return return_to_original(control, history, None if action == "restore" else server, clients)
    if mode == "simulator":
        return simulator.stop_or_move(control, server, peer if action == "move_to_peer" else None)
    return kubernetes.stop_or_move(control, server, peer if action == "move_to_peer" else None, clients)


def _resource(record: dict[str, Any]) -> tuple[str, str] | None:
    kind = record.get("kind")
    if kind in ("simulator_stop", "simulator_start"):
        return ("load", record["server"])
    if kind == "service_selector":
        return ("service", record["service"])
    if kind == "deployment_scale":
        return ("deployment", record["deployment"])
    return None  # manual approvals, "restored" markers


def return_to_original(control: dict[str, Any], history: list[dict[str, Any]], server: str | None,
                       clients: tuple[Any, Any] | None = None) -> list[dict[str, Any]]:
    """Put each resource the run changed (of ``server``, or all) straight back to its state before the
    run: the first record of a resource holds that state. Straight back, not by replaying undo steps:
    an undo sequence could briefly re-open a service on a server whose replication is already stopped.
    Stops come before starts, so the service never runs in two places at once."""
    originals: dict[tuple[str, str], dict[str, Any]] = {}
    for record in history:
        key = _resource(record)
        if key is not None and key not in originals and (server is None or record["server"] == server):
            originals[key] = record
    done: list[dict[str, Any]] = []
    if control["mode"] == "simulator":
        return simulator.return_to(control, {key[1]: (rec["load"] if rec["kind"] == "simulator_stop" else None)
                                             for key, rec in originals.items()})
    for record in sorted(originals.values(), key=lambda r: r["kind"] != "service_selector"):
        kubernetes.undo(control, record, clients)
        done.append({"kind": "restored", "server": record["server"], "state": record})
    return done
