"""Ready-made situations on a running simulator: the replicated pair of the seed, per topology.

Used by the demo, the benchmark and the DAG tests, so all of them start from the same pair.
"""

from __future__ import annotations

from typing import Any

TABLE_DDL = "CREATE TABLE {table} (C1 INTEGER PRIMARY KEY, C2 INTEGER)"


def seed_replicated_pair(sim: Any, servers: tuple[str, str] = ("node1", "node2"), *, topology: str = "active_standby",
                         tables: tuple[str, ...] = ("SYS.T1", "SYS.T2"), replication: str = "REP1") -> None:
    """Tables and a replication on both servers pointing at each other (P6), started as the topology
    runs it: Active-Standby sends from the first server only, Active-Active from both."""
    for me, peer in (servers, servers[::-1]):
        with sim.connect(me, sysdba=True) as conn:
            cur = conn.cursor()
            for table in tables:
                cur.execute(TABLE_DDL.format(table=table))
            items = ", ".join(f"FROM {t} TO {t}" for t in tables)
            cur.execute(f"CREATE REPLICATION {replication} WITH '{peer}', 20301 {items}")
    senders = servers if topology == "active_active" else servers[:1]
    for name in senders:
        with sim.connect(name, sysdba=True) as conn:
            conn.cursor().execute(f"ALTER REPLICATION {replication} START")


def connection_uri(server: dict[str, Any]) -> str:
    """An Airflow Connection (JSON form, for AIRFLOW_CONN_<ID>) to a simulated server."""
    import json

    return json.dumps({"conn_type": "altibase", "host": server["host"], "port": server["port"], "login": "SYS",
                       "password": "manager", "extra": {"backend": "simulator"}})
