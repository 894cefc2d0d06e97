"""The simulator's name registry: server names and Service-style aliases -> addresses.

The daemon writes ``<state_dir>/registry.json``; clients read it (when ``ALTIBASE_SIM_STATE_DIR`` is
set) so that ``is -s altibase-svc-node2`` works as a Kubernetes Service name would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STATE_DIR_ENV = "ALTIBASE_SIM_STATE_DIR"
REGISTRY_FILE = "registry.json"


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or ".sim-state").resolve()


def read_registry(state_dir: Path | str | None = None) -> dict:
    path = Path(state_dir or default_state_dir()) / REGISTRY_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"servers": {}}


def write_registry(state_dir: Path, registry: dict) -> None:
    path = Path(state_dir) / REGISTRY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(registry, indent=2, sort_keys=True))
    os.replace(tmp, path)


def lookup(name: str, registry: dict) -> dict | None:
    """The registry entry of a server by its name or one of its aliases (case-insensitive)."""
    wanted = name.lower()
    for server_name, entry in registry.get("servers", {}).items():
        if server_name.lower() == wanted or wanted in (a.lower() for a in entry.get("aliases", [])):
            return entry
    return None


def resolve_service_address(host: str, port: int) -> tuple[str, int]:
    """Map a registered server name to its service address; anything else is returned unchanged."""
    if not os.environ.get(STATE_DIR_ENV):
        return host, port
    entry = lookup(host, read_registry())
    if entry is None:
        return host, port
    return entry["host"], entry["port"]
