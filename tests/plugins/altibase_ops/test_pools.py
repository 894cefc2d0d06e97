"""Pool naming: one single-slot pool per server that also counts deferred tasks."""

from __future__ import annotations

import pytest

from altibase_ops.pools import pool_definitions, server_pool


def test_server_pool_names():
    assert server_pool("node1") == "altibase_node1"
    assert server_pool("altibase-svc-Node2") == "altibase_altibase_svc_node2"


@pytest.mark.parametrize("bad", ["", "-node", "node 1", "node;1", "n" * 64, "node1\n"])
def test_server_pool_refuses_bad_names(bad):
    with pytest.raises(ValueError):
        server_pool(bad)


def test_pool_definitions_are_single_slot_and_count_deferred_tasks():
    pools = pool_definitions(["node1", "node2"])
    assert set(pools) == {"altibase_node1", "altibase_node2"}
    assert all(p["slots"] == 1 and p["include_deferred"] is True for p in pools.values())
