"""Simulator benchmark: median statement round trip and replicated rows per second.

    .venv/bin/python bench/simulator_roundtrip.py [--statements 2000] [--rows 20000]

The simulator runs as its own process (the daemon), the client here, as DAG tasks see it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from altibase_sim.control import start_daemon, stop_daemon


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="altibase-sim-bench-")
    sim = start_daemon(state, ["node1", "node2"])
    try:
        conns = {n: sim.connect(n, sysdba=(n == "node2")) for n in ("node1", "node2")}
        for me, peer in (("node1", "node2"), ("node2", "node1")):
            cur = conns[me].cursor()
            cur.execute("CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)")
            cur.execute(f"CREATE REPLICATION rep1 WITH '{peer}', 20301 FROM sys.t1 TO sys.t1")
        for name in ("node1", "node2"):
            conns[name].cursor().execute("ALTER REPLICATION rep1 START")
        cur = conns["node1"].cursor()

        def timed(sql: str, params_of) -> list[float]:
            samples = []
            for i in range(args.statements):
                start = time.perf_counter()
                cur.execute(sql, params_of(i))
                samples.append((time.perf_counter() - start) * 1000)
            return samples

        select = timed("SELECT COUNT(*) FROM V$SESSION WHERE ID <> SESSION_ID()", lambda i: ())
        insert = timed("INSERT INTO t1 VALUES (?, ?)", lambda i: (i, i))
        cur.execute("ALTER REPLICATION rep1 FLUSH WAIT 60")

        sim.pause_sender("node1", "REP1")
        base = args.statements
        for i in range(args.rows):
            cur.execute("INSERT INTO t1 VALUES (?, ?)", (base + i, i))
        start = time.perf_counter()
        sim.resume_sender("node1", "REP1")
        cur.execute("ALTER REPLICATION rep1 FLUSH WAIT 600")
        elapsed = time.perf_counter() - start
        shipped = conns["node2"].cursor().execute("SELECT COUNT(*) FROM t1").fetchone()[0]
        assert shipped == base + args.rows, shipped
        print(f"median round trip, SELECT on V$SESSION: {statistics.median(select):.3f} ms "
              f"(p95 {statistics.quantiles(select, n=20)[18]:.3f} ms, n={len(select)})")
        print(f"median round trip, INSERT (autocommit, replicated table): {statistics.median(insert):.3f} ms "
              f"(p95 {statistics.quantiles(insert, n=20)[18]:.3f} ms, n={len(insert)})")
        print(f"replicated rows per second (sender drain of {args.rows} rows): {args.rows / elapsed:,.0f}")
        for conn in conns.values():
            conn.close()
    finally:
        stop_daemon(state)


if __name__ == "__main__":
    main()
