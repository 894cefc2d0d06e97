"""Service control in the simulator: the embedded application load stands in for the service.

Stopping a server's service stops its load (remembering how it ran); moving it starts the same load
on the peer; restoring starts it again where it ran before the run.
"""

from __future__ import annotations

from typing import Any

from altibase_ops.backends import simulator as simulator_backend


def _simulator(control: dict[str, Any]) -> Any:
    return simulator_backend.control(control.get("state_dir"))


def simulator_stop(control: dict[str, Any], server: str) -> dict[str, Any]:
    sim = _simulator(control)
    running = [load for load in sim.load_status() if load["server"] == server and load["running"]]
    stopped = sim.load_stop(server)
    return {"kind": "simulator_stop", "server": server,
            "load": _load_config(running[0]) if running else None, "stopped": bool(stopped)}


def simulator_start(control: dict[str, Any], server: str, load: dict[str, Any] | None) -> None:
    if load:
        _simulator(control).load_start(server, **load)


def _load_config(status: dict[str, Any]) -> dict[str, Any]:
    return {"table": status["table"], "sessions": status.get("sessions", 2),
            "interval": status.get("interval", 0.005), "key_column": status.get("key_column", "C1"),
            "value_column": status.get("value_column", "C2")}


def stop_or_move(control: dict[str, Any], server: str, peer: str | None) -> list[dict[str, Any]]:
    """Stop ``server``'s load; with a ``peer``, start the same load there (unless one runs already)."""
    records = [simulator_stop(control, server)]
    if peer and records[0]["load"]:
        if not any(load["server"] == peer and load["running"] for load in _simulator(control).load_status()):
            simulator_start(control, peer, records[0]["load"])
            records.append({"kind": "simulator_start", "server": peer})
    return records


def return_to(control: dict[str, Any], wanted: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Make each server's load as ``wanted`` (a load's settings, or None for no load): stops first,
    so the service never runs in two places at once."""
    done: list[dict[str, Any]] = []
    running = {load["server"] for load in _simulator(control).load_status() if load["running"]}
    for name, load in wanted.items():
        if load is None and name in running:
            _simulator(control).load_stop(name)
            done.append({"kind": "restored", "server": name, "state": "no service"})
    for name, load in wanted.items():
        if load is not None and name not in running:
            simulator_start(control, name, load)
            done.append({"kind": "restored", "server": name, "state": "service running"})
    return done
