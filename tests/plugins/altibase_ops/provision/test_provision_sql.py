"""P6/P7 SQL rendered from include/sql/provision: the seed's statements, in the seed's order, per node."""

from __future__ import annotations

import re

import pytest

from altibase_ops.provision.spec import ProvisionSpec
from altibase_ops.provision.sql import (
    render_proof_sql,
    render_replication_state_sql,
    render_setup_sql,
    render_teardown_sql,
)
from altibase_ops.provision.tables import TableSpec

# The seed's statements on each pod (000_…, section "이중화 객체 생성 및 이중화 동작 확인").
SEED_NODE1 = [
    "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER);",
    "CREATE REPLICATION rep1 WITH 'altibase-svc-node2', 20301 FROM sys.t1 TO sys.t1;",
    "ALTER REPLICATION rep1 START;",
]
SEED_NODE2 = [
    "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER);",
    "CREATE REPLICATION rep1 WITH 'altibase-svc-node1', 20301 FROM sys.t1 TO sys.t1;",
    "ALTER REPLICATION rep1 START;",
]


def same_sql(rendered: str, seed: str) -> bool:
    """Equal up to the case of unquoted identifiers (Altibase upper-cases them; quoted text is kept)."""

    def normalise(sql: str) -> str:
        parts = re.split(r"('[^']*')", sql)
        return "".join(part if part.startswith("'") else part.upper() for part in parts)

    return normalise(rendered) == normalise(seed)


def test_default_spec_renders_the_seed_statements_in_the_seed_order():
    statements = render_setup_sql(ProvisionSpec())
    assert [(s.step, s.node) for s in statements] == [
        ("P6.create_table", "node1"),
        ("P6.create_table", "node2"),
        ("P6.create_replication", "node1"),
        ("P6.create_replication", "node2"),
        ("P6.start_replication", "node1"),
        ("P6.start_replication", "node2"),
    ]
    for node, seed in (("node1", SEED_NODE1), ("node2", SEED_NODE2)):
        rendered = [s.sql for s in statements if s.node == node]
        assert all(same_sql(r, e) for r, e in zip(rendered, seed, strict=True)), rendered
    assert {s.node: s.server for s in statements} == {
        "node1": "altibase-svc-node1",
        "node2": "altibase-svc-node2",
    }


def test_replication_points_at_the_other_nodes_service_in_every_workload():
    for workload in ("deployment", "statefulset", "pod"):
        spec = ProvisionSpec(
            name="orders", workload=workload, replication_port=21301, replication_name="rep_orders"
        )
        creates = {s.node: s.sql for s in render_setup_sql(spec) if s.step == "P6.create_replication"}
        assert creates == {
            "node1": "CREATE REPLICATION REP_ORDERS WITH 'orders-svc-node2', 21301 FROM SYS.T1 TO SYS.T1;",
            "node2": "CREATE REPLICATION REP_ORDERS WITH 'orders-svc-node1', 21301 FROM SYS.T1 TO SYS.T1;",
        }


def test_several_tables_and_a_composite_key():
    spec = ProvisionSpec(
        tables=(
            "orders (id BIGINT, region CHAR(2) NOT NULL, note VARCHAR(100), PRIMARY KEY (id, region))",
            "t2 (c1 NUMERIC(10,2) PRIMARY KEY, d DATE)",
        )
    )
    statements = render_setup_sql(spec)
    node1 = [s.sql for s in statements if s.node == "node1"]
    assert node1 == [
        "CREATE TABLE ORDERS (ID BIGINT NOT NULL, REGION CHAR(2) NOT NULL, NOTE VARCHAR(100), PRIMARY KEY (ID, REGION));",
        "CREATE TABLE T2 (C1 NUMERIC(10,2) PRIMARY KEY, D DATE);",
        "CREATE REPLICATION REP1 WITH 'altibase-svc-node2', 20301 FROM SYS.ORDERS TO SYS.ORDERS, FROM SYS.T2 TO SYS.T2;",
        "ALTER REPLICATION REP1 START;",
    ]


def test_single_server_gets_tables_only():
    statements = render_setup_sql(ProvisionSpec(topology="single"))
    assert [(s.step, s.node) for s in statements] == [("P6.create_table", "node1")]
    assert render_teardown_sql(ProvisionSpec(topology="single")) == ()


def test_proof_rows_match_the_seed():
    node1, node2 = render_proof_sql(ProvisionSpec())
    assert (node1.node, node1.server, node1.key) == ("node1", "altibase-svc-node1", 1)
    assert same_sql(node1.insert, "INSERT INTO t1 VALUES (1, 1);")
    assert same_sql(node2.insert, "INSERT INTO t1 VALUES (2, 2);")
    assert same_sql(node1.select, "SELECT * FROM t1 WHERE c1 = 1;")
    assert same_sql(node2.delete, "DELETE FROM t1 WHERE c1 = 2;")


def test_proof_rows_fill_character_and_other_columns():
    spec = ProvisionSpec(tables=("orders (id BIGINT, region CHAR(2), d DATE, PRIMARY KEY (id, region))",))
    node1, _ = render_proof_sql(spec)
    assert node1.insert == "INSERT INTO ORDERS VALUES (1, '1', NULL);"
    assert node1.select == "SELECT * FROM ORDERS WHERE ID = 1 AND REGION = '1';"
    assert node1.delete == "DELETE FROM ORDERS WHERE ID = 1 AND REGION = '1';"


def test_teardown_and_state_query():
    statements = render_teardown_sql(ProvisionSpec())
    assert [(s.step, s.node, s.sql) for s in statements] == [
        ("teardown.stop_replication", "node1", "ALTER REPLICATION REP1 STOP;"),
        ("teardown.stop_replication", "node2", "ALTER REPLICATION REP1 STOP;"),
        ("teardown.drop_replication", "node1", "DROP REPLICATION REP1;"),
        ("teardown.drop_replication", "node2", "DROP REPLICATION REP1;"),
    ]
    assert render_replication_state_sql(ProvisionSpec()) == (
        "SELECT REPLICATION_NAME, IS_STARTED FROM SYSTEM_.SYS_REPLICATIONS_ WHERE REPLICATION_NAME = 'REP1';"
    )


@pytest.mark.parametrize(
    "table",
    [
        "t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER); DROP TABLE t9; --",
        't1 (c1 INTEGER PRIMARY KEY, "c2" INTEGER)',
        "t1 (c1 INTEGER PRIMARY KEY, c2 VARCHAR(10) DEFAULT 'x')",
        "t1' (c1 INTEGER PRIMARY KEY)",
    ],
)
def test_injection_attempts_never_reach_the_sql(table):
    with pytest.raises(ValueError):
        ProvisionSpec(tables=(table,))


def test_the_templates_refuse_unvalidated_identifiers_too():
    """Even a TableSpec built by hand around the validation cannot put a bad name into SQL."""
    spec = ProvisionSpec()
    object.__setattr__(spec, "tables", (TableSpec("t1; DROP", spec.tables[0].columns, ("c1",)),))
    with pytest.raises(ValueError, match="'t1; DROP' is not a valid identifier"):
        render_setup_sql(spec)
