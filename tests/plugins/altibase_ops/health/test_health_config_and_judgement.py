"""The health job's pure parts: which pairs (``health/config.py``) and the judging rules
(``health/judgement.py``); tests/dags/ runs the DAG against the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from altibase_ops.health.config import InvalidPairsError, targets
from altibase_ops.health.judgement import HealthReading, Thresholds, find_problems


def pair(name: str, first: str, second: str, roles: tuple[str, str] = ("active", "standby")) -> dict[str, Any]:
    return {"name": name, "replication_name": "REP1",
            "servers": [{"name": first, "conn_id": f"altibase_{first}", "role": roles[0]},
                        {"name": second, "conn_id": f"altibase_{second}", "role": roles[1]}]}


@pytest.mark.parametrize("pairs, message", [
    ([], "at least one pair"),
    ([pair("p", "n1", "n2", ("active", "active2"))], "neither active/standby nor active1/active2"),
    ([pair("p", "n1", "n1")], "different names"),
    ([{**pair("p", "n1", "n2"), "replication_name": "REP1; DROP"}], r"pairs\[0\].replication_name"),
    ([pair("p", "n1", "n2"), pair("p", "n1", "n3")], "listed twice"),
    ([{**pair("p", "n1", "n2"), "servers": [{"name": "n1", "conn_id": "c 1", "role": "active"}] * 2}],
     r"servers\[0\]"),
])
def test_invalid_pairs_are_refused_with_the_entry_named(pairs, message):
    with pytest.raises(InvalidPairsError, match=message):
        targets(pairs)


def test_targets_know_which_servers_must_send():
    by_label = {t["label"]: t for t in targets([pair("as", "n1", "n2"),
                                                pair("aa", "n3", "n4", ("active1", "active2"))])}
    assert {label: t["expects_sender"] for label, t in by_label.items()} == {
        "as/n1": True, "as/n2": False, "aa/n3": True, "aa/n4": True}
    assert by_label["as/n2"]["peer"] == "n1" and by_label["aa/n3"]["topology"] == "active_active"


# ----------------------------------------------------------------------------------- judging
TARGET = targets([pair("p1", "n1", "n2")])[0]
HEALTHY = dict(reachable=True, admin_mode=0, replication_exists=True, replication_started=True, sender_status=1,
               rep_gap=0, rep_sn=10, receivers=[], sql_apply_enable=0, sql_apply_table_count=0, sessions=3)


@pytest.mark.parametrize("change, expected", [
    ({}, []),
    ({"rep_gap": 101, "rep_sn": 900}, ["REP_GAP=101 exceeds max_rep_gap=100 (log not yet acknowledged by n2; "
                                       "the sender is at REP_SN 900"]),
    ({"rep_gap": 100}, []),
    ({"sender_status": None, "rep_gap": None, "replication_started": False}, ["sender of REP1 is not running"]),
    ({"sender_status": 2}, ["STATUS=2 (RETRY)"]),
    ({"sql_apply_enable": 1}, ["REPLICATION_SQL_APPLY_ENABLE=1"]),
    ({"sql_apply_table_count": 2}, ["SQL_APPLY_TABLE_COUNT=2"]),
    ({"replication_exists": False}, ["replication REP1 does not exist"]),
    ({"stalled_rep_sn": 42, "rep_gap": 1, "rep_sn": 42}, ["REP_SN stayed at 42 for 10s with REP_GAP=1"]),
])
def test_each_threshold_names_pair_server_and_value(change, expected):
    problems = find_problems(TARGET, HealthReading(**{**HEALTHY, **change}), Thresholds(max_rep_gap=100, stall_check_seconds=10))
    assert len(problems) == len(expected)
    for problem, text in zip(problems, expected, strict=True):
        assert problem.startswith("pair p1, server n1 (active, altibase_n1): ")
        assert text in problem


def test_a_standby_without_a_sender_is_healthy():
    standby = targets([pair("p1", "n1", "n2")])[1]
    assert find_problems(standby, HealthReading(**{**HEALTHY, "sender_status": None, "rep_gap": None}), Thresholds(100, 10)) == []
