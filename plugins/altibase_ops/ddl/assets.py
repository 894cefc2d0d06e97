"""Schema changes as Airflow Assets: ``altibase://<pair>/<USER>.<TABLE>``, one event per table a run
changed, emitted by ``run_post_checks`` through the asset alias ``altibase_schema_changes`` (the URIs
are known only when the run has read its servers), so a user's DAG can be scheduled on a table's schema.

What changed is read from the servers, not from which steps ran: the statements whose record in
``SYS.AIRFLOW_DDL_APPLIED`` is DONE by this run on a server (``ddl/records.py``; a statement that was
already applied is skipped and leaves no record of this run), once the post-checks found the DDL
applied everywhere. A run that applied nothing emits nothing.

``<pair>``: the ``pair`` param, else the fleet's pair with the run's replication and Connections (the
maintenance DAG's runs), else the two Connection ids joined by ``+`` (a pair outside the fleet).
"""

from __future__ import annotations

from typing import Any

from altibase_ops.ddl.records import applied_records, sysdba_hook
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import when_free

SCHEMA_CHANGES_ALIAS = "altibase_schema_changes"
URI_SCHEME = "altibase"


def asset_uri(pair: str, table: str) -> str:
    return f"{URI_SCHEME}://{pair}/{table}"


def pair_name(params: dict[str, Any], request: DdlRequest) -> str:
    """The pair's name in the fleet (see the module's docstring)."""
    if params.get("pair"):
        return str(params["pair"])
    from altibase_ops.pairs import InvalidPairsError, pairs_from_env, validate_pairs

    conns = sorted(s.conn_id for s in request.servers)
    try:
        fleet = validate_pairs(pairs_from_env())
    except InvalidPairsError:  # the DAG's own parse would have failed first; a name is still owed
        fleet = []
    for pair in fleet:
        if pair.replication_name == request.replication_name and sorted(s["conn_id"] for s in pair.servers) == conns:
            return pair.name
    return "+".join(conns)


def applied_by_run(request: DdlRequest, run_id: str) -> dict[int, list[str]]:
    """{statement number: the servers where this run's record of it is DONE}, read from each server."""
    found: dict[int, list[str]] = {}
    for server in request.servers:
        with when_free(sysdba_hook(server)) as session:
            for number, (state, by, _at) in applied_records(session, request).items():
                if state == "DONE" and by == run_id:
                    found.setdefault(number, []).append(server.name)
    return found


def schema_change_events(request: DdlRequest, params: dict[str, Any], run_id: str) -> list[tuple[str, dict]]:
    """(asset URI, event extra) per table this run changed; [] when it applied nothing."""
    applied = applied_by_run(request, run_id)
    if not applied:
        return []
    pair = pair_name(params, request)
    by_table: dict[str, list[dict[str, Any]]] = {}
    for number, servers in sorted(applied.items()):
        stmt = request.ddl[number]
        # a DROP INDEX names no table, and once dropped its index tells none: every listed table may be it
        for table in [stmt.table] if stmt.table else request.tables:
            by_table.setdefault(table, []).append({"statement": stmt.text, "kind": stmt.kind,
                                                   "servers": sorted(servers)})
    return [(asset_uri(pair, table), {"pair": pair, "replication_name": request.replication_name, "table": table,
                                      "changes": changes, "change_id": request.change_id or None, "run_id": run_id})
            for table, changes in sorted(by_table.items())]
