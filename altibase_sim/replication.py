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
from altibase_sim.server import Result, Server, Session, TableDef, connect_sqlite, sqlite_name

TICK = 0.005  # seconds between sender polls
DEFAULT_RATE = 20000  # rows per second a sender ships when not throttled by a fault


class HandshakeError(Exception):
    pass


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
        self.connected = False
        self.peer: Server | None = None
        self.peer_db: sqlite3.Connection | None = None
        self.peer_port = 0
        self.last_error = ""
        self.read_count = 0
        self.send_count = 0
        self.schema_seen: tuple[int, int] = (-1, -1)
        self.db = connect_sqlite(self.server.db_path)

    # -- status for the views
    @property
    def status(self) -> int:
        return 1 if self.connected else 2  # 1 RUN, 2 RETRY

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                if self.manager.paused.get(self.rep):
                    self.stop_event.wait(TICK)
                    continue
                if not self.connected:
                    try:
                        self.connect()
                    except HandshakeError as exc:
                        self.last_error = str(exc)
                        self.stop_event.wait(0.1)
                        continue
                if not self.ship_batch():
                    self.stop_event.wait(TICK)
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

    def pending(self, rep: str, xsn: int, db: sqlite3.Connection | None = None) -> tuple[int, int]:
        """(records, bytes) of this replication's log after the restart point."""
        return (db or self.server.db).execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM __replog WHERE sn > ? AND instr(reps, ?) > 0",
            (xsn, json.dumps(rep))).fetchone()

    # ------------------------------------------------------------------ handshake
    def handshake(self, rep: str) -> tuple[Server, int, set[tuple[str, str]]]:
        """Connect to the peer of ``rep``; returns (peer, port, tables the receiver applies as SQL)."""
        reasons = []
        for host, port in self.hosts(rep):
            peer = self.resolve_peer(host, port)
            if peer is None or not peer.up or peer is self.server:
                reasons.append(f"cannot connect to {host}:{port}")
                continue
            if not peer.replication.exists(rep):
                raise HandshakeError(f"replication {rep} does not exist on the peer {host}:{port}")
            peer_items = peer.replication.items(rep)
            sql_apply: set[tuple[str, str]] = set()
            for (lu, lt), (ru, rt) in self.items(rep).items():
                if peer_items.get((ru, rt)) != (lu, lt):
                    raise HandshakeError(f"{ru}.{rt} is not a replicated table of {rep} on the peer")
                mine, theirs = self.server.table(lu, lt), peer.table(ru, rt)
                if mine is None or theirs is None:
                    raise HandshakeError(f"table {ru}.{rt} is missing")
                if mine.signature() != theirs.signature():
                    if not peer.props["REPLICATION_SQL_APPLY_ENABLE"]:
                        raise HandshakeError(f"the definitions of {lu}.{lt} and the peer's {ru}.{rt} differ")
                    sql_apply.add((ru, rt))
            return peer, port, sql_apply
        raise HandshakeError("; ".join(reasons) or "no host")

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
            tdef = self.server.require_table(local.user, local.name)
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
        rep = stmt.name
        sender = self.senders.get(rep)
        if sender is None:
            raise error("61027")
        target = self.last_sn()
        deadline = None if stmt.wait is None else time.monotonic() + stmt.wait
        while True:
            if self.senders.get(rep) is not sender:
                raise error("61027")
            if stmt.flush_all:
                if self.pending(rep, sender.xsn)[0] == 0:
                    break
            elif sender.xsn >= target or self.pending(rep, sender.xsn)[0] == 0:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise error("61075")
            time.sleep(TICK)
        return Result("Alter success.")

    def _change_items(self, stmt: sp.AlterReplication) -> Result:
        rep = stmt.name
        if rep in self.senders:
            raise error("610FE")
        if rep in self.receivers:
            raise error("6109F")
        assert stmt.item is not None
        local, remote = stmt.item
        key = (local.user, local.name)
        items = self.items(rep)
        if stmt.action == "DROP_TABLE":
            if key not in items:
                raise error("6111A")
            if len(items) == 1:
                raise error("6106F")
            with Server.tx(self.server.db) as db:
                db.execute("DELETE FROM __repl_items WHERE rep=? AND local_user=? AND local_table=?", (rep, *key))
        else:
            tdef = self.server.require_table(*key)
            if key in items:
                raise error("3129B")
            if not tdef.pk:
                raise error("61113", user=tdef.user, table=tdef.name)
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
        rows = []
        last = self.last_sn()
        for rep, sender in sorted(self.senders.items()):
            count, size = self.pending(rep, sender.xsn)
            rows.append({"REP_NAME": rep, "START_FLAG": 1, "REP_LAST_SN": last, "REP_SN": sender.xsn,
                         "REP_GAP": self.server.gap_units(size), "REP_GAP_SIZE": size,
                         "READ_LFG_ID": 0, "READ_FILE_NO": 0, "READ_OFFSET": sender.xsn, "PENDING_RECORDS": count})
        return rows

    def sender_rows(self) -> list[dict]:
        rows = []
        for rep, sender in sorted(self.senders.items()):
            rows.append({"REP_NAME": rep, "START_FLAG": 1, "NET_ERROR_FLAG": 0 if sender.connected else 1,
                         "XSN": sender.xsn, "COMMIT_XSN": sender.xsn, "STATUS": sender.status,
                         "SENDER_IP": "127.0.0.1", "PEER_IP": sender.peer.name if sender.peer else "",
                         "SENDER_PORT": self.server.replication_port, "PEER_PORT": sender.peer_port,
                         "READ_LOG_COUNT": sender.read_count, "SEND_LOG_COUNT": sender.send_count,
                         "REPL_MODE": "LAZY"})
        return rows

    def receiver_rows(self) -> list[dict]:
        rows = []
        for rep, rcv in sorted(self.receivers.items()):
            mine = {remote: local for local, remote in rcv.peer.replication.items(rep).items()}
            count = 0
            for (ru, rt) in mine:
                a, b = self.server.table(ru, rt), rcv.peer.table(*mine[(ru, rt)])
                if a is not None and b is not None and a.signature() != b.signature():
                    count += 1
            rows.append({"REP_NAME": rep, "MY_IP": "127.0.0.1", "MY_PORT": self.server.replication_port,
                         "PEER_IP": rcv.peer.name, "PEER_PORT": rcv.peer.replication_port,
                         "APPLY_XSN": rcv.apply_xsn, **rcv.counts, "SQL_APPLY_TABLE_COUNT": count})
        return rows

