"""The "Altibase" page's view of the fleet (``fleet_page/read.py``), read from simulator pairs: each
server's role, reachability, admin mode, senders and receivers with the gap, SQL apply mode; the
pair's lock holder and change history with links to their runs; a server that is down or does not
answer shows as such within the deadline. The page's HTML says the same. The app behind its login:
``test_fleet_page_app.py``."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from altibase_ops.ddl.records import take_lock
from altibase_ops.fleet_page.read import read_fleet
from altibase_ops.fleet_page.render import render_page
from altibase_ops.maintenance.history import record_change
from tests.plugins.altibase_ops.ddl.test_restore_matrix import request_for, seed_pair_with_connections

log = logging.getLogger("fleet-page")
PAIR = {"name": "pair1", "replication_name": "REP1",
        "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                    {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}]}


@pytest.fixture
def pair(sim, monkeypatch):
    seed_pair_with_connections(sim, monkeypatch, "active_standby")
    return sim


def by_name(view: dict, pair: str = "pair1") -> dict:
    found = next(p for p in view["pairs"] if p["name"] == pair)
    return {**found, "by_server": {s["name"]: s for s in found["servers"]}}


def test_the_page_shows_each_servers_role_admin_mode_sender_gap_receivers_and_sql_apply(pair):
    view = by_name(read_fleet([PAIR], airflow_root="/base"))
    node1, node2 = view["by_server"]["node1"], view["by_server"]["node2"]
    assert (node1["role"], node2["role"]) == ("active", "standby")
    assert node1["reachable"] and node2["reachable"]
    assert node1["admin_mode"] == 0 and node2["admin_mode"] == 0
    assert node1["sender"]["status_name"] == "RUN" and node1["sender"]["gap"] == 0
    assert node2["sender"] is None  # Active-Standby: the standby does not send
    assert [r["sql_apply_table_count"] for r in node2["receivers"]] == [0]  # node1's sender is connected
    assert node1["receivers"] == []
    assert (node1["sql_apply_enable"], node2["sql_apply_table_count"]) == (0, 0)
    assert view["lock"]["state"] == "free" and view["history"] == []
    json.dumps(view)  # what /altibase/api/pairs returns is JSON as it stands


def test_the_page_names_the_lock_holder_with_a_link_to_its_run(pair):
    request = request_for(pair, "active_standby", "can_stop")
    run_id = "manual__2026-12-07T10:00:00+00:00"
    take_lock(request, run_id, "altibase_replicated_ddl on worker-1", log)
    lock = by_name(read_fleet([PAIR], airflow_root="/base"))["lock"]
    assert lock["state"] == "held" and lock["held_on"] == ["node1", "node2"]
    [holder] = lock["holders"]
    assert holder["run_id"] == run_id and holder["dag_id"] == "altibase_replicated_ddl"
    assert holder["run_url"] == "/base/dags/altibase_replicated_ddl/runs/manual__2026-12-07T10%3A00%3A00%2B00%3A00"
    assert holder["expires_at"] is not None


def test_the_page_lists_the_pairs_change_history_newest_first_with_links_to_the_runs(pair):
    request = request_for(pair, "active_standby", "can_stop")
    started = time.time()
    record_change(request.servers, "REP1", "0001-add-c3", "abc", "applied", "run_a", "altibase_replicated_ddl",
                  started - 60, log)
    record_change(request.servers[:1], "REP1", "0002-index", "def", "failed", "run_b", "altibase_maintenance",
                  started, log, reason="refused by preflight")
    history = by_name(read_fleet([PAIR]))["history"]
    assert [(h["change_id"], h["outcome"], h["run_id"]) for h in history] == [
        ("0002-index", "failed", "run_b"), ("0001-add-c3", "applied", "run_a")]
    assert history[0]["run_url"] == "/dags/altibase_maintenance/runs/run_b"
    assert history[0]["reason"] == "refused by preflight" and history[1]["ended_at"].endswith("Z")


def test_a_server_that_is_down_shows_unreachable_and_the_other_is_still_read(pair):
    pair.server_down("node2")
    view = by_name(read_fleet([PAIR]))
    node1, node2 = view["by_server"]["node1"], view["by_server"]["node2"]
    assert node1["reachable"] and node1["sender"] is not None
    assert not node2["reachable"] and node2["answered"] and "50032" in node2["error"]
    assert view["lock"]["state"] == "free" and list(view["lock"]["not_read"]) == ["node2"]
    assert "unreachable" in render_page(read_fleet([PAIR]))


@pytest.fixture
def silent_server(monkeypatch):
    """A listener that accepts connections and never answers (a hung server), as Connection altibase_silent."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        monkeypatch.setenv("AIRFLOW_CONN_ALTIBASE_SILENT", json.dumps({
            "conn_type": "altibase", "host": "127.0.0.1", "port": port, "login": "SYS", "password": "manager",
            "extra": {"backend": "simulator"}}))
        yield "altibase_silent"


def test_a_server_that_does_not_answer_shows_as_such_within_the_deadline(pair, silent_server):
    hung = {"name": "pair2", "replication_name": "REP1",
            "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                        {"name": "silent", "conn_id": silent_server, "role": "standby"}]}
    began = time.monotonic()
    view = read_fleet([PAIR, hung], deadline=1.5)
    took = time.monotonic() - began
    assert took < 3, f"the page waited {took:.1f} s for a server that does not answer"
    silent = by_name(view, "pair2")["by_server"]["silent"]
    assert not silent["reachable"] and not silent["answered"] and "no answer within 1.5 s" in silent["error"]
    assert by_name(view, "pair1")["by_server"]["node2"]["reachable"]  # the rest of the fleet is read
    # asked again while that read still hangs: not read a second time, the hanging read is named
    again = by_name(read_fleet([hung], deadline=0.5), "pair2")["by_server"]["silent"]
    assert not again["answered"] and "has not ended" in again["error"]


def test_the_html_shows_servers_lock_holder_and_history_with_links_escaped(pair):
    request = request_for(pair, "active_standby", "can_stop")
    take_lock(request, "run<1>", "altibase_replicated_ddl on w", log)
    record_change(request.servers, "REP1", "0001-add-c3", "abc", "applied", "run_a", "altibase_replicated_ddl",
                  time.time(), log)
    html = render_page(read_fleet([PAIR]))
    assert '<section id="pair-pair1">' in html and "reachable" in html
    assert 'href="/dags/altibase_replicated_ddl/runs/run%3C1%3E" target="_top"' in html
    assert "run&lt;1&gt;" in html and "run<1>" not in html
    assert 'href="/dags/altibase_replicated_ddl/runs/run_a"' in html and "0001-add-c3" in html


def test_a_server_in_admin_mode_shows_it_and_the_lock_is_read_from_its_peer(pair):
    request = request_for(pair, "active_standby", "can_stop")
    take_lock(request, "run_x", "altibase_replicated_ddl on w", log)
    with pair.connect("node2", sysdba=True) as conn:
        conn.cursor().execute("ALTER SYSTEM SET ADMIN_MODE = 1")
    view = by_name(read_fleet([PAIR]))
    node2 = view["by_server"]["node2"]
    assert node2["reachable"] and node2["admin_mode"] == 1 and "4106E" in node2["error"]
    assert view["lock"]["state"] == "held" and view["lock"]["held_on"] == ["node1"]
    assert "ADMIN_MODE=1" in view["lock"]["not_read"]["node2"]
    assert '<span class="bad">ADMIN_MODE=1</span>' in render_page(read_fleet([PAIR]))


def test_an_unusable_fleet_is_said_on_the_page_instead_of_failing_it(monkeypatch):
    monkeypatch.setenv("ALTIBASE_PAIRS", "[{not json")
    view = read_fleet()
    assert view["pairs"] == [] and "ALTIBASE_PAIRS is not JSON" in view["error"]
    assert "the fleet is unusable: ALTIBASE_PAIRS is not JSON" in render_page(view)
