"""The simulator demo: the seed's replicated pair (P6), its proof (P7), and a refused DDL.

Every statement goes through ``isql-sim`` exactly as a DBA would type it into ``is``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from altibase_sim.control import start_daemon, stop_daemon

ISQL = str(Path(sys.executable).parent / "isql-sim")


def isql(server: dict, script: str, expect: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run([ISQL, "-s", server["host"], "-port", str(server["port"]), "-u", "sys", "-p", "manager",
                              "-silent", "-f", fh.name], capture_output=True, text=True, timeout=60)
    finally:
        Path(fh.name).unlink()
    print(f"--- {server['name']} ---\n{out.stdout.rstrip()}\n")
    if expect not in out.stdout:
        raise SystemExit(f"demo: expected {expect!r} from {server['name']}")


def main() -> None:
    state = Path(".sim-state/demo-simulator").resolve()
    shutil.rmtree(state, ignore_errors=True)
    sim = start_daemon(state, ["altibase-svc-node1", "altibase-svc-node2"])
    try:
        node1, node2 = sim.server("altibase-svc-node1"), sim.server("altibase-svc-node2")
        print("P6: tables and replication objects pointing at each other's Service name\n")
        for me, other in ((node1, node2), (node2, node1)):
            isql(me, "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER);\n"
                 f"CREATE REPLICATION rep1 WITH '{other['name']}', 20301 FROM sys.t1 TO sys.t1;\n", "Create success.")
        for me in (node1, node2):  # START handshakes with the peer: both objects must exist first
            isql(me, "ALTER REPLICATION rep1 START;\n", "Alter success.")
        print("P7: insert on node 1, read on both; insert on node 2, read on both\n")
        isql(node1, "INSERT INTO t1 VALUES (1, 1);\nALTER REPLICATION rep1 FLUSH WAIT 10;\n", "1 row inserted.")
        isql(node2, "SELECT * FROM t1;\nINSERT INTO t1 VALUES (2, 2);\nALTER REPLICATION rep1 FLUSH WAIT 10;\n",
             "1 row selected.")
        isql(node1, "SELECT * FROM t1 ORDER BY c1;\n", "2 rows selected.")
        print("DDL on a replicated table with every replication property at its default:\n")
        isql(node1, "ALTER TABLE t1 ADD COLUMN (c3 INTEGER);\n", "[ERR-312C4")
        print("demo: the pair replicates both ways, and DDL on the replicated table is refused (ERR-312C4).")
    finally:
        stop_daemon(state)


if __name__ == "__main__":
    main()
