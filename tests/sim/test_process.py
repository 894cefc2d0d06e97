"""The simulator as separate processes: daemon, isql-sim and the DB-API client (items 1, 2, 6, CLIs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from altibase_sim import dbapi
from altibase_sim.control import start_daemon, stop_daemon
from tests.sim.helpers import query, run, seed_pair, wait_until

BIN = Path(sys.executable).parent


def isql(server: dict, script: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "script.sql"
    path.write_text(script)
    return subprocess.run([str(BIN / "isql-sim"), "-s", server["host"], "-port", str(server["port"]), "-u", "sys",
                           "-p", "manager", "-silent", "-f", str(path), *extra],
                          capture_output=True, text=True, timeout=60)


def test_seed_proof_through_isql_with_service_names(sim, tmp_path):
    """P6-P7 of the seed, servers named like Kubernetes Services, each statement through isql-sim."""
    sim.add_server("db-a", aliases=["altibase-svc-node1"])
    sim.add_server("db-b", aliases=["altibase-svc-node2"])
    a, b = sim.server("db-a"), sim.server("db-b")
    for me, other in ((a, "altibase-svc-node2"), (b, "altibase-svc-node1")):
        out = isql(me, "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER);\n"
                   f"CREATE REPLICATION rep1 WITH '{other}', 20301 FROM sys.t1 TO sys.t1;\n", tmp_path)
        assert out.returncode == 0 and out.stdout.count("Create success.") == 2, out.stdout
    for me in (a, b):
        assert "Alter success." in isql(me, "ALTER REPLICATION rep1 START;", tmp_path).stdout
    isql(a, "INSERT INTO t1 VALUES (1, 1);\nALTER REPLICATION rep1 FLUSH WAIT 10;", tmp_path)
    isql(b, "INSERT INTO t1 VALUES (2, 2);\nALTER REPLICATION rep1 FLUSH WAIT 10;", tmp_path)
    for me in (a, b):
        out = isql(me, "SELECT * FROM t1 ORDER BY c1;", tmp_path).stdout
        assert "C1  C2\n------\n1   1\n2   2\n2 rows selected." in out
    # names resolve for clients too, as a Service name would in a cluster
    with dbapi.connect("altibase-svc-node2", 20300, "SYS", "manager") as conn:
        assert conn.cursor().execute("SELECT COUNT(*) FROM t1").fetchone() == (2,)


def test_isql_exit_status_and_error_output_rules(sim, tmp_path):
    node1 = sim.server("node1")
    out = isql(node1, "ALTER REPLICATION nope STOP;\nSELECT 1 FROM DUAL;", tmp_path)
    assert out.returncode == 0 and "[ERR-6111B : Undefined replication name. The replication name was not found in the database.]" in out.stdout
    assert "1 row selected." in out.stdout  # the error did not stop the script
    assert isql(node1, "SELECT 1 FROM DUAL;\nDROP TABLE nope;", tmp_path).returncode == 255
    assert isql(node1, "DROP TABLE nope;\nEXIT;", tmp_path).returncode == 0
    out = isql(node1, "SELECT 1 FROM DUAL;", tmp_path, "-o", str(tmp_path / "out.txt"))
    assert out.stdout == "" and "1 row selected." in (tmp_path / "out.txt").read_text()


@pytest.mark.parametrize("args, expected, stream, status", [
    (["-s", "127.0.0.1", "-bogus"], "unknown option '-bogus'", "stderr", 1),
    # a failed login is iSQL's own report: on standard output, status 255 (iSQLMain.cpp)
    (["-s", "127.0.0.1", "-port", "1", "-u", "sys", "-p", "manager"], "ERR-50032", "stdout", 255),
    (["-s", "{host}", "-port", "{port}", "-u", "sys", "-p", "wrong"], "ERR-4102E : Invalid password", "stdout", 255),
])
def test_cli_bad_input_gives_one_clear_line_and_a_non_zero_status(sim, args, expected, stream, status):
    node1 = sim.server("node1")
    args = [a.format(host=node1["host"], port=node1["port"]) for a in args]
    out = subprocess.run([str(BIN / "isql-sim"), *args, "-silent"], input="SELECT 1 FROM DUAL;", capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == status
    text = getattr(out, stream)
    assert expected in text and len(text.strip().splitlines()) == 1


def test_altibase_sim_cli_up_status_fault_and_errors(tmp_path):
    state = str(tmp_path / "cli")
    cli = [str(BIN / "altibase-sim"), "--state-dir", state]
    try:
        up = subprocess.run([*cli, "up", "--servers", "a1,a2"], capture_output=True, text=True, timeout=60)
        assert up.returncode == 0 and up.stdout.startswith("a1 127.0.0.1:")
        assert "a2 127.0.0.1:" in up.stdout
        assert subprocess.run([*cli, "fault", "server-down", "a2"], timeout=60).returncode == 0
        status = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60).stdout
        assert "a2" in status and "DOWN" in status
        bad = subprocess.run([*cli, "fault", "server-down", "nope"], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "no server named 'nope'" in bad.stderr
        bad = subprocess.run([*cli, "frobnicate"], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
        # the configuration file: written now, read at the next start
        config = subprocess.run([*cli, "config", "a1", "ADMIN_MODE=1"], capture_output=True, text=True, timeout=60)
        assert config.returncode == 0 and config.stdout.strip() == "ADMIN_MODE=1"
        assert "ADMIN_MODE = 1" in (tmp_path / "cli" / "a1.properties").read_text()
        assert "a1" in (status := subprocess.run([*cli, "status"], capture_output=True, text=True,
                                                 timeout=60).stdout) and "admin_mode=0" in status.splitlines()[0]
        assert subprocess.run([*cli, "fault", "restart", "a1"], timeout=60).returncode == 0
        status = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60).stdout
        assert "admin_mode=1" in status.splitlines()[0]
        bad = subprocess.run([*cli, "config", "a1", "ADMIN_MODE=yes"], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "expected PROPERTY=integer" in bad.stderr
        added = subprocess.run([*cli, "add", "a3", "--version", "7.3"], capture_output=True, text=True, timeout=60)
        assert added.returncode == 0 and "(Altibase 7.3)" in added.stdout
    finally:
        subprocess.run([*cli, "down"], timeout=60)
    gone = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60)
    assert gone.returncode == 1 and "no simulator is running" in gone.stderr


def test_kill_9_loses_nothing_committed_and_replication_resumes(tmp_path):
    state = tmp_path / "durable"
    sim = start_daemon(state, ["node1", "node2"])
    try:
        seed_pair(sim)
        sim.pause_sender("node1", "REP1")  # so that changes are still pending when the process dies
        run(sim, "node1", *[f"INSERT INTO t1 VALUES ({i}, {i})" for i in range(50)],
            "ALTER SYSTEM SET REPLICATION_GAP_UNIT = 512")
        assert query(sim, "node2", "SELECT COUNT(*) FROM t1") == [(0,)]
        os.kill(sim.pid, signal.SIGKILL)
        assert wait_until(lambda: sim.pid is None, timeout=10)
        sim = start_daemon(state)  # same state dir: same servers, same ports
        assert query(sim, "node1", "SELECT COUNT(*) FROM t1") == [(50,)]
        # ALTER SYSTEM lives in memory only: the restarted server has its configuration file's value
        assert query(sim, "node1", "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'REPLICATION_GAP_UNIT'") == [("1048576",)]
        assert query(sim, "node1", "SELECT IS_STARTED FROM SYSTEM_.SYS_REPLICATIONS_") == [(1,)]
        run(sim, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 10")  # resumed from its restart point
        assert query(sim, "node2", "SELECT COUNT(*) FROM t1") == [(50,)]
    finally:
        stop_daemon(state)


def test_servers_can_be_added_and_removed_while_running(sim):
    sim.add_server("node3", aliases=["altibase-svc-node3"])
    assert [s["name"] for s in sim.servers()] == ["node1", "node2", "node3"]
    run(sim, "node3", "CREATE TABLE t (c1 INTEGER PRIMARY KEY)")
    sim.remove_server("node3", purge=True)
    assert [s["name"] for s in sim.servers()] == ["node1", "node2"]
    assert not list(sim.state_dir.glob("node3.db*"))


def test_faults_fail_once_hold_session_server_down_and_application_load(sim):
    seed_pair(sim)
    sim.fail_once("node1", r"ALTER\s+REPLICATION\s+REP1\s+FLUSH", "61075")
    with pytest.raises(dbapi.Error) as info:
        run(sim, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    assert info.value.code == "61075"
    run(sim, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 5")  # only once

    held = sim.hold_session("node1", client_info="stuck-batch-job")
    rows = query(sim, "node1", "SELECT CLIENT_APP_INFO FROM V$SESSION WHERE ID <> SESSION_ID()")
    assert rows == [("stuck-batch-job",)]
    sim.release_session(held)
    assert query(sim, "node1", "SELECT COUNT(*) FROM V$SESSION WHERE ID <> SESSION_ID()") == [(0,)]

    sim.load_start("node1", table="SYS.T1", sessions=2)
    assert wait_until(lambda: sim.load_status()[0]["committed"] >= 20)
    assert query(sim, "node1", "SELECT COUNT(*) FROM V$SESSION WHERE CLIENT_APP_INFO = 'app-load'")[0][0] == 2
    sim.load_stop("node1")
    keys = sim.load_status(with_keys=True)[0]["committed_keys"]
    run(sim, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 10")
    for node in ("node1", "node2"):
        present = {r[0] for r in query(sim, node, "SELECT c1 FROM t1")}
        assert set(keys) <= present  # every committed row is on both servers

    sim.server_down("node2")
    with pytest.raises(dbapi.Error) as down:
        sim.connect("node2")
    assert down.value.code == "50032"
    assert wait_until(lambda: query(sim, "node1", "SELECT STATUS FROM V$REPSENDER") == [(2,)])
    sim.server_up("node2")
    assert wait_until(lambda: query(sim, "node1", "SELECT STATUS FROM V$REPSENDER") == [(1,)])


def test_a_server_can_be_made_to_go_down_on_a_chosen_statement(sim):
    seed_pair(sim)
    sim.fail_once("node2", r"DROP\s+TABLE", "DOWN")
    with pytest.raises(dbapi.Error) as info:
        run(sim, "node2", "DROP TABLE t9")
    assert info.value.code in ("51043", "50032")
    assert wait_until(lambda: not sim.server("node2")["up"])
    sim.server_up("node2")
    assert query(sim, "node2", "SELECT COUNT(*) FROM t1") == [(0,)]
