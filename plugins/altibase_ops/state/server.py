"""Read what the DAGs need to know about one server, on one short SYSDBA session.

Preflight, the DDL step's "already applied?" check, the post-checks and the restore path all read
state through here, so they agree on what they see. SYSDBA: after ADMIN_MODE = 1 nothing else can
log in; one session, closed at the end: the server allows a single SYSDBA session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowException

from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.sql.templates import render_sql
from altibase_ops.state.catalog import KEY_CONSTRAINT_TYPES, IndexKey, TableState


class ServerRestartedError(AirflowException):
    """A server restarted since the run read it first: what the run set with ALTER SYSTEM is gone."""


def read_startup_time(session: Any) -> int:
    """V$INSTANCE.STARTUP_TIME_SEC on an open session: the server process's start, epoch seconds."""
    return int(session.dicts(render_sql("checks/read_instance.sql"))[0]["STARTUP_TIME_SEC"])


def restart_message(server: str, expected: int, actual: int, admin_mode: int | None = None) -> str:
    """What a restart in the middle of a run means and what to do, for the task log and restore."""
    def when(seconds: int) -> str:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    now = "" if admin_mode is None else f" (ADMIN_MODE is {admin_mode} now)"
    return (f"{server} restarted at {when(actual)} (V$INSTANCE.STARTUP_TIME_SEC {actual}; it was {expected}, "
            f"started {when(expected)}, when this run's preflight read it). A restarted server comes back with "
            f"its configuration file's properties: the ADMIN_MODE and REPLICATION_SQL_APPLY_ENABLE this run set "
            f"are gone{now}, so the application may have logged in and written while the procedure expected it "
            f"locked out, and replication started again wherever it was started. The run stops here rather than "
            f"go on with a server in a state it did not set. Next: find what the application wrote on {server} "
            f"since the restart (tables out of replication do not ship those rows to the peer), then trigger a "
            f"new run with recover=true: restore puts admin mode, the replication items and the senders right, "
            f"and preflight reads the new start time.")


# SYS_COLUMNS_.DATA_TYPE of the exact numeric types (NUMERIC, INTEGER, SMALLINT, BIGINT): their sums
# are exact, so equal data sums the same on both servers (FLOAT/DOUBLE sums depend on the order).
EXACT_NUMERIC_TYPES = frozenset({2, 4, 5, -5})


@dataclass
class ServerState:
    conn_id: str
    startup_time: int | None = None  # V$INSTANCE.STARTUP_TIME_SEC: changes on every restart
    db_signature: str | None = None  # V$DATABASE.DB_SIGNATURE: made when the database was created
    properties: dict[str, int] = field(default_factory=dict)
    replication_exists: bool = False
    is_started: bool = False  # SYS_REPLICATIONS_.IS_STARTED
    sender_running: bool = False  # a V$REPSENDER row
    sender_status: int | None = None  # its STATUS (0 STOP, 1 RUN, 2 RETRY), None without a row
    receiver_running: bool = False  # a V$REPRECEIVER row (the peer's sender is connected)
    receivers: list[dict[str, Any]] = field(default_factory=list)  # {PEER_IP, SQL_APPLY_TABLE_COUNT} per row
    sql_apply_table_count: int = 0
    gap: int | None = None  # REP_GAP, None without a running sender
    rep_sn: int | None = None  # REP_SN, the sender's position in the log, likewise
    item_count: int = 0
    items: set[str] = field(default_factory=set)  # USER.TABLE in the replication
    tables: dict[str, TableState] = field(default_factory=dict)
    index_tables: dict[str, str] = field(default_factory=dict)  # USER.INDEX -> USER.TABLE
    row_counts: dict[str, int] = field(default_factory=dict)
    # per table: ROW_COUNT and the sum of each exact-numeric column (checks/table_fingerprint.sql)
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    other_sessions: int = 0
    ddl_records: dict[int, str] = field(default_factory=dict)  # this request's statements: BEGAN | DONE | FAILED
    ddl_record_runs: dict[int, tuple[str, int]] = field(default_factory=dict)  # the same: (run id, epoch seconds)
    lock: Any = None  # the pair's lock row on this server (ddl.records.Lock), when one is held

    def summary(self) -> dict[str, Any]:
        return {"started_at": self.startup_time, "admin_mode": self.properties.get("ADMIN_MODE"),
                "replication_started": self.is_started,
                "sender_running": self.sender_running, "receiver_running": self.receiver_running,
                "gap": self.gap, "sql_apply_enable": self.properties.get("REPLICATION_SQL_APPLY_ENABLE"),
                "sql_apply_table_count": self.sql_apply_table_count, "tables_in_replication": sorted(self.items),
                "row_counts": self.row_counts}


def read_state(conn_id: str, replication_name: str, tables: list[str], *, count_rows: bool = False,
               fingerprint: bool = True,
               client_info: str = "airflow:altibase_ops", sysdba: bool = True, definitions: bool = True) -> ServerState:
    """Everything about ``replication_name`` and ``tables`` on one server.

    ``sysdba=False`` is for observers (the health DAG): they must not take the server's single SYSDBA
    session from a maintenance step, and accept that the login is refused while ADMIN_MODE = 1.
    ``count_rows``: each table's fingerprint (its row count included), or with ``fingerprint=False`` its
    row count alone (no sums, no digests: the cheapest full read).
    ``definitions=False`` leaves out the tables' columns, indexes and keys (a step that does not
    change a definition reads only the replication's state: half the queries, inside admin mode).
    """
    state = ServerState(conn_id)
    hook = AltibaseHook(altibase_conn_id=conn_id, sysdba=sysdba, client_info=client_info)
    with hook.session() as session:
        rows = session.dicts
        state.startup_time = read_startup_time(session)
        state.db_signature = str(rows(render_sql("checks/read_database.sql"))[0]["DB_SIGNATURE"]).strip()
        state.properties = {r["NAME"]: int(r["VALUE1"]) for r in rows(render_sql("checks/read_properties.sql"))}
        rep = rows(render_sql("checks/read_replication.sql"), (replication_name,))
        if rep:
            state.replication_exists = True
            state.is_started = int(rep[0]["IS_STARTED"]) == 1
            state.item_count = int(rep[0]["ITEM_COUNT"])
            state.items = {f"{r['LOCAL_USER_NAME']}.{r['LOCAL_TABLE_NAME']}"
                           for r in rows(render_sql("checks/read_replication_items.sql"), (replication_name,))}
        senders = rows(render_sql("checks/read_senders.sql"), (replication_name,))
        state.sender_running = bool(senders)
        state.sender_status = int(senders[0]["STATUS"]) if senders else None
        receivers = rows(render_sql("checks/read_receivers.sql"), (replication_name,))
        state.receiver_running = bool(receivers)
        state.receivers = [{"PEER_IP": str(r["PEER_IP"]), "SQL_APPLY_TABLE_COUNT": int(r["SQL_APPLY_TABLE_COUNT"])}
                           for r in receivers]
        state.sql_apply_table_count = sum(int(r["SQL_APPLY_TABLE_COUNT"]) for r in receivers)
        gap = rows(render_sql("checks/read_replication_gap.sql", replication_name=replication_name))
        state.gap = int(gap[0]["REP_GAP"]) if gap else None
        state.rep_sn = int(gap[0]["REP_SN"]) if gap else None
        if not definitions:
            tables = []
        indexes = rows(render_sql("checks/read_table_indexes.sql")) if definitions else []
        state.index_tables = {f"{r['USER_NAME']}.{r['INDEX_NAME']}": f"{r['TABLE_USER']}.{r['TABLE_NAME']}"
                              for r in indexes}
        for table in tables:
            user, name = table.split(".")
            columns = rows(render_sql("checks/read_table_columns.sql"), (user, name))
            if not columns:
                continue
            state.tables[table] = TableState(
                {c["COLUMN_NAME"]: {k: c[k] for k in ("DATA_TYPE", "PRECISION", "SCALE", "IS_NULLABLE",
                                                      "COLUMN_ORDER")} for c in columns},
                {i for i, t in state.index_tables.items() if t == table},
                _index_keys(rows, user, name))
            if count_rows:
                summed = [name for name, c in state.tables[table].columns.items()
                          if int(c["DATA_TYPE"]) in EXACT_NUMERIC_TYPES] if fingerprint else []
                weighed = weighed_sums(state.tables[table]) if fingerprint else {"key_columns": [], "weighed": []}
                row = rows(render_sql("checks/table_fingerprint.sql", table=table, columns=summed, **weighed))[0]
                state.fingerprints[table] = {k: (None if v is None else str(v)) for k, v in row.items()}
                state.row_counts[table] = int(row["ROW_COUNT"])
        state.other_sessions = len(rows(render_sql("checks/list_sessions.sql")))
    return state


# Column types whose values the key-weighted sums read exactly: integers (NUMERIC of scale 0 too) by their
# residue, characters by their digest's. DATE and floating types are left out (docs/altibase-rules.md).
INTEGER_TYPES = frozenset({4, 5, -5})
TEXT_TYPES = frozenset({1, 12})


def _residue_kind(column: dict[str, Any]) -> str | None:
    data_type = int(column["DATA_TYPE"])
    if data_type in INTEGER_TYPES or (data_type == 2 and not int(column.get("SCALE") or 0)):
        return "number"
    return "text" if data_type in TEXT_TYPES else None


def weighed_sums(table: TableState) -> dict[str, list[dict[str, Any]]]:
    """The key-weighted sums of ``checks/table_fingerprint.sql``: ``key_columns`` (the primary key's columns, its
    weight) and ``weighed`` (every column read exactly, with its alias ``W_<column>``); none without a
    primary key whose columns can all be read, or for a column whose alias would be too long."""
    keys = [{"column": c, "text": _residue_kind(table.columns[c]) == "text"} for c in table.primary_key
            if c in table.columns]
    if not keys or len(keys) != len(table.primary_key) or any(_residue_kind(table.columns[k["column"]]) is None
                                                             for k in keys):
        return {"key_columns": [], "weighed": []}
    weighed = [{"column": name, "text": kind == "text", "alias": f"W_{name}"}
               for name, column in table.columns.items()
               if (kind := _residue_kind(column)) and len(name) <= 38 and f"W_{name}" not in table.columns]
    return {"key_columns": keys, "weighed": weighed}


def _index_keys(rows: Any, user: str, table: str) -> dict[str, IndexKey]:
    """The table's indexes with their key columns and the key constraint each one serves."""
    constraints = {int(r["INDEX_ID"]): KEY_CONSTRAINT_TYPES[int(r["CONSTRAINT_TYPE"])]
                   for r in rows(render_sql("checks/read_table_key_constraints.sql"), (user, table))}
    keys: dict[int, tuple[str, bool, list[str]]] = {}
    for r in rows(render_sql("checks/read_table_index_keys.sql"), (user, table)):
        name = f"{r['USER_NAME']}.{r['INDEX_NAME']}"
        keys.setdefault(int(r["INDEX_ID"]), (name, str(r["IS_UNIQUE"]).strip() == "T", []))[2].append(
            r["COLUMN_NAME"])
    return {name: IndexKey(tuple(columns), unique, constraints.get(index_id))
            for index_id, (name, unique, columns) in keys.items()}
