"""Small helpers for simulator tests: run SQL on a named server, set up the seed's replicated pair."""

from __future__ import annotations

import pytest

from altibase_sim import dbapi
from altibase_sim.control import SimulatorControl
from altibase_sim.simulation import wait_until

__all__ = ["code_of", "error_of", "query", "run", "seed_pair", "wait_until"]


def run(sim: SimulatorControl, server: str, *statements: str, sysdba: bool = True, user: str = "SYS",
        password: str = "manager") -> None:
    with sim.connect(server, user=user, password=password, sysdba=sysdba) as conn:
        cur = conn.cursor()
        for stmt in statements:
            cur.execute(stmt)


def error_of(sim: SimulatorControl, server: str, sql: str, sysdba: bool = True, **login: str) -> dbapi.Error:
    """The error a statement must raise (the test fails if it succeeds)."""
    with pytest.raises(dbapi.Error) as info:
        run(sim, server, sql, sysdba=sysdba, **login)
    return info.value


def code_of(sim: SimulatorControl, server: str, sql: str, sysdba: bool = True, **login: str) -> str:
    """The Altibase code of the error a statement must raise."""
    return error_of(sim, server, sql, sysdba=sysdba, **login).code


def query(sim: SimulatorControl, server: str, sql: str, params: tuple = (), sysdba: bool = False) -> list[tuple]:
    with sim.connect(server, sysdba=sysdba) as conn:
        return conn.cursor().execute(sql, params).fetchall()


def seed_pair(sim: SimulatorControl, tables: tuple[str, ...] = ("T1",), start: bool = True,
              rep: str = "REP1") -> None:
    """P6 of the seed on node1 and node2: tables, a replication pointing at the other node, START."""
    for me, peer in (("node1", "node2"), ("node2", "node1")):
        items = ", ".join(f"FROM SYS.{t} TO SYS.{t}" for t in tables)
        run(sim, me, *[f"CREATE TABLE {t} (C1 INTEGER PRIMARY KEY, C2 INTEGER)" for t in tables],
            f"CREATE REPLICATION {rep} WITH '{peer}', 20301 {items}")
    if start:
        for node in ("node1", "node2"):
            run(sim, node, f"ALTER REPLICATION {rep} START")
