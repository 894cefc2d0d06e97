"""The fleet: every replicated pair this Airflow looks after, by name, in one place.

One convention for every DAG: a pair is ``{name, replication_name, servers: [{name, conn_id, role},
{…}]}`` with optional ``service_control`` and ``runner`` (as the DDL DAG's params). The fleet is
``$ALTIBASE_PAIRS`` (JSON) plus the pairs of the file ``$ALTIBASE_PAIRS_FILE`` (a JSON list; ``make ui``:
``.ui/pairs.json``), read on every call — when a DAG file is parsed and when a task runs — so a pair
added to the file (``altibase_provision`` adds the pair it built) is usable without restarting
anything. The health DAG checks these pairs, the maintenance DAG rolls changes out to them, and a
change file names them. Validated here, so a typo is an import error in the UI, not a red run at 3 am.
Reads no Variable, Connection or database.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from typing import Any

from altibase_ops.ddl.request import TOPOLOGY_ROLES
from altibase_ops.sql.identifiers import (
    CONN_ID_PATTERN,
    SERVER_NAME_PATTERN,
    InvalidIdentifierError,
    identifier,
)

PAIRS_ENV = "ALTIBASE_PAIRS"
PAIRS_FILE_ENV = "ALTIBASE_PAIRS_FILE"
DEFAULT_PAIRS: list[dict[str, Any]] = [{
    "name": "pair1", "replication_name": "REP1",
    "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}],
}]
PAIR_KEYS = {"name", "replication_name", "servers", "service_control", "runner"}


class InvalidPairsError(ValueError):
    """The ``pairs`` configuration is unusable; the message names the entry."""


@dataclass(frozen=True)
class Pair:
    name: str
    replication_name: str
    topology: str
    servers: list[dict[str, str]]
    service_control: dict[str, Any] = field(default_factory=lambda: {"mode": "manual"})
    runner: str = "local"

    def ddl_params(self) -> dict[str, Any]:
        """The DDL DAG's params that say *where*: the pair's servers, topology, replication and service."""
        return {"servers": [dict(s) for s in self.servers], "topology": self.topology,
                "replication_name": self.replication_name, "service_control": dict(self.service_control),
                "runner": self.runner}


def pairs_from_env(environ: dict[str, str] | None = None, env: str = PAIRS_ENV) -> list[dict[str, Any]]:
    """The configured pairs: ``$ALTIBASE_PAIRS`` (JSON), else ``DEFAULT_PAIRS`` (the simulator's pair);
    for the fleet (``env`` = ALTIBASE_PAIRS), followed by the pairs of ``$ALTIBASE_PAIRS_FILE``."""
    environ = os.environ if environ is None else environ
    raw = environ.get(env, "").strip()
    try:
        pairs = json.loads(raw) if raw else DEFAULT_PAIRS
    except ValueError as exc:
        raise InvalidPairsError(f"{env} is not JSON: {exc}") from None
    if env == PAIRS_ENV and (path := environ.get(PAIRS_FILE_ENV, "").strip()):
        pairs = [*pairs, *file_pairs(path)] if isinstance(pairs, list) else pairs
    if pairs is not DEFAULT_PAIRS:
        validate_pairs(pairs)
    return pairs


def file_pairs(path: str) -> list[dict[str, Any]]:
    """The pairs of a fleet file; none while it does not exist yet."""
    try:
        with open(path, encoding="utf-8") as f:
            pairs = json.load(f)
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise InvalidPairsError(f"{PAIRS_FILE_ENV} ({path}) is not JSON: {exc}") from None
    if not isinstance(pairs, list):
        raise InvalidPairsError(f"{PAIRS_FILE_ENV} ({path}): expected a JSON list of pairs")
    return pairs


def add_to_fleet(pair: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    """Put ``pair`` into the fleet file (replacing a pair of the file with its name), for every DAG's
    next parse and every task from now on; a sentence saying what happened. Refuses a name that
    ``$ALTIBASE_PAIRS`` already gives another pair: the environment is not this function's to change."""
    environ = os.environ if environ is None else environ
    path = environ.get(PAIRS_FILE_ENV, "").strip()
    if not path:
        return (f"the fleet has no file ({PAIRS_FILE_ENV} is not set): add it to {PAIRS_ENV} for the DDL, "
                f"health and maintenance DAGs: {json.dumps(pair)}")
    env_pairs = pairs_from_env({PAIRS_ENV: environ.get(PAIRS_ENV, "")})  # DEFAULT_PAIRS when unset
    clash = next((p for p in env_pairs if p["name"] == pair["name"]), None)
    if clash == pair:
        return f"pair {pair['name']!r} is in the fleet already ({PAIRS_ENV}), as built"
    if clash is not None:
        raise InvalidPairsError(f"pair {pair['name']!r} is already in {PAIRS_ENV} with other servers "
                                f"({json.dumps(clash['servers'])}); choose another instance name")
    # one writer at a time (two provisioning runs of different instances may end together); the
    # readers see the old or the new file, never half of one (rename)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pairs = [p for p in file_pairs(path) if p.get("name") != pair["name"]] + [pair]
        validate_pairs([*env_pairs, *pairs])
        with open(f"{path}.tmp", "w", encoding="utf-8") as f:
            json.dump(pairs, f, indent=2)
        os.replace(f"{path}.tmp", path)
    return f"pair {pair['name']!r} added to the fleet ({path}): the DDL, health and maintenance DAGs see it"


def remove_from_fleet(name: str, environ: dict[str, str] | None = None) -> str:
    """Take pair ``name`` out of the fleet file (a teardown); a sentence saying what happened."""
    environ = os.environ if environ is None else environ
    path = environ.get(PAIRS_FILE_ENV, "").strip()
    if not path:
        return f"the fleet has no file ({PAIRS_FILE_ENV} is not set): remove {name!r} from {PAIRS_ENV} if it is there"
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pairs = file_pairs(path)
        kept = [p for p in pairs if p.get("name") != name]
        if len(kept) == len(pairs):
            return f"pair {name!r} is not in the fleet's file ({path})"
        with open(f"{path}.tmp", "w", encoding="utf-8") as f:
            json.dump(kept, f, indent=2)
        os.replace(f"{path}.tmp", path)
    return f"pair {name!r} removed from the fleet ({path}): the health DAG stops checking it"


def validate_pairs(pairs: Any) -> list[Pair]:
    """Every pair checked; names unique; InvalidPairsError names the first bad entry."""
    if not isinstance(pairs, list) or not pairs:
        raise InvalidPairsError("pairs: give at least one pair {name, replication_name, servers}")
    out: list[Pair] = []
    for i, pair in enumerate(pairs):
        where = f"pairs[{i}]"
        if not isinstance(pair, dict) or not {"name", "replication_name", "servers"} <= set(pair) <= PAIR_KEYS:
            raise InvalidPairsError(f"{where}: expected an object with name, replication_name and servers "
                                    "(and optionally service_control, runner)")
        name = pair.get("name")
        if not isinstance(name, str) or not SERVER_NAME_PATTERN.fullmatch(name):
            raise InvalidPairsError(f"{where}.name: {name!r} is not a name (letters, digits, _ . -)")
        if any(p.name == name for p in out):
            raise InvalidPairsError(f"{where}: pair {name!r} is listed twice (pair names must be unique)")
        try:
            replication = identifier(pair.get("replication_name"))
        except InvalidIdentifierError as exc:
            raise InvalidPairsError(f"{where}.replication_name: {exc}") from None
        servers = pair.get("servers")
        if not isinstance(servers, list) or len(servers) != 2:
            raise InvalidPairsError(f"{where}.servers: a pair is exactly two entries {{name, conn_id, role}}")
        for j, server in enumerate(servers):
            if (not isinstance(server, dict) or set(server) != {"name", "conn_id", "role"}
                    or not SERVER_NAME_PATTERN.fullmatch(str(server["name"]))
                    or not CONN_ID_PATTERN.fullmatch(str(server["conn_id"]))):
                raise InvalidPairsError(f"{where}.servers[{j}]: expected {{name, conn_id, role}} with a server "
                                        f"name and an Airflow connection id, got {server!r}")
        roles = sorted(s["role"] for s in servers)
        topology = next((t for t, r in TOPOLOGY_ROLES.items() if sorted(r) == roles), None)
        if topology is None:
            raise InvalidPairsError(f"{where}.servers: roles {roles} are neither active/standby nor "
                                    "active1/active2")
        if servers[0]["name"] == servers[1]["name"] or servers[0]["conn_id"] == servers[1]["conn_id"]:
            raise InvalidPairsError(f"{where}.servers: the two servers need different names and conn_ids")
        control = pair.get("service_control", {"mode": "manual"})
        if not isinstance(control, dict) or not isinstance(control.get("mode"), str):
            raise InvalidPairsError(f"{where}.service_control: expected an object with a mode, got {control!r}")
        runner = pair.get("runner", "local")
        if runner not in ("local", "kubernetes"):
            raise InvalidPairsError(f"{where}.runner: must be local or kubernetes, got {runner!r}")
        out.append(Pair(name, replication, topology, [dict(s) for s in servers], dict(control), runner))
    return out


def pairs_by_name(pairs: Any) -> dict[str, Pair]:
    return {p.name: p for p in validate_pairs(pairs)}
