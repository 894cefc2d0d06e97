"""Replication between simulated servers: objects, senders, handshakes and receivers.

A started replication has a sender thread on its server. It reads the server's replication log after
the replication's restart point (XSN), ships the records to the peer's receiver at a configurable
rate, and advances the XSN. The receiver applies them exactly once (it keeps its own applied SN).
V$REPGAP / V$REPSENDER rows exist only while the sender runs; V$REPRECEIVER rows only while the
peer's sender is connected - as in Altibase.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from altibase_sim import sqlparse as sp
from altibase_sim.errors import error
from altibase_sim.server import Result, Server, Session, TableDef, connect_sqlite, duplicate_key, sqlite_name

TICK = 0.005  # seconds between sender polls
# V$REPSENDER / V$REPGAP START_FLAG of a running LAZY sender: 0 (QUICKSTART shows 1 and SYNC 2 only while
# they reposition or sync, which is instant here)
START_FLAG = 0
DEFAULT_RATE = 20000  # rows per second a sender ships when not throttled by a fault


class HandshakeError(Exception):
    """The receiver refused the sender (its message), or the peer could not be reached."""


@dataclass
class Receiver:
    """State on the receiving server while a peer's sender is connected."""
    rep: str
    peer: Server
    sql_apply_tables: set[tuple[str, str]]
    apply_xsn: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in (
        "INSERT_SUCCESS_COUNT", "INSERT_FAILURE_COUNT", "UPDATE_SUCCESS_COUNT", "UPDATE_FAILURE_COUNT",
        "DELETE_SUCCESS_COUNT", "DELETE_FAILURE_COUNT")})


class Sender(threading.Thread):
    def __init__(self, manager: ReplicationManager, rep: str, xsn: int):
        super().__init__(name=f"sender-{manager.server.name}-{rep}", daemon=True)
        self.manager = manager
        self.server = manager.server
        self.rep = rep
        self.xsn = xsn
        self.stop_event = threading.Event()
        # held while one pass reads and ships: a pause waits for it, so nothing ships after pause returns
        self.pass_lock = threading.Lock()
        self.connected = False
        self.peer: Server | None = None
        self.peer_db: sqlite3.Connection | None = None
        self.peer_port = 0
        self.last_error = ""
        self.read_count = 0
        self.send_count = 0
        self.schema_seen: tuple[int, int] = (-1, -1)
        self.start_flag = START_FLAG
        self.db = connect_sqlite(self.server.db_path)

    # -- status for the views
    @property
    def status(self) -> int:
        return 1 if self.connected else 2  # 1 RUN, 2 RETRY

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                with self.pass_lock:
                    if self.manager.paused.get(self.rep):
                        pause = TICK
                    elif not self.connected:
                        try:
                            self.connect()
                            pause = 0.0
                        except HandshakeError as exc:
                            self.last_error = str(exc)
                            pause = 0.1
                    else:
                        pause = 0.0 if self.ship_batch() else TICK
                if pause:
                    self.stop_event.wait(pause)
        finally:
            self.disconnect()
            self.db.close()

    def connect(self) -> None:
        peer, port, sql_apply = self.manager.handshake(self.rep)
        self.peer, self.peer_port = peer, port
        self.peer_db = connect_sqlite(peer.db_path)
        applied = self.peer_db.execute("SELECT sn FROM __applied WHERE rep=? AND peer=?",
                                       (self.rep, self.server.name)).fetchone()
        peer.replication.receivers[self.rep] = Receiver(self.rep, self.server, sql_apply,
                                                        applied[0] if applied else 0)
        self.schema_seen = (self.server.schema_version, peer.schema_version)
        self.connected = True
        self.last_error = ""

    def disconnect(self) -> None:
        if self.peer is not None:
            receiver = self.peer.replication.receivers.get(self.rep)
            if receiver is not None and receiver.peer is self.server:
                del self.peer.replication.receivers[self.rep]
        if self.peer_db is not None:
            self.peer_db.close()
        self.peer, self.peer_db, self.connected = None, None, False

    def lose_connection(self, reason: str) -> None:
        self.last_error = reason
        self.disconnect()

    def ship_batch(self) -> bool:
        """Send the next records; False when there was nothing to do."""
        peer = self.peer
        assert peer is not None and self.peer_db is not None
        if not peer.up or not self.server.up:
            self.lose_connection("peer is down")
            return False
        if self.schema_seen != (self.server.schema_version, peer.schema_version):
            # a definition changed under a running replication: handshake again (as a reconnect would)
            self.lose_connection("table definitions changed")
            return False
        rate = self.manager.rates.get(self.rep, DEFAULT_RATE)
        limit = max(1, int(rate * TICK))
        records = self.db.execute(
            "SELECT sn, reps, user, tbl, op, payload FROM __replog WHERE sn > ? ORDER BY sn LIMIT ?",
            (self.xsn, limit)).fetchall()
        if not records:
            return False
        items = self.manager.items(self.rep, self.db)
        receiver = peer.replication.receivers.get(self.rep)
        if receiver is None:
            self.lose_connection("receiver is gone")
            return False
        relevant = [r for r in records if self.rep in json.loads(r[1])]
        self.read_count += len(records)
        try:
            apply_records(self.peer_db, peer, receiver, self.server.name, relevant, items)
        except sqlite3.OperationalError:
            return False  # the receiver's table is locked by a user transaction: retry the batch
        self.send_count += len(relevant)
        self.xsn = records[-1][0]
        with Server.tx(self.db) as db:
            db.execute("UPDATE __repl SET xsn=? WHERE name=?", (self.xsn, self.rep))
        if rate < DEFAULT_RATE:
            self.stop_event.wait(len(records) / rate)
        return True


def definition_difference(sender: Server, mine: TableDef, receiver: Server, theirs: TableDef) -> str | None:
    """The first difference the receiver's handshake finds in a table that SQL apply could bridge
    (rpdMeta.cpp ``equalColumns``/``equalIndices``), or None. Columns are matched by name."""
    receiver_columns = {c.name: c for c in theirs.columns}
    shared = {c.name for c in mine.columns} & set(receiver_columns)
    for column in mine.columns:
        other = receiver_columns.get(column.name)
        if other is not None and column.signature() != other.signature():
            return f"column {column.name} differs ({column.type_text()} vs {other.type_text()}, " \
                   f"NOT NULL {not column.nullable} vs {not other.nullable})"
    for column in theirs.columns:
        if column.name not in shared and not column.nullable:
            return f"column {column.name} exists only on the receiver and is NOT NULL"

    def unique_keys(server: Server, tdef: TableDef) -> list[tuple[str, ...]] | str:
        keys = [tuple(tdef.pk)] if tdef.pk else []
        keys += server.unique_keys(tdef.user, tdef.name)
        compared = []
        for key in keys:
            replicated = [c for c in key if c in shared]
            if replicated and len(replicated) < len(key):
                return f"unique index on {', '.join(key)} mixes replicated and non-replicated columns"
            if replicated:
                compared.append(key)
        return sorted(compared)

    a, b = unique_keys(sender, mine), unique_keys(receiver, theirs)
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else b  # type: ignore[return-value]
    if a != b:
        return f"unique indexes differ ({a} vs {b})"
    return None


def apply_records(db: sqlite3.Connection, server: Server, receiver: Receiver, sender_name: str,
                  records: list[tuple], items: dict[tuple[str, str], tuple[str, str]]) -> None:
    """Apply log records on the receiving server, by column name, exactly once."""
    with Server.tx(db):
        applied_row = db.execute("SELECT sn FROM __applied WHERE rep=? AND peer=?",
                                 (receiver.rep, sender_name)).fetchone()
        applied = applied_row[0] if applied_row else 0
        last = applied
        for sn, _reps, user, tbl, op, payload in records:
            if sn <= applied:
                continue
            last = sn
            target = items.get((user, tbl))
            if target is None:
                continue  # the table left the replication before this record was sent
            tdef = server.table(*target, db)
            ok = tdef is not None and _apply_one(db, tdef, op, json.loads(payload))
            kind = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}[op]
            receiver.counts[f"{kind}_{'SUCCESS' if ok else 'FAILURE'}_COUNT"] += 1
        if last > applied:
            db.execute("INSERT OR REPLACE INTO __applied VALUES (?, ?, ?)", (receiver.rep, sender_name, last))
            receiver.apply_xsn = last


def _apply_one(db: sqlite3.Connection, tdef: TableDef, op: str, payload: dict) -> bool:
    """One change as SQL on the receiver; a change that would leave two rows with one key of a unique index
    (NULL equal to NULL, as the server compares keys; SQLite's own check lets them in) is a conflict
    (smnbModule.cpp: smnUniqueViolationInReplTrans), undone and counted as a failure."""
    db.execute("SAVEPOINT apply_one")
    applied = _apply_sql(db, tdef, op, payload)
    table = sqlite_name(tdef.user, tdef.name)
    keys = [json.loads(r[0]) for r in db.execute(
        "SELECT columns FROM __indexes WHERE tbl_user=? AND tbl=? AND is_unique=1", (tdef.user, tdef.name))]
    if applied and op != "D" and any(len(k) > 1 and duplicate_key(db, table, k, with_a_null=True) for k in keys):
        db.execute("ROLLBACK TO apply_one")
        applied = False
    db.execute("RELEASE apply_one")
    return applied


def _apply_sql(db: sqlite3.Connection, tdef: TableDef, op: str, payload: dict) -> bool:
    """One change as SQL on the receiver; only columns of the same name are applied."""
    known = {c.name for c in tdef.columns}
    table = sqlite_name(tdef.user, tdef.name)
    try:
        if op == "I":
            row = {k: v for k, v in payload["row"].items() if k in known}
            cols = ", ".join(f'"{c}"' for c in row)
            db.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
            return True
        where = " AND ".join(f'"{c}" = ?' for c in payload["pk"])
        if op == "U":
            changes = {k: v for k, v in payload["set"].items() if k in known}
            if not changes:
                return True
            sets = ", ".join(f'"{c}" = ?' for c in changes)
            cur = db.execute(f"UPDATE {table} SET {sets} WHERE {where}",
                             [*changes.values(), *payload["pk"].values()])
        else:
            cur = db.execute(f"DELETE FROM {table} WHERE {where}", list(payload["pk"].values()))
        return cur.rowcount > 0
    except sqlite3.IntegrityError:
        return False  # a conflict: counted as a failure, as Altibase's receiver does


class ReplicationManager:
    """The replication objects of one server and their running senders / receivers."""

    def __init__(self, server: Server, resolve_peer: Callable[[str, int], Server | None]):
        self.server = server
        self.resolve_peer = resolve_peer
        self.senders: dict[str, Sender] = {}
        self.receivers: dict[str, Receiver] = {}
        self.paused: dict[str, bool] = {}
        self.rates: dict[str, int] = {}
        server.replication = self

    # ------------------------------------------------------------------ metadata
    def exists(self, rep: str, db: sqlite3.Connection | None = None) -> bool:
        return (db or self.server.db).execute("SELECT 1 FROM __repl WHERE name=?", (rep,)).fetchone() is not None

    def items(self, rep: str, db: sqlite3.Connection | None = None) -> dict[tuple[str, str], tuple[str, str]]:
        rows = (db or self.server.db).execute(
            "SELECT local_user, local_table, remote_user, remote_table FROM __repl_items WHERE rep=?", (rep,))
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}

    def hosts(self, rep: str) -> list[tuple[str, int]]:
        row = self.server.db.execute("SELECT hosts FROM __repl WHERE name=?", (rep,)).fetchone()
        return [tuple(h) for h in json.loads(row[0])] if row else []

    def last_sn(self, db: sqlite3.Connection | None = None) -> int:
        row = (db or self.server.db).execute("SELECT seq FROM sqlite_sequence WHERE name='__replog'").fetchone()
        return row[0] if row else 0

    def pending(self, xsn: int, db: sqlite3.Connection | None = None) -> tuple[int, int]:
        """(records, bytes) of log after a sender's position: all log, replicated tables or not."""
        return (db or self.server.db).execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM __replog WHERE sn > ?", (xsn,)).fetchone()

    # ------------------------------------------------------------------ handshake
    def handshake(self, rep: str) -> tuple[Server, int, set[tuple[str, str]]]:
        """Connect to the peer of ``rep``; returns (peer, port, tables the receiver applies as SQL).

        The receiver checks the sender's metadata against its own (rpxReceiver.cpp -> rpdMeta.cpp
        ``equals``/``equalItem``): the item count and the primary-key column count must match whatever
        the properties; differences in the shared columns, a NOT NULL column only the receiver has, or
        different unique indexes (the primary key's included) are accepted only when the *receiver's*
        REPLICATION_SQL_APPLY_ENABLE is 1, which puts the table in SQL apply mode. Columns only one side
        has (nullable on the receiver), defaults and non-unique indexes are not compared. START reports
        any refusal as ERR-6100D with the receiver's message in parentheses."""
        reasons = []
        for host, port in self.hosts(rep):
            peer = self.resolve_peer(host, port)
            if peer is None or not peer.up or peer is self.server:
                reasons.append(f"cannot connect to {host}:{port}")
                continue
            if not peer.replication.exists(rep):
                raise HandshakeError(f"Undefined replication name. [{rep}] (on the peer {host}:{port})")
            mine_items, peer_items = self.items(rep), peer.replication.items(rep)
            if len(mine_items) != len(peer_items):
                raise HandshakeError(f"The replication's item count does not match "
                                     f"[{len(mine_items)}:{len(peer_items)}].")
            sql_apply: set[tuple[str, str]] = set()
            for (lu, lt), (ru, rt) in mine_items.items():
                if peer_items.get((ru, rt)) != (lu, lt):
                    raise HandshakeError(f"The replication items do not match: {ru}.{rt} is not an item of "
                                         f"{rep} on the peer.")
                mine, theirs = self.server.table(lu, lt), peer.table(ru, rt)
                if mine is None or theirs is None:
                    raise HandshakeError(f"Table {ru}.{rt} was not found.")
                if len(mine.pk) != len(theirs.pk):
                    raise HandshakeError(f"The primary key column counts of {lu}.{lt} do not match "
                                         f"[{len(mine.pk)}:{len(theirs.pk)}].")
                difference = definition_difference(self.server, mine, peer, theirs)
                if difference:
                    if not peer.props["REPLICATION_SQL_APPLY_ENABLE"]:
                        raise HandshakeError(f"{lu}.{lt}: {difference}")
                    sql_apply.add((ru, rt))
            return peer, port, sql_apply
        raise HandshakeError("Handshake Process Error")

    # ------------------------------------------------------------------ statements
    def execute(self, session: Session, stmt: Any) -> Result:
        with self.server.lock:
            if isinstance(stmt, sp.CreateReplication):
                return self._create(stmt)
            if not self.exists(stmt.name):
                raise error("6111B", name=stmt.name)
            if isinstance(stmt, sp.DropReplication):
                return self._drop(stmt.name)
            action = stmt.action
        if action == "FLUSH":  # waits: not under the server lock
            return self._flush(stmt)
        with self.server.lock:
            if action in ("START", "QUICKSTART", "SYNC"):
                return self._start(stmt)
            if action == "STOP":
                return self._stop(stmt.name)
            if action == "RESET":
                if stmt.name in self.senders:
                    raise error("610FE")
                self._set_xsn(stmt.name, self.last_sn())
                return Result("Alter success.")
            return self._change_items(stmt)

    def _create(self, stmt: sp.CreateReplication) -> Result:
        if self.exists(stmt.name):
            raise error("61100", name=stmt.name)
        items = []
        for local, remote in stmt.items:
            tdef = self.server.require_table(local.user, local.name, code="61111")
            if not tdef.pk:
                raise error("61113", user=tdef.user, table=tdef.name)
            items.append((tdef.user, tdef.name, remote.user, remote.name))
        with Server.tx(self.server.db) as db:
            db.execute("INSERT INTO __repl VALUES (?, ?, ?, 0, ?, ?)",
                       (stmt.name, stmt.mode, json.dumps(stmt.hosts), self.last_sn(db), int(time.time())))
            db.executemany("INSERT INTO __repl_items VALUES (?, ?, ?, ?, ?)",
                           [(stmt.name, *item) for item in items])
        return Result("Create success.")

    def _drop(self, rep: str) -> Result:
        if rep in self.senders:
            raise error("610FE")
        with Server.tx(self.server.db) as db:
            db.execute("DELETE FROM __repl WHERE name=?", (rep,))
            db.execute("DELETE FROM __repl_items WHERE rep=?", (rep,))
        return Result("Drop success.")

    def _set_xsn(self, rep: str, xsn: int) -> None:
        with Server.tx(self.server.db) as db:
            db.execute("UPDATE __repl SET xsn=? WHERE name=?", (xsn, rep))

    def _set_started(self, rep: str, started: bool) -> None:
        with Server.tx(self.server.db) as db:
            db.execute("UPDATE __repl SET is_started=? WHERE name=?", (int(started), rep))

    def _start(self, stmt: sp.AlterReplication) -> Result:
        rep = stmt.name
        if rep in self.senders:
            raise error("6100A")
        try:
            peer, _port, sql_apply = self.handshake(rep)
        except HandshakeError as exc:
            if not stmt.retry:
                raise error("6100D", reason=str(exc)) from None
            peer = None
        if stmt.action == "SYNC" and peer is not None:
            self._sync_rows(rep, peer, sql_apply)
        if stmt.action in ("QUICKSTART", "SYNC"):
            self._set_xsn(rep, self.last_sn())
        self.launch(rep)
        self._set_started(rep, True)
        return Result("Alter success.")

    def launch(self, rep: str) -> None:
        """Run the sender; it retries the handshake until the peer answers (START checked it first)."""
        xsn = self.server.db.execute("SELECT xsn FROM __repl WHERE name=?", (rep,)).fetchone()[0]
        sender = Sender(self, rep, xsn)
        self.senders[rep] = sender
        sender.start()

    def _sync_rows(self, rep: str, peer: Server, sql_apply: set) -> None:
        """SYNC: send every row of every replicated table (existing rows on the peer are conflicts)."""
        receiver = Receiver(rep, self.server, sql_apply)
        records = []
        for (lu, lt), _remote in self.items(rep).items():
            cur = self.server.db.execute(f"SELECT * FROM {sqlite_name(lu, lt)}")
            names = [d[0] for d in cur.description]
            records += [(0, "", lu, lt, "I", json.dumps({"row": dict(zip(names, row, strict=True))}, default=str))
                        for row in cur.fetchall()]
        peer_db = connect_sqlite(peer.db_path)
        try:
            # whole rows, not log records: no exactly-once guard (rows already there count as conflicts)
            with Server.tx(peer_db):
                for _sn, _reps, user, tbl, op, payload in records:
                    target = self.items(rep)[(user, tbl)]
                    tdef = peer.table(*target, peer_db)
                    if tdef is not None:
                        ok = _apply_one(peer_db, tdef, op, json.loads(payload))
                        receiver.counts[f"INSERT_{'SUCCESS' if ok else 'FAILURE'}_COUNT"] += 1
        finally:
            peer_db.close()

    def _stop(self, rep: str) -> Result:
        sender = self.senders.pop(rep, None)
        if sender is None:
            raise error("61027")
        sender.stop_event.set()
        sender.join(timeout=10)
        self._set_started(rep, False)
        return Result("Alter success.")

    def _flush(self, stmt: sp.AlterReplication) -> Result:
        """Wait until the peer has acknowledged all log written up to the FLUSH (ALL: up to the newest log,
        read again while waiting), as rpcManager.cpp waitUntilSenderFlush does. A sender that cannot
        reach its peer (RETRY) acknowledges nothing: WAIT n then fails with ERR-61075, and a FLUSH without
        WAIT runs until the statement's QUERY_TIMEOUT (ERR-01044)."""
        rep = stmt.name
        sender = self.senders.get(rep)
        if sender is None:
            raise error("61027")
        target = self.last_sn()
        started = time.monotonic()
        limit = stmt.wait if stmt.wait is not None else self.server.props["QUERY_TIMEOUT"]
        while True:
            if self.senders.get(rep) is not sender or not self.server.up:
                raise error("61027")
            if stmt.flush_all:
                target = self.last_sn()
            if sender.connected and sender.xsn >= target:
                break
            if time.monotonic() - started >= limit:
                raise error("61075") if stmt.wait is not None else error("01044")
            time.sleep(TICK)
        return Result("Alter success.")

    def _change_items(self, stmt: sp.AlterReplication) -> Result:
        """ADD/DROP TABLE in the server's order: validation (rpcValidate.cpp: the table exists, ERR-61111;
        DROP: it is an item, ERR-6111A; ADD: it has a primary key, ERR-61113), then execution
        (rpcExecute.cpp: not started, ERR-610FE; no live receiver, ERR-6109F; not the last item,
        ERR-6106F; ADD of an item already there fails on the item catalog's unique index, ERR-11058)."""
        rep = stmt.name
        assert stmt.item is not None
        local, remote = stmt.item
        key = (local.user, local.name)
        items = self.items(rep)
        tdef = self.server.require_table(*key, code="61111")
        if stmt.action == "DROP_TABLE" and key not in items:
            raise error("6111A")
        if stmt.action != "DROP_TABLE" and not tdef.pk:
            raise error("61113", user=tdef.user, table=tdef.name)
        if rep in self.senders:
            raise error("610FE")
        if rep in self.receivers:
            raise error("6109F")
        if stmt.action == "DROP_TABLE":
            if len(items) == 1:
                raise error("6106F")
            with Server.tx(self.server.db) as db:
                db.execute("DELETE FROM __repl_items WHERE rep=? AND local_user=? AND local_table=?", (rep, *key))
        else:
            if key in items:
                # derived from the source (rpdCatalog.cpp insertReplItem), not observed on a server
                raise error("11058")
            with Server.tx(self.server.db) as db:
                db.execute("INSERT INTO __repl_items VALUES (?, ?, ?, ?, ?)",
                           (rep, *key, remote.user, remote.name))
        self.server.schema_version += 1
        return Result("Alter success.")

    # ------------------------------------------------------------------ lifecycle and views
    def resume_started(self) -> None:
        """At server start: replications that were started start again (retrying until the peer answers)."""
        for (rep,) in self.server.db.execute("SELECT name FROM __repl WHERE is_started=1").fetchall():
            if rep not in self.senders:
                self.launch(rep)

    def shutdown(self) -> None:
        """The server goes down: senders end, receivers vanish; IS_STARTED stays as it was."""
        for sender in list(self.senders.values()):
            sender.stop_event.set()
        for sender in list(self.senders.values()):
            sender.join(timeout=10)
        self.senders.clear()
        self.receivers.clear()

    def gap_rows(self) -> list[dict]:
        """V$REPGAP: one row per live sender. REP_GAP: log not yet acknowledged by the peer, all log
        counted. 7.1 counts log records (REP_LAST_SN - REP_SN) and has no REP_GAP_SIZE; 7.3 adds
        REP_GAP_SIZE (bytes) and gives REP_GAP in REPLICATION_GAP_UNIT units."""
        rows = []
        last = self.last_sn()
        for rep, sender in sorted(self.senders.items()):
            count, size = self.pending(sender.xsn)
            row = {"REP_NAME": rep, "START_FLAG": sender.start_flag, "REP_LAST_SN": last, "REP_SN": sender.xsn,
                   "REP_GAP": count, "READ_LFG_ID": 0, "READ_FILE_NO": 0, "READ_OFFSET": sender.xsn}
            if self.server.version != "7.1":
                row.update(REP_GAP=self.server.gap_units(size), REP_GAP_SIZE=size)
            rows.append(row)
        return rows

    def sender_rows(self) -> list[dict]:
        rows = []
        for rep, sender in sorted(self.senders.items()):
            rows.append({"REP_NAME": rep, "START_FLAG": sender.start_flag, "NET_ERROR_FLAG": 0 if sender.connected else 1,
                         "XSN": sender.xsn, "COMMIT_XSN": sender.xsn, "STATUS": sender.status,
                         "SENDER_IP": "127.0.0.1", "PEER_IP": sender.peer.name if sender.peer else "",
                         "SENDER_PORT": self.server.replication_port, "PEER_PORT": sender.peer_port,
                         "READ_LOG_COUNT": sender.read_count, "SEND_LOG_COUNT": sender.send_count,
                         "REPL_MODE": "LAZY"})
        return rows

    def receiver_rows(self) -> list[dict]:
        """V$REPRECEIVER: SQL_APPLY_TABLE_COUNT is what the handshake decided; it changes only when the
        sender connects again."""
        rows = []
        for rep, rcv in sorted(self.receivers.items()):
            rows.append({"REP_NAME": rep, "MY_IP": "127.0.0.1", "MY_PORT": self.server.replication_port,
                         "PEER_IP": rcv.peer.name, "PEER_PORT": rcv.peer.replication_port,
                         "APPLY_XSN": rcv.apply_xsn, **rcv.counts,
                         "SQL_APPLY_TABLE_COUNT": len(rcv.sql_apply_tables)})
        return rows
