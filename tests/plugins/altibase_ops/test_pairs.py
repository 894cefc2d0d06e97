"""The fleet: ``$ALTIBASE_PAIRS`` plus the pairs of the file ``$ALTIBASE_PAIRS_FILE``, read on every call."""

from __future__ import annotations

import json

import pytest

from altibase_ops.pairs import (
    DEFAULT_PAIRS,
    InvalidPairsError,
    add_to_fleet,
    pairs_from_env,
    remove_from_fleet,
)


def pair(name: str, prefix: str) -> dict:
    return {"name": name, "replication_name": "REP1",
            "servers": [{"name": "node1", "conn_id": f"{prefix}_node1", "role": "active"},
                        {"name": "node2", "conn_id": f"{prefix}_node2", "role": "standby"}]}


def test_a_pair_added_to_the_fleet_file_is_in_the_fleet_at_the_next_read_beside_ALTIBASE_PAIRS(tmp_path):
    environ = {"ALTIBASE_PAIRS": json.dumps([pair("pair1", "altibase")]),
               "ALTIBASE_PAIRS_FILE": str(tmp_path / "pairs.json")}
    assert [p["name"] for p in pairs_from_env(environ)] == ["pair1"]  # no file yet: the environment's pairs

    said = add_to_fleet(pair("altibase", "altibase_svc"), environ)
    assert "added to the fleet" in said
    assert [p["name"] for p in pairs_from_env(environ)] == ["pair1", "altibase"]  # the same process, no restart
    # provisioning the same instance again replaces its entry, never lists it twice
    add_to_fleet({**pair("altibase", "altibase_svc"), "service_control": {"mode": "simulator"}}, environ)
    fleet = pairs_from_env(environ)
    assert [p["name"] for p in fleet] == ["pair1", "altibase"] and fleet[1]["service_control"]["mode"] == "simulator"
    # without ALTIBASE_PAIRS, the default pair and the file's
    assert [p["name"] for p in pairs_from_env({"ALTIBASE_PAIRS_FILE": environ["ALTIBASE_PAIRS_FILE"]})] == \
        [DEFAULT_PAIRS[0]["name"], "altibase"]
    # a teardown takes it out again
    assert "removed from the fleet" in remove_from_fleet("altibase", environ)
    assert [p["name"] for p in pairs_from_env(environ)] == ["pair1"]
    assert "is not in the fleet's file" in remove_from_fleet("altibase", environ)


def test_the_fleet_file_never_takes_a_name_ALTIBASE_PAIRS_gives_other_servers_and_a_bad_file_is_named(tmp_path):
    path = tmp_path / "pairs.json"
    environ = {"ALTIBASE_PAIRS": json.dumps([pair("pair1", "altibase")]), "ALTIBASE_PAIRS_FILE": str(path)}
    with pytest.raises(InvalidPairsError, match="'pair1' is already in ALTIBASE_PAIRS with other servers"):
        add_to_fleet(pair("pair1", "other"), environ)
    assert not path.exists()
    assert "in the fleet already" in add_to_fleet(pair("pair1", "altibase"), environ)
    assert "ALTIBASE_PAIRS_FILE is not set" in add_to_fleet(pair("altibase", "altibase_svc"), {})

    path.write_text("[{'name': 'x'}]")
    with pytest.raises(InvalidPairsError, match=r"ALTIBASE_PAIRS_FILE \(.*pairs.json\) is not JSON"):
        pairs_from_env(environ)
