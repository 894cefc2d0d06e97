"""System views: V$ performance views and the SYSTEM_ data dictionary, built on demand per query."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from altibase_sim import sqlparse as sp
from altibase_sim.server import CONSTRAINT_INDEX_PREFIX, TYPE_CODES, Server, Session


@dataclass(frozen=True)
class View:
    name: str
    columns: tuple[str, ...]
    rows: Callable[[Server, Session], list[dict]]
    since: dict[str, str] | None = None  # column -> the first server version that has it

    def columns_of(self, server: Server) -> tuple[str, ...]:
        """The columns as the server's version has them (a query naming a missing one gets ERR-31058)."""
        if not self.since:
            return self.columns
        return tuple(c for c in self.columns if c not in self.since or _version(server.version) >= _version(self.since[c]))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _instance(server: Server, session: Session) -> list[dict]:
    import time

    return [{"STARTUP_PHASE": "SERVICE", "STARTUP_TIME_SEC": server.startup_time,
             "WORKING_TIME_SEC": int(time.time()) - server.startup_time}]


def _sessions(server: Server, session: Session) -> list[dict]:
    return [{"ID": s.id, "TRANS_ID": 0, "TASK_STATE": "SERVICING", "COMM_NAME": s.comm_name,
             "DB_USERNAME": s.user, "DB_USERID": 1 if s.user == "SYS" else 2, "SYSDBA_FLAG": int(s.sysdba),
             "AUTOCOMMIT_FLAG": int(s.autocommit), "SESSION_STATE": "SERVICE", "LOGIN_TIME": s.login_time,
             "CLIENT_APP_INFO": s.client_info} for s in sorted(server.sessions.values(), key=lambda s: s.id)]


def _properties(server: Server, session: Session) -> list[dict]:
    return [{"NAME": name, "STOREDCOUNT": 1, "ATTR": 0, "MIN": "0", "MAX": "", "VALUE1": str(value),
             **{f"VALUE{i}": None for i in range(2, 9)}} for name, value in sorted(server.props.items())]


def _replications(server: Server, session: Session) -> list[dict]:
    rows = server.db.execute("SELECT name, mode, hosts, is_started, xsn FROM __repl ORDER BY name").fetchall()
    out = []
    for name, mode, hosts, started, xsn in rows:
        items = server.db.execute("SELECT COUNT(*) FROM __repl_items WHERE rep=?", (name,)).fetchone()[0]
        out.append({"REPLICATION_NAME": name, "LAST_USED_HOST_NO": 1, "HOST_COUNT": len(json.loads(hosts)),
                    "IS_STARTED": started, "XSN": xsn, "ITEM_COUNT": items, "CONFLICT_RESOLUTION": 0,
                    "REPL_MODE": 0 if mode == "LAZY" else 2, "ROLE": 0, "OPTIONS": 0})
    return out


def _repl_hosts(server: Server, session: Session) -> list[dict]:
    out = []
    for name, hosts in server.db.execute("SELECT name, hosts FROM __repl ORDER BY name").fetchall():
        for no, (host, port) in enumerate(json.loads(hosts), start=1):
            out.append({"HOST_NO": no, "REPLICATION_NAME": name, "HOST_IP": host, "PORT_NO": port,
                        "CONN_TYPE": "TCP"})
    return out


def _repl_items(server: Server, session: Session) -> list[dict]:
    rows = server.db.execute("SELECT i.rep, i.local_user, i.local_table, i.remote_user, i.remote_table, "
                             "t.table_id FROM __repl_items i LEFT JOIN __tables t "
                             "ON t.user = i.local_user AND t.name = i.local_table ORDER BY i.rep, i.local_table")
    return [{"REPLICATION_NAME": r[0], "TABLE_OID": r[5], "LOCAL_USER_NAME": r[1], "LOCAL_TABLE_NAME": r[2],
             "LOCAL_PARTITION_NAME": None, "REMOTE_USER_NAME": r[3], "REMOTE_TABLE_NAME": r[4],
             "REMOTE_PARTITION_NAME": None, "IS_PARTITION": "N", "REPLICATION_UNIT": "T"} for r in rows]


def _user_ids(server: Server) -> dict[str, int]:
    return dict(server.db.execute("SELECT name, user_id FROM __users"))


def _users(server: Server, session: Session) -> list[dict]:
    return [{"USER_ID": uid, "USER_NAME": name, "USER_TYPE": "U"} for name, uid in sorted(_user_ids(server).items())]


def _tables(server: Server, session: Session) -> list[dict]:
    ids = _user_ids(server)
    out = []
    for user, name, table_id, columns in server.db.execute(
            "SELECT user, name, table_id, columns FROM __tables ORDER BY table_id"):
        out.append({"USER_ID": ids.get(user), "TABLE_ID": table_id, "TABLE_OID": table_id,
                    "COLUMN_COUNT": len(json.loads(columns)), "TABLE_NAME": name, "TABLE_TYPE": "T",
                    "REPLICATION_COUNT": len(server.replications_of(user, name))})
    return out


def _columns(server: Server, session: Session) -> list[dict]:
    ids = _user_ids(server)
    out = []
    for user, table_id, columns in server.db.execute("SELECT user, table_id, columns FROM __tables ORDER BY table_id"):
        for order, data in enumerate(json.loads(columns), start=1):
            col = sp.ColumnDef.from_json(data)
            out.append({"COLUMN_ID": table_id * 1024 + order, "DATA_TYPE": TYPE_CODES[col.type_name],
                        "USER_ID": ids.get(user), "TABLE_ID": table_id, "SIZE": col.precision or 0,
                        "PRECISION": col.precision or 0, "SCALE": col.scale or 0, "COLUMN_ORDER": order,
                        "COLUMN_NAME": col.name, "IS_NULLABLE": "T" if col.nullable else "F",
                        "DEFAULT_VAL": None if col.default is None else str(col.default)})
    return out


def _index_list(server: Server) -> list[dict]:
    """Every index with its columns: the primary key's (system-named, as Altibase names it) and the
    created ones."""
    tables = {(u, n): (tid, json.loads(pk)) for u, n, tid, pk in
              server.db.execute("SELECT user, name, table_id, pk FROM __tables")}
    out = []
    for (user, name), (table_id, pk) in sorted(tables.items(), key=lambda kv: kv[1][0]):
        if pk:
            out.append({"user": user, "name": f"__SYS_IDX_ID_{table_id}", "index_id": table_id, "table": (user, name),
                        "columns": pk, "unique": True})
    for rowid, user, name, tbl_user, tbl, columns, unique in server.db.execute(
            "SELECT rowid, user, name, tbl_user, tbl, columns, is_unique FROM __indexes ORDER BY rowid"):
        out.append({"user": user, "name": name, "index_id": 100000 + rowid, "table": (tbl_user, tbl),
                    "columns": json.loads(columns), "unique": bool(unique)})
    return [dict(index, table_id=tables.get(index["table"], (None,))[0]) for index in out]


def _indices(server: Server, session: Session) -> list[dict]:
    ids = _user_ids(server)
    return [{"USER_ID": ids.get(i["user"]), "TBS_ID": 0, "TABLE_ID": i["table_id"], "INDEX_ID": i["index_id"],
             "INDEX_NAME": i["name"], "INDEX_TYPE": 1, "IS_UNIQUE": "T" if i["unique"] else "F",
             "COLUMN_CNT": len(i["columns"])} for i in _index_list(server)]


def _index_columns(server: Server, session: Session) -> list[dict]:
    ids = _user_ids(server)
    orders = {}
    for table_id, columns in server.db.execute("SELECT table_id, columns FROM __tables"):
        for order, data in enumerate(json.loads(columns), start=1):
            orders[(table_id, data["name"])] = order
    out = []
    for index in _index_list(server):
        for position, column in enumerate(index["columns"], start=1):
            order = orders.get((index["table_id"], column), 0)
            out.append({"USER_ID": ids.get(index["user"]), "INDEX_ID": index["index_id"],
                        "COLUMN_ID": index["table_id"] * 1024 + order, "INDEX_COL_ORDER": position - 1,
                        "SORT_ORDER": "A", "TABLE_ID": index["table_id"]})
    return out


def _constraints(server: Server, session: Session) -> list[dict]:
    """SYS_CONSTRAINTS_ (qcmCreate.cpp; CONSTRAINT_TYPE from qdParseTree.h qdConstraintType: 1 NOT NULL,
    2 UNIQUE, 3 PRIMARY KEY): a NOT NULL constraint per non-nullable column, the primary key and each
    UNIQUE constraint with its index. CREATE UNIQUE INDEX makes an index, not a constraint, so it has
    no row here."""
    ids = _user_ids(server)
    out = []
    for user, table_id, columns, pk in server.db.execute(
            "SELECT user, table_id, columns, pk FROM __tables ORDER BY table_id"):
        for data in json.loads(columns):
            if not sp.ColumnDef.from_json(data).nullable:
                out.append({"USER_ID": ids.get(user), "TABLE_ID": table_id, "CONSTRAINT_TYPE": 1, "INDEX_ID": 0,
                            "COLUMN_CNT": 1})
        if json.loads(pk):
            out.append({"USER_ID": ids.get(user), "TABLE_ID": table_id, "CONSTRAINT_TYPE": 3, "INDEX_ID": table_id,
                        "COLUMN_CNT": len(json.loads(pk))})
    for index in _index_list(server):  # UNIQUE constraints (type 2), with the index the server made for them
        if index["name"].startswith(CONSTRAINT_INDEX_PREFIX) and index["index_id"] != index["table_id"]:
            out.append({"USER_ID": ids.get(index["user"]), "TABLE_ID": index["table_id"], "CONSTRAINT_TYPE": 2,
                        "INDEX_ID": index["index_id"], "COLUMN_CNT": len(index["columns"])})
    for number, row in enumerate(out, start=1):
        kind = {3: "PRIMARY", 2: "UNIQUE"}.get(row["CONSTRAINT_TYPE"], "NOT_NULL")
        row.update(CONSTRAINT_ID=number, CONSTRAINT_NAME=f"__SYS_CON_{kind}_ID_{number}", REFERENCED_TABLE_ID=None,
                   REFERENCED_INDEX_ID=None, DELETE_RULE=0, CHECK_CONDITION=None, VALIDATED="T")
    return out


def _repl(method: str) -> Callable[[Server, Session], list[dict]]:
    return lambda server, session: getattr(server.replication, method)()


_VIEWS = [
    View("V$REPGAP", ("REP_NAME", "START_FLAG", "REP_LAST_SN", "REP_SN", "REP_GAP", "REP_GAP_SIZE",
                      "READ_LFG_ID", "READ_FILE_NO", "READ_OFFSET"), _repl("gap_rows"), since={"REP_GAP_SIZE": "7.3"}),
    View("V$INSTANCE", ("STARTUP_PHASE", "STARTUP_TIME_SEC", "WORKING_TIME_SEC"), _instance),
    View("V$DATABASE", ("DB_NAME", "DB_SIGNATURE"),
         lambda server, session: [{"DB_NAME": "mydb", "DB_SIGNATURE": server.db_signature}]),
    View("V$REPSENDER", ("REP_NAME", "START_FLAG", "NET_ERROR_FLAG", "XSN", "COMMIT_XSN", "STATUS", "SENDER_IP",
                         "PEER_IP", "SENDER_PORT", "PEER_PORT", "READ_LOG_COUNT", "SEND_LOG_COUNT", "REPL_MODE"),
         _repl("sender_rows")),
    View("V$REPRECEIVER", ("REP_NAME", "MY_IP", "MY_PORT", "PEER_IP", "PEER_PORT", "APPLY_XSN",
                           "INSERT_SUCCESS_COUNT", "INSERT_FAILURE_COUNT", "UPDATE_SUCCESS_COUNT",
                           "UPDATE_FAILURE_COUNT", "DELETE_SUCCESS_COUNT", "DELETE_FAILURE_COUNT",
                           "SQL_APPLY_TABLE_COUNT"), _repl("receiver_rows")),
    View("V$SESSION", ("ID", "TRANS_ID", "TASK_STATE", "COMM_NAME", "DB_USERNAME", "DB_USERID", "SYSDBA_FLAG",
                       "AUTOCOMMIT_FLAG", "SESSION_STATE", "LOGIN_TIME", "CLIENT_APP_INFO"), _sessions),
    View("V$PROPERTY", ("NAME", "STOREDCOUNT", "ATTR", "MIN", "MAX", *(f"VALUE{i}" for i in range(1, 9))),
         _properties),
    View("SYS_REPLICATIONS_", ("REPLICATION_NAME", "LAST_USED_HOST_NO", "HOST_COUNT", "IS_STARTED", "XSN",
                               "ITEM_COUNT", "CONFLICT_RESOLUTION", "REPL_MODE", "ROLE", "OPTIONS"), _replications),
    View("SYS_REPL_HOSTS_", ("HOST_NO", "REPLICATION_NAME", "HOST_IP", "PORT_NO", "CONN_TYPE"), _repl_hosts),
    View("SYS_REPL_ITEMS_", ("REPLICATION_NAME", "TABLE_OID", "LOCAL_USER_NAME", "LOCAL_TABLE_NAME",
                             "LOCAL_PARTITION_NAME", "REMOTE_USER_NAME", "REMOTE_TABLE_NAME",
                             "REMOTE_PARTITION_NAME", "IS_PARTITION", "REPLICATION_UNIT"), _repl_items),
    View("SYS_USERS_", ("USER_ID", "USER_NAME", "USER_TYPE"), _users),
    View("SYS_TABLES_", ("USER_ID", "TABLE_ID", "TABLE_OID", "COLUMN_COUNT", "TABLE_NAME", "TABLE_TYPE",
                         "REPLICATION_COUNT"), _tables),
    View("SYS_COLUMNS_", ("COLUMN_ID", "DATA_TYPE", "USER_ID", "TABLE_ID", "SIZE", "PRECISION", "SCALE",
                          "COLUMN_ORDER", "COLUMN_NAME", "IS_NULLABLE", "DEFAULT_VAL"), _columns),
    View("SYS_INDICES_", ("USER_ID", "TBS_ID", "TABLE_ID", "INDEX_ID", "INDEX_NAME", "INDEX_TYPE", "IS_UNIQUE",
                          "COLUMN_CNT"), _indices),
    View("SYS_INDEX_COLUMNS_", ("USER_ID", "INDEX_ID", "COLUMN_ID", "INDEX_COL_ORDER", "SORT_ORDER", "TABLE_ID"),
         _index_columns),
    View("SYS_CONSTRAINTS_", ("USER_ID", "TABLE_ID", "CONSTRAINT_ID", "CONSTRAINT_NAME", "CONSTRAINT_TYPE",
                              "INDEX_ID", "COLUMN_CNT", "REFERENCED_TABLE_ID", "REFERENCED_INDEX_ID", "DELETE_RULE",
                              "CHECK_CONDITION", "VALIDATED"), _constraints),
    View("DUAL", ("DUMMY",), lambda server, session: [{"DUMMY": "X"}]),
]
_BY_NAME = {v.name: v for v in _VIEWS}


def lookup(name: sp.Name) -> View | None:
    """A system view by name: V$ views and DUAL unqualified, dictionary tables as SYSTEM_.NAME."""
    view = _BY_NAME.get(name.name)
    if view is None:
        return None
    if view.name.startswith("SYS_"):
        return view if name.user == "SYSTEM_" else None
    return view if name.user in (None, "SYSTEM_") else None


def materialize(db: sqlite3.Connection, view: View, server: Server, session: Session) -> None:
    columns = view.columns_of(server)
    cols = ", ".join(f'"{c}"' for c in columns)
    db.execute(f'DROP TABLE IF EXISTS "{view.name}"')
    db.execute(f'CREATE TABLE "{view.name}" ({cols})')
    rows = view.rows(server, session)
    db.executemany(f'INSERT INTO "{view.name}" VALUES ({", ".join("?" * len(columns))})',
                   [[row.get(c) for c in columns] for row in rows])
