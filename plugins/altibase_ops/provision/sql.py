"""The SQL of provisioning steps P6 (replication objects) and P7 (proof), per node.

Every statement is rendered from a template in ``include/sql/provision/`` with values taken only
from a validated ``ProvisionSpec``: identifiers passed its identifier check, ports and proof keys
are integers, the peer host is a Service name (a DNS label). Nothing from user input reaches the
SQL text unchecked.

Each statement carries the node it runs on and that node's Service name — the address the iSQL
runner connects to (``is -s <server> -port <service_port>``), in a cluster and in the simulator.
One statement per item, so a failure names exactly one step; iSQL does not stop a script on error.
"""

from __future__ import annotations

from dataclasses import dataclass

from altibase_ops.provision.manifests import peer_node, service_name
from altibase_ops.provision.spec import ProvisionSpec
from altibase_ops.provision.tables import ColumnSpec, TableSpec
from altibase_ops.sql.templates import render_sql


@dataclass(frozen=True)
class NodeStatement:
    """One SQL statement for one node. ``step`` maps it back to docs/procedures.md (P6, P7)."""

    step: str
    node: str
    server: str
    sql: str


@dataclass(frozen=True)
class ProofRow:
    """P7 for one direction: insert on ``node``, expect the row on every node, then delete it."""

    node: str
    server: str
    key: int
    insert: str
    select: str
    delete: str


def render_template(template: str, **params: object) -> str:
    """Render ``include/sql/provision/<template>`` through the shared identifier-checking environment."""
    return render_sql(f"provision/{template}", **params).strip()


def render_setup_sql(spec: ProvisionSpec) -> tuple[NodeStatement, ...]:
    """P6 in the seed's order: tables on every node, then CREATE REPLICATION on every node, then START.

    START comes last everywhere because its handshake needs the peer's replication object.
    A single server gets only its tables.
    """
    statements = [
        NodeStatement(
            "P6.create_table",
            node,
            service_name(spec, node),
            render_template("create_table.sql", table=table),
        )
        for node in spec.nodes
        for table in spec.tables
    ]
    if spec.topology != "pair":
        return tuple(statements)
    for node in spec.nodes:
        sql = render_template(
            "create_replication.sql",
            replication_name=spec.replication_name,
            peer_host=service_name(spec, peer_node(spec, node)),
            peer_port=spec.replication_port,
            tables=[f"SYS.{table.name}" for table in spec.tables],
        )
        statements.append(NodeStatement("P6.create_replication", node, service_name(spec, node), sql))
    for node in spec.senders:  # Active-Standby: the standby receives only
        sql = render_template("start_replication.sql", replication_name=spec.replication_name)
        statements.append(NodeStatement("P6.start_replication", node, service_name(spec, node), sql))
    return tuple(statements)


def render_replication_state_sql(spec: ProvisionSpec) -> str:
    """The query that tells whether the replication object exists on a node and is started."""
    return render_template("select_replication.sql", replication_name=spec.replication_name)


def render_teardown_sql(spec: ProvisionSpec) -> tuple[NodeStatement, ...]:
    """STOP on every node, then DROP on every node. Empty for a single server."""
    if spec.topology != "pair":
        return ()
    stop = render_template("stop_replication.sql", replication_name=spec.replication_name)
    drop = render_template("drop_replication.sql", replication_name=spec.replication_name)
    return tuple(
        NodeStatement(step, node, service_name(spec, node), sql)
        for step, sql in (("teardown.stop_replication", stop), ("teardown.drop_replication", drop))
        for node in spec.nodes
    )


def render_proof_sql(spec: ProvisionSpec) -> tuple[ProofRow, ...]:
    """P7: one row per sending node in the first table, keyed 1, 2… as in the seed (``INSERT … (1, 1)``):
    Active-Standby proves the active → standby direction only (the standby does not send).

    Every column of the row gets the key: numbers as integers, character columns as the key's
    digits in quotes, other nullable columns NULL (``ProvisionSpec`` rejects tables where that
    cannot work).
    """
    table = spec.tables[0]
    rows = []
    for index, node in enumerate(spec.nodes, start=1):
        if node not in spec.senders:
            continue
        key = [(column, _literal(_column(table, column), index)) for column in table.primary_key]
        values = [_literal(column, index) for column in table.columns]
        rows.append(
            ProofRow(
                node=node,
                server=service_name(spec, node),
                key=index,
                insert=render_template("insert_proof_row.sql", table=table.name, row=values),
                select=render_template("select_proof_row.sql", table=table.name, key=key),
                delete=render_template("delete_proof_row.sql", table=table.name, key=key),
            )
        )
    return tuple(rows)


def _column(table: TableSpec, name: str) -> ColumnSpec:
    return next(column for column in table.columns if column.name.upper() == name.upper())


def _literal(column: ColumnSpec, key: int) -> str:
    if column.is_numeric:
        return str(int(key))
    if column.is_character:
        return f"'{int(key)}'"
    return "NULL"
