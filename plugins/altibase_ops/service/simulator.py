"""Service control in the simulator: the embedded application load stands in for the service.

Stopping a server's service stops its load; moving it starts the same load on the peer; restoring
starts it again where it ran before the run. As with Kubernetes' annotations, what each server's load
was before the run is kept with the application, not in the run: ``service-originals.json`` in the
simulator's state directory, written on a server's first change and removed when it is put back. So a
``recover`` run, which has no XCom of the failed one, still knows where the service belongs. Loads are
started with the credentials of the load they replace (``credentials_of``): the service control never
holds the application's password.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from altibase_ops.backends import simulator as simulator_backend

ORIGINALS_FILE = "service-originals.json"


def _simulator(control: dict[str, Any]) -> Any:
    return simulator_backend.control(control.get("state_dir"))


@contextmanager
def _originals(control: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """{server: its load's settings before the run, or None for no load}, read and written under a lock."""
    path = Path(_simulator(control).state_dir) / ORIGINALS_FILE
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {}
        before = json.dumps(data, sort_keys=True)
        yield data
        if json.dumps(data, sort_keys=True) != before:
            path.write_text(json.dumps(data, sort_keys=True))


def _running(control: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {load["server"]: load for load in _simulator(control).load_status() if load["running"]}


def _remember(control: dict[str, Any], servers: list[str]) -> None:
    """Keep each server's load as it is now, unless a change of this or an earlier run kept it already."""
    running = _running(control)
    with _originals(control) as originals:
        for name in servers:
            if name not in originals:
                originals[name] = _load_config(running[name]) if name in running else None


def simulator_stop(control: dict[str, Any], server: str) -> dict[str, Any]:
    _remember(control, [server])
    running = _running(control).get(server)
    stopped = _simulator(control).load_stop(server)
    return {"kind": "simulator_stop", "server": server,
            "load": _load_config(running) if running else None, "stopped": bool(stopped)}


def simulator_start(control: dict[str, Any], server: str, load: dict[str, Any] | None) -> None:
    if load:
        _simulator(control).load_start(server, **{k: v for k, v in load.items() if k != "origin"},
                                       credentials_of=load.get("origin", server))


def _load_config(status: dict[str, Any]) -> dict[str, Any]:
    return {"table": status["table"], "sessions": status.get("sessions", 2),
            "interval": status.get("interval", 0.005), "key_column": status.get("key_column", "C1"),
            "value_column": status.get("value_column", "C2"), "origin": status["server"]}


def stop_or_move(control: dict[str, Any], server: str, peer: str | None) -> list[dict[str, Any]]:
    """Stop ``server``'s load; with a ``peer``, start the same load there (unless one runs already)."""
    if peer:
        _remember(control, [server, peer])
    records = [simulator_stop(control, server)]
    # the load it ran, or (stopped by an earlier step, e.g. restore's R13) the one it ran before the run
    load = records[0]["load"] or (originals(control).get(server) if peer else None)
    if peer and load:
        if peer not in _running(control):
            simulator_start(control, peer, load)
            records.append({"kind": "simulator_start", "server": peer})
    return records


def originals(control: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """What each server's load was before the run, for the servers a run changed and did not put back."""
    with _originals(control) as data:
        return dict(data)


def return_to(control: dict[str, Any], wanted: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Make each server's load as ``wanted`` (a load's settings, or None for no load): stops first,
    so the service never runs in two places at once. A server put back is forgotten in the originals."""
    done: list[dict[str, Any]] = []
    running = set(_running(control))
    for name, load in wanted.items():
        if load is None and name in running:
            _simulator(control).load_stop(name)
            done.append({"kind": "restored", "server": name, "state": "no service"})
    for name, load in wanted.items():
        if load is not None and name not in running:
            simulator_start(control, name, load)
            done.append({"kind": "restored", "server": name, "state": "service running"})
    with _originals(control) as data:
        for name in wanted:
            data.pop(name, None)
    return done


def writers(control: dict[str, Any]) -> set[str]:
    """The servers the application writes on now: those with a running load."""
    return set(_running(control))
