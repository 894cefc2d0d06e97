"""One simulated Altibase server: sessions, SQL on a SQLite store, properties, replication objects.

Everything committed lives in the server's SQLite file (WAL), so a ``kill -9`` of the simulator loses
nothing that was committed. The replication log (what a sender ships) is written in the same SQLite
transaction as the change it describes, so data and log never disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from altibase_sim import sqlparse as sp
from altibase_sim.errors import error

if TYPE_CHECKING:
    from altibase_sim.replication import ReplicationManager

# What a server's configuration file (altibase.properties) gives when it does not name a property.
DEFAULT_PROPERTIES: dict[str, int] = {
    "ADMIN_MODE": 0,
    "REPLICATION_DDL_ENABLE": 0,
    "REPLICATION_DDL_ENABLE_LEVEL": 0,
    "REPLICATION_DDL_SYNC": 0,
    "REPLICATION_SQL_APPLY_ENABLE": 0,
    "REPLICATION_GAP_UNIT": 1048576,
    "REPLICATION_PORT_NO": 20301,
    "PORT_NO": 20300,
    "LOCK_WAIT_TIMEOUT_SEC": 5,
    "QUERY_TIMEOUT": 600,  # seconds; a statement running longer fails with ERR-01044
}
# Server versions the simulator models: 7.1 (the open-source tree the rules were checked against) and
# 7.3 (the manuals; V$REPGAP gained REP_GAP_SIZE).
VERSIONS = ("7.1", "7.3")
DEFAULT_VERSION = "7.1"
# Properties ALTER SYSTEM may change, with their allowed values (None: any non-negative integer).
SETTABLE: dict[str, set[int] | None] = {
    "ADMIN_MODE": {0, 1},
    "REPLICATION_DDL_ENABLE": {0, 1},
    "REPLICATION_DDL_ENABLE_LEVEL": {0, 1, 2},
    "REPLICATION_DDL_SYNC": {0, 1},
    "REPLICATION_SQL_APPLY_ENABLE": {0, 1},
    "REPLICATION_GAP_UNIT": None,
}
# DATA_TYPE codes of SYSTEM_.SYS_COLUMNS_ (General Reference-2)
TYPE_CODES = {"CHAR": 1, "VARCHAR": 12, "NUMERIC": 2, "NUMBER": 6, "FLOAT": 6, "DOUBLE": 8, "REAL": 7,
              "BIGINT": -5, "INTEGER": 4, "SMALLINT": 5, "DATE": 9, "NCHAR": -8, "NVARCHAR": -9}
NUMERIC_TYPES = {"INTEGER", "BIGINT", "SMALLINT", "NUMERIC", "NUMBER", "FLOAT", "DOUBLE", "REAL"}
SYSDBA_USERS = {"SYS", "SYSTEM_"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS __users(name TEXT PRIMARY KEY, password TEXT NOT NULL, user_id INTEGER);
CREATE TABLE IF NOT EXISTS __database(name TEXT PRIMARY KEY, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS __tables(user TEXT, name TEXT, table_id INTEGER, columns TEXT, pk TEXT,
                                    PRIMARY KEY(user, name));
CREATE TABLE IF NOT EXISTS __indexes(user TEXT, name TEXT, tbl_user TEXT, tbl TEXT, columns TEXT,
                                     is_unique INTEGER, PRIMARY KEY(user, name));
CREATE TABLE IF NOT EXISTS __repl(name TEXT PRIMARY KEY, mode TEXT, hosts TEXT, is_started INTEGER,
                                  xsn INTEGER, created INTEGER);
CREATE TABLE IF NOT EXISTS __repl_items(rep TEXT, local_user TEXT, local_table TEXT, remote_user TEXT,
                                        remote_table TEXT, PRIMARY KEY(rep, local_user, local_table));
CREATE TABLE IF NOT EXISTS __replog(sn INTEGER PRIMARY KEY AUTOINCREMENT, reps TEXT, user TEXT, tbl TEXT,
                                    op TEXT, payload TEXT, size INTEGER);
CREATE TABLE IF NOT EXISTS __applied(rep TEXT, peer TEXT, sn INTEGER, PRIMARY KEY(rep, peer));
"""


# What Altibase names the index of a key constraint it creates (PRIMARY KEY, UNIQUE).
CONSTRAINT_INDEX_PREFIX = "__SYS_IDX_ID_"


def sqlite_name(user: str, table: str) -> str:
    return f'"{user}.{table}"'


@dataclass
class TableDef:
    user: str
    name: str
    table_id: int
    columns: list[sp.ColumnDef]
    pk: list[str]

    def column(self, name: str) -> sp.ColumnDef | None:
        return next((c for c in self.columns if c.name == name), None)

    def signature(self) -> tuple:
        return (tuple(c.signature() for c in self.columns), tuple(self.pk))


@dataclass
class Session:
    id: int
    user: str
    sysdba: bool
    client_info: str
    comm_name: str
    login_time: int
    db: sqlite3.Connection
    autocommit: bool = True
    in_tx: bool = False
    closed: bool = False
    restart_at_logout: bool = False  # an injected fault: the server restarts when this session ends


@dataclass
class Result:
    message: str = ""
    columns: list[tuple[str, int]] | None = None
    rows: list[list[Any]] = field(default_factory=list)
    rowcount: int = -1


def read_config(path: str | None) -> dict[str, int]:
    """``NAME = VALUE`` lines of an altibase.properties-style file (``#`` comments); {} without one."""
    values: dict[str, int] = {}
    if not path:
        return values
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected NAME = integer, got {line!r}")
        values[name.strip().upper()] = int(value.strip())
    return values


def write_config(path: str, values: dict[str, int]) -> None:
    lines = ["# altibase.properties of a simulated server: read at start; ALTER SYSTEM does not change it"]
    lines += [f"{name} = {value}" for name, value in sorted(values.items())]
    tmp = Path(path + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def _mod(a: Any, b: Any) -> Any:
    """MOD as mtfMod.cpp computes it: C's remainder, its sign the dividend's."""
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return int(math.copysign(abs(a) % abs(b), a)) if b else None
    return math.fmod(a, b)


def _digest(value: Any, algorithm: Any) -> str | None:
    """DIGEST(expr, 'SHA1' | 'SHA-1' | 'SHA256' | 'SHA-256' | 'SHA512' | 'SHA-512'): the upper-case hex
    digest; NULL digests as '' (mtfDigest.cpp)."""
    name = {"SHA1": "sha1", "SHA-1": "sha1", "SHA256": "sha256", "SHA-256": "sha256", "SHA512": "sha512",
            "SHA-512": "sha512"}.get(str(algorithm))  # compared exactly, case included
    if name is None:
        raise ValueError(f"DIGEST algorithm {algorithm!r}")
    return hashlib.new(name, ("" if value is None else str(value)).encode()).hexdigest().upper()


def _hex_to_num(text: Any) -> int | None:
    """HEX_TO_NUM: up to 8 hex digits as a signed INTEGER (mtfHex_To_Num.cpp)."""
    if text is None:
        return None
    if len(str(text)) > 8:
        raise ValueError("HEX_TO_NUM takes at most 8 hex digits")
    value = int(str(text), 16)
    return value - (1 << 32) if value >= 1 << 31 else value


def add_functions(db: sqlite3.Connection) -> None:
    """The Altibase functions SQLite lacks, under their Altibase names."""
    db.create_function("MOD", 2, _mod, deterministic=True)
    db.create_function("DIGEST", 2, _digest, deterministic=True)
    db.create_function("HEX_TO_NUM", 1, _hex_to_num, deterministic=True)


def connect_sqlite(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    add_functions(db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # durable across a process kill (not a power cut)
    db.execute("PRAGMA busy_timeout=5000")
    return db


class Server:
    """A simulated server. Thread-safe: every client session runs in its own thread."""

    def __init__(self, name: str, db_path: str, *, port: int, replication_port: int = 20301,
                 sys_password: str = "manager", aliases: tuple[str, ...] = (), config_path: str | None = None,
                 version: str = DEFAULT_VERSION):
        if version not in VERSIONS:
            raise ValueError(f"unknown server version {version!r} (modelled: {', '.join(VERSIONS)})")
        self.name = name
        self.db_path = db_path
        self.config_path = config_path
        self.version = version
        self.port = port
        self.configured_replication_port = replication_port
        self.aliases = tuple(aliases)
        self.lock = threading.RLock()
        self.sessions: dict[int, Session] = {}
        self._next_session = 1
        self.up = True
        self.replication: ReplicationManager | None = None  # set by the simulation
        # (statement pattern, error code | "DOWN" | "RESTART" | "SLOW:<seconds>"), each fires once
        self.faults: list[list] = []  # [pattern, code, matches to let pass first]
        self.on_crash: Callable[[], None] | None = None  # set by the simulation: take this server down
        self.on_restart: Callable[[], None] | None = None  # set by the simulation: restart this server
        self.schema_version = 0  # bumped by every DDL; senders re-check definitions when it moves
        self.admin_mode_changes: list[tuple[float, int]] = []  # (time, new value), across restarts
        # One connection per thread: a SQLite connection shared across threads lets one thread's open
        # read snapshot turn another thread's write into SQLITE_BUSY ("database is locked").
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self.db.executescript(_SCHEMA)
        with self.tx(self.db):
            self.db.execute("INSERT OR IGNORE INTO __users VALUES ('SYS', ?, 1)", (sys_password,))
            self.db.execute("INSERT OR IGNORE INTO __users VALUES ('SYSTEM_', ?, 0)", (sys_password,))
            # made once, when the database is created (smmFT.cpp DB_SIGNATURE): kept across restarts
            self.db.execute("INSERT OR IGNORE INTO __database VALUES ('mydb', ?)", (uuid.uuid4().hex,))
        self.db_signature = self.db.execute("SELECT signature FROM __database").fetchone()[0]
        self.props: dict[str, int] = {}
        self.startup_time = 0
        self.boot()

    def boot(self) -> None:
        """What a server process does when it starts: read its configuration file (ALTER SYSTEM changes
        of the previous life are gone: they live in memory only) and note the start time (V$INSTANCE).

        A real restart takes seconds; the simulator's is instant, so it waits for the next second to
        keep STARTUP_TIME_SEC (whole seconds) different across a restart."""
        before = self.props.get("ADMIN_MODE")
        self.props = {**DEFAULT_PROPERTIES, **read_config(self.config_path),
                      "PORT_NO": self.port, "REPLICATION_PORT_NO": self.configured_replication_port}
        if before is not None and before != self.props["ADMIN_MODE"]:
            self.admin_mode_changes.append((time.time(), self.props["ADMIN_MODE"]))
        now = time.time()
        if int(now) <= self.startup_time:
            time.sleep(self.startup_time + 1 - now)
        self.startup_time = int(time.time())

    # ------------------------------------------------------------------ helpers
    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the server's store (metadata, views, replication objects)."""
        conn = getattr(self._local, "db", None)
        if conn is None:
            conn = connect_sqlite(self.db_path)
            self._local.db = conn
            self._connections.append(conn)
        return conn

    def close_store(self) -> None:
        for conn in self._connections:
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                pass  # made in another thread that is gone; the process exit closes it
        self._connections.clear()

    class tx:
        """BEGIN IMMEDIATE ... COMMIT on a connection (ROLLBACK on error)."""

        def __init__(self, db: sqlite3.Connection):
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: object, *rest: object) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    @property
    def replication_port(self) -> int:
        return self.props["REPLICATION_PORT_NO"]

    def table(self, user: str, name: str, db: sqlite3.Connection | None = None) -> TableDef | None:
        row = (db or self.db).execute("SELECT table_id, columns, pk FROM __tables WHERE user=? AND name=?",
                                      (user, name)).fetchone()
        if row is None:
            return None
        return TableDef(user, name, row[0], [sp.ColumnDef.from_json(c) for c in json.loads(row[1])],
                        json.loads(row[2]))

    def require_table(self, user: str, name: str, db: sqlite3.Connection | None = None,
                      code: str = "31031") -> TableDef:
        tdef = self.table(user, name, db)
        if tdef is None:
            raise error(code, name=name if code == "61111" else f"{user}.{name}")
        return tdef

    def unique_keys(self, user: str, name: str, db: sqlite3.Connection | None = None) -> list[tuple[str, ...]]:
        """The column lists of the table's unique indexes (not its primary key), sorted."""
        rows = (db or self.db).execute("SELECT columns FROM __indexes WHERE tbl_user=? AND tbl=? AND is_unique=1",
                                       (user, name)).fetchall()
        return sorted(tuple(json.loads(r[0])) for r in rows)

    def save_table(self, db: sqlite3.Connection, tdef: TableDef) -> None:
        db.execute("INSERT OR REPLACE INTO __tables VALUES (?, ?, ?, ?, ?)",
                   (tdef.user, tdef.name, tdef.table_id, json.dumps([c.to_json() for c in tdef.columns]),
                    json.dumps(tdef.pk)))

    def replications_of(self, user: str, name: str, db: sqlite3.Connection | None = None) -> list[str]:
        rows = (db or self.db).execute(
            "SELECT rep FROM __repl_items WHERE local_user=? AND local_table=? ORDER BY rep", (user, name))
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ sessions
    def login(self, user: str, password: str, sysdba: bool, client_info: str, comm_name: str) -> Session:
        user = user.upper()
        with self.lock:
            if not self.up:
                raise error("50032", detail=f"server {self.name} is down")
            # the order of mmcTask::authenticate: the user, SYSDBA rights, the password, admin mode
            row = self.db.execute("SELECT password FROM __users WHERE name=?", (user,)).fetchone()
            if row is None:
                raise error("31010")
            if sysdba and user not in SYSDBA_USERS:
                raise error("41043")
            if row[0] != password:
                raise error("4102E")
            if self.props["ADMIN_MODE"] and not (sysdba and user in SYSDBA_USERS):
                raise error("4106E")
            if sysdba and any(s.sysdba for s in self.sessions.values()):
                raise error("41041")
            session = Session(self._next_session, user, sysdba, client_info, comm_name, int(time.time()),
                              connect_sqlite(self.db_path))
            self._next_session += 1
            self.sessions[session.id] = session
            return session

    def logout(self, session: Session) -> None:
        with self.lock:
            self.sessions.pop(session.id, None)
        if not session.closed:
            session.closed = True
            try:
                if session.in_tx:
                    session.db.execute("ROLLBACK")
            finally:
                session.db.close()

    def disconnect_all(self) -> None:
        for session in list(self.sessions.values()):
            self.logout(session)

    # ------------------------------------------------------------------ execution
    def execute(self, session: Session, sql: str, params: list[Any] | None = None) -> Result:
        params = list(params or [])
        for i, fault in enumerate(self.faults):
            pattern, code, skip = fault
            if pattern.search(sql) and skip > 0:
                fault[2] -= 1
                break
            if pattern.search(sql):
                del self.faults[i]
                if code == "DOWN" and self.on_crash is not None:
                    # the server dies on this statement: it is not executed, the client loses the link
                    threading.Thread(target=self.on_crash, daemon=True).start()
                    raise error("51043", detail=f"server {self.name} went down (injected fault)")
                if code == "RESTART":
                    # the statement runs; the server restarts when this session ends (between two steps)
                    session.restart_at_logout = True
                    break
                if code.startswith("SLOW:"):
                    # the statement takes this many seconds more (a DDL on a big table), then runs
                    time.sleep(float(code.split(":", 1)[1]))
                    break
                raise error(code, detail="(injected fault)")
        stmt = sp.parse(sql)
        handler: Callable[[Session, Any, list[Any]], Result] = getattr(self, "_do_" + type(stmt).__name__)
        return handler(session, stmt, params)

    def set_autocommit(self, session: Session, value: bool) -> None:
        if value and session.in_tx:
            self._end_tx(session, commit=True)
        session.autocommit = value

    def _end_tx(self, session: Session, commit: bool) -> None:
        if session.in_tx:
            session.db.execute("COMMIT" if commit else "ROLLBACK")
            session.in_tx = False

    def commit(self, session: Session) -> None:
        self._end_tx(session, commit=True)

    def rollback(self, session: Session) -> None:
        self._end_tx(session, commit=False)

    def _do_Commit(self, session: Session, stmt: sp.Commit, params: list) -> Result:
        self.commit(session)
        return Result("Commit success.")

    def _do_Rollback(self, session: Session, stmt: sp.Rollback, params: list) -> Result:
        self.rollback(session)
        return Result("Rollback success.")

    def _write(self, session: Session, work: Callable[[sqlite3.Connection], Result]) -> Result:
        """Run DML in the session's transaction (its own, when autocommit), statement-atomic."""
        db = session.db
        if not session.in_tx:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                raise error("11075") from None
            session.in_tx = True
        db.execute("SAVEPOINT stmt")
        try:
            result = work(db)
        except sqlite3.IntegrityError as exc:
            db.execute("ROLLBACK TO stmt")
            db.execute("RELEASE stmt")
            self._finish_autocommit(session, ok=False)
            raise error("31074") if "NOT NULL" in str(exc) else error("11058") from None
        except BaseException:
            db.execute("ROLLBACK TO stmt")
            db.execute("RELEASE stmt")
            self._finish_autocommit(session, ok=False)
            raise
        db.execute("RELEASE stmt")
        self._finish_autocommit(session, ok=True)
        return result

    def _check_unique_keys(self, db: sqlite3.Connection, tdef: TableDef) -> None:
        """ERR-11058 where a multi-column unique index now holds two equal keys with some NULLs: Altibase
        compares NULL equal to NULL in a key and exempts only all-NULL keys; SQLite's own check lets
        (1, NULL) in twice."""
        for columns in self.unique_keys(tdef.user, tdef.name, db):
            if len(columns) > 1 and duplicate_key(db, sqlite_name(tdef.user, tdef.name), columns,
                                                   with_a_null=True) is not None:
                raise error("11058")

    def _finish_autocommit(self, session: Session, ok: bool) -> None:
        if session.autocommit:
            self._end_tx(session, commit=ok)

    def _ddl(self, session: Session, work: Callable[[sqlite3.Connection], None], message: str) -> Result:
        """DDL commits the session's open transaction first, then runs atomically on its own."""
        self._end_tx(session, commit=True)
        with self.lock:
            try:
                with self.tx(session.db) as db:
                    work(db)
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc):
                    raise error("11075") from None
                raise
            self.schema_version += 1
        return Result(message)

    # ------------------------------------------------------------------ DDL
    def _check_ddl_allowed(self, tdef: TableDef, db: sqlite3.Connection) -> None:
        if self.replications_of(tdef.user, tdef.name, db) and not self.props["REPLICATION_DDL_ENABLE"]:
            raise error("312C4")

    def _do_CreateTable(self, session: Session, stmt: sp.CreateTable, params: list) -> Result:
        user, name = stmt.table.qualified(session.user)
        names = [c.name for c in stmt.columns]
        if len(set(names)) != len(names):
            raise error("31022")
        for col in [*stmt.primary_key, *(c for key in stmt.unique_keys for c in key)]:
            if col not in names:
                raise error("31058", name=col)

        def work(db: sqlite3.Connection) -> None:
            if self.table(user, name, db) is not None:
                raise error("31022")
            table_id = (db.execute("SELECT COALESCE(MAX(table_id), 1000) + 1 FROM __tables").fetchone()[0])
            columns = [sp.ColumnDef(c.name, c.type_name, c.precision, c.scale,
                                    c.nullable and c.name not in stmt.primary_key, c.default) for c in stmt.columns]
            tdef = TableDef(user, name, table_id, columns, list(stmt.primary_key))
            self.save_table(db, tdef)
            cols = ", ".join(f'"{c}"' for c in names)
            pk = f', PRIMARY KEY ({", ".join(chr(34) + c + chr(34) for c in stmt.primary_key)})' if stmt.primary_key else ""
            db.execute(f"CREATE TABLE {sqlite_name(user, name)} ({cols}{pk})")
            for number, key in enumerate(stmt.unique_keys):
                # a UNIQUE constraint's index, system-named as Altibase names it (qdbCommon.cpp)
                index = f"{CONSTRAINT_INDEX_PREFIX}{1_000_000 + table_id * 100 + number}"
                keys = ", ".join(f'"{c}"' for c in key)
                db.execute(f'CREATE UNIQUE INDEX "{user}.{index}" ON {sqlite_name(user, name)} ({keys})')
                db.execute("INSERT INTO __indexes VALUES (?, ?, ?, ?, ?, ?)",
                           (user, index, user, name, json.dumps(key), 1))

        return self._ddl(session, work, "Create success.")

    def _do_DropTable(self, session: Session, stmt: sp.DropTable, params: list) -> Result:
        user, name = stmt.table.qualified(session.user)

        def work(db: sqlite3.Connection) -> None:
            tdef = self.require_table(user, name, db)
            if self.replications_of(user, name, db):
                raise error("3103F")
            db.execute(f"DROP TABLE {sqlite_name(user, name)}")
            db.execute("DELETE FROM __tables WHERE user=? AND name=?", (tdef.user, tdef.name))
            db.execute("DELETE FROM __indexes WHERE tbl_user=? AND tbl=?", (tdef.user, tdef.name))

        return self._ddl(session, work, "Drop success.")

    def _do_AlterTableAdd(self, session: Session, stmt: sp.AlterTableAdd, params: list) -> Result:
        user, name = stmt.table.qualified(session.user)

        def work(db: sqlite3.Connection) -> None:
            tdef = self.require_table(user, name, db)
            self._check_ddl_allowed(tdef, db)
            rows = db.execute(f"SELECT COUNT(*) FROM {sqlite_name(user, name)}").fetchone()[0]
            for col in stmt.columns:
                if tdef.column(col.name):
                    raise error("31022")
                if not col.nullable and col.default is None and rows:
                    raise error("3104A")  # qdn.cpp: a full scan finds a row
                default = "" if col.default is None else " DEFAULT " + _sqlite_literal(col.default)
                db.execute(f'ALTER TABLE {sqlite_name(user, name)} ADD COLUMN "{col.name}"{default}')
                tdef.columns.append(col)
            self.save_table(db, tdef)

        return self._ddl(session, work, "Alter success.")

    def _do_AlterTableDrop(self, session: Session, stmt: sp.AlterTableDrop, params: list) -> Result:
        """qdbAlter.cpp validateDropCol/executeDropCol on a table out of every replication: the last column
        is refused (ERR-31026), a column of a multi-column PRIMARY KEY too (ERR-31321); a single-column
        primary key goes with its column (createConstraintFromInfo does not re-create it), and so does
        every index the column is a key of (findDelIndexAndDelMeta)."""
        user, name = stmt.table.qualified(session.user)

        def work(db: sqlite3.Connection) -> None:
            tdef = self.require_table(user, name, db)
            self._check_ddl_allowed(tdef, db)
            for col in stmt.columns:
                if tdef.column(col) is None:
                    raise error("31058", name=col)
                if len(tdef.columns) == 1:
                    raise error("31026")
                if col in tdef.pk and len(tdef.pk) > 1:
                    raise error("31321")
                for index, idx_cols in db.execute("SELECT name, columns FROM __indexes WHERE tbl_user=? AND tbl=?",
                                                  (user, name)).fetchall():
                    if index.startswith(CONSTRAINT_INDEX_PREFIX) and col in json.loads(idx_cols) \
                            and len(json.loads(idx_cols)) > 1:
                        raise error("31321")  # qdbAlter.cpp validateDropCol: any multi-column unique key
            for col in stmt.columns:
                for idx_user, idx_name, idx_cols in db.execute(
                        "SELECT user, name, columns FROM __indexes WHERE tbl_user=? AND tbl=?", (user, name)).fetchall():
                    if col in json.loads(idx_cols):
                        db.execute(f'DROP INDEX "{idx_user}.{idx_name}"')
                        db.execute("DELETE FROM __indexes WHERE user=? AND name=?", (idx_user, idx_name))
                if col in tdef.pk:
                    self._drop_primary_key(db, tdef)
                db.execute(f'ALTER TABLE {sqlite_name(user, name)} DROP COLUMN "{col}"')
                tdef.columns = [c for c in tdef.columns if c.name != col]
            self.save_table(db, tdef)

        return self._ddl(session, work, "Alter success.")

    @staticmethod
    def _drop_primary_key(db: sqlite3.Connection, tdef: TableDef) -> None:
        """SQLite cannot drop a key column: copy the rows into the same table without its key."""
        table = sqlite_name(tdef.user, tdef.name)
        scratch = sqlite_name(tdef.user, f"{tdef.name}__rebuild")
        cols = ", ".join(f'"{c.name}"' for c in tdef.columns)
        db.execute(f"CREATE TABLE {scratch} ({cols})")
        db.execute(f"INSERT INTO {scratch} SELECT {cols} FROM {table}")
        db.execute(f"DROP TABLE {table}")
        db.execute(f"ALTER TABLE {scratch} RENAME TO {table}")
        for idx_user, idx_name, idx_cols, unique in db.execute(
                "SELECT user, name, columns, is_unique FROM __indexes WHERE tbl_user=? AND tbl=?",
                (tdef.user, tdef.name)).fetchall():
            keys = ", ".join(f'"{c}"' for c in json.loads(idx_cols))
            db.execute(f'CREATE {"UNIQUE " if unique else ""}INDEX "{idx_user}.{idx_name}" ON {table} ({keys})')
        tdef.pk = []

    def _do_AlterTableModify(self, session: Session, stmt: sp.AlterTableModify, params: list) -> Result:
        user, name = stmt.table.qualified(session.user)

        def work(db: sqlite3.Connection) -> None:
            tdef = self.require_table(user, name, db)
            self._check_ddl_allowed(tdef, db)
            for col in stmt.columns:
                old = tdef.column(col.name)
                if old is None:
                    raise error("31058", name=col.name)
                if not col.nullable:
                    nulls = db.execute(f'SELECT COUNT(*) FROM {sqlite_name(user, name)} '
                                       f'WHERE "{col.name}" IS NULL').fetchone()[0]
                    if nulls:
                        raise error("31074")
                if col.name in tdef.pk:
                    col.nullable = False
                tdef.columns[tdef.columns.index(old)] = col
            self.save_table(db, tdef)

        return self._ddl(session, work, "Alter success.")

    def _do_Truncate(self, session: Session, stmt: sp.Truncate, params: list) -> Result:
        user, name = stmt.table.qualified(session.user)

        def work(db: sqlite3.Connection) -> None:
            tdef = self.require_table(user, name, db)
            self._check_ddl_allowed(tdef, db)
            db.execute(f"DELETE FROM {sqlite_name(user, name)}")

        return self._ddl(session, work, "Truncate success.")

    def _do_CreateIndex(self, session: Session, stmt: sp.CreateIndex, params: list) -> Result:
        user, name = stmt.table.qualified(session.user)
        idx_user, idx_name = stmt.index.qualified(session.user)

        def work(db: sqlite3.Connection) -> None:
            tdef = self.require_table(user, name, db)
            self._check_ddl_allowed(tdef, db)
            if db.execute("SELECT 1 FROM __indexes WHERE user=? AND name=?", (idx_user, idx_name)).fetchone():
                raise error("3104C")
            for col in stmt.columns:
                if tdef.column(col) is None:
                    raise error("31058", name=col)
            cols = ", ".join(f'"{c}"' for c in stmt.columns)
            if stmt.unique and duplicate_key(db, sqlite_name(user, name), stmt.columns) is not None:
                raise error("11058")  # smnbValuebaseBuild.cpp isRowUnique, while building the index
            unique = "UNIQUE " if stmt.unique else ""
            db.execute(f'CREATE {unique}INDEX "{idx_user}.{idx_name}" ON {sqlite_name(user, name)} ({cols})')
            db.execute("INSERT INTO __indexes VALUES (?, ?, ?, ?, ?, ?)",
                       (idx_user, idx_name, user, name, json.dumps(stmt.columns), int(stmt.unique)))

        return self._ddl(session, work, "Create success.")

    def _do_DropIndex(self, session: Session, stmt: sp.DropIndex, params: list) -> Result:
        idx_user, idx_name = stmt.index.qualified(session.user)

        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT tbl_user, tbl FROM __indexes WHERE user=? AND name=?",
                             (idx_user, idx_name)).fetchone()
            if row is not None and idx_name.startswith(CONSTRAINT_INDEX_PREFIX):
                raise error("3119E")  # a UNIQUE constraint's index
            if row is None:
                pk_owner = re.fullmatch(r"__SYS_IDX_ID_(\d+)", idx_name)
                if pk_owner and db.execute("SELECT 1 FROM __tables WHERE table_id=? AND pk != '[]'",
                                           (int(pk_owner[1]),)).fetchone():
                    raise error("3119E")  # qdd.cpp: a key constraint's index goes with ALTER TABLE only
                raise error("31014")
            self._check_ddl_allowed(self.require_table(row[0], row[1], db), db)
            db.execute(f'DROP INDEX "{idx_user}.{idx_name}"')
            db.execute("DELETE FROM __indexes WHERE user=? AND name=?", (idx_user, idx_name))

        return self._ddl(session, work, "Drop success.")

    def _do_CreateUser(self, session: Session, stmt: sp.CreateUser, params: list) -> Result:
        if session.user != "SYS":
            raise error("31084")

        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM __users WHERE name=?", (stmt.user,)).fetchone():
                raise error("3103D")
            next_id = db.execute("SELECT MAX(user_id) + 1 FROM __users").fetchone()[0]
            db.execute("INSERT INTO __users VALUES (?, ?, ?)", (stmt.user, stmt.password, next_id))

        return self._ddl(session, work, "Create success.")

    def _do_DropUser(self, session: Session, stmt: sp.DropUser, params: list) -> Result:
        if session.user != "SYS" or stmt.user in SYSDBA_USERS:
            raise error("31084")

        def work(db: sqlite3.Connection) -> None:
            if db.execute("DELETE FROM __users WHERE name=?", (stmt.user,)).rowcount == 0:
                raise error("3103C")

        return self._ddl(session, work, "Drop success.")

    # ------------------------------------------------------------------ DML
    def _log(self, db: sqlite3.Connection, tdef: TableDef, op: str, payload: dict) -> None:
        """Every change is logged, replicated table or not: a sender reads all log, and the gap (V$REPGAP)
        and FLUSH count all of it. ``reps`` tags the replications the change belongs to."""
        reps = self.replications_of(tdef.user, tdef.name, db)
        body = json.dumps(payload, default=str)
        db.execute("INSERT INTO __replog(reps, user, tbl, op, payload, size) VALUES (?, ?, ?, ?, ?, ?)",
                   (json.dumps(reps), tdef.user, tdef.name, op, body, len(body) + 64))

    def _check_values(self, tdef: TableDef, row: dict[str, Any]) -> None:
        for name, value in row.items():
            col = tdef.column(name)
            if col is None:
                raise error("31058", name=name)
            if value is None:
                if not col.nullable:
                    raise error("31074", column=f" : {name}")
            elif col.type_name in NUMERIC_TYPES and not isinstance(value, (int, float)):
                try:
                    float(value)
                except (TypeError, ValueError):
                    raise error("21011", detail=repr(value)) from None

    def _do_Insert(self, session: Session, stmt: sp.Insert, params: list) -> Result:
        user, name = stmt.table.qualified(session.user)
        tdef = self.require_table(user, name)
        columns = stmt.columns or [c.name for c in tdef.columns]
        if len(columns) != len(stmt.values):
            raise error("31053" if len(stmt.values) < len(columns) else "31054")
        _check_columns(stmt.values, {None: set()})
        values = []
        scratch = _scratch()
        for expr in stmt.values:
            values.append(scratch.execute("SELECT " + expr.sql, sp.bind(expr.params, params, session.id))
                          .fetchone()[0])
        row = dict(zip(columns, values, strict=True))
        for col in tdef.columns:
            if col.name not in row:
                row[col.name] = col.default
        self._check_values(tdef, row)

        def work(db: sqlite3.Connection) -> Result:
            cols = ", ".join(f'"{c}"' for c in row)
            db.execute(f"INSERT INTO {sqlite_name(user, name)} ({cols}) VALUES ({', '.join('?' * len(row))})",
                       list(row.values()))
            self._check_unique_keys(db, tdef)
            self._log(db, tdef, "I", {"row": row})
            return Result("1 row inserted.", rowcount=1)

        return self._write(session, work)

    def _do_Update(self, session: Session, stmt: sp.Update, params: list) -> Result:
        user, name = stmt.table.qualified(session.user)
        tdef = self.require_table(user, name)
        for col, _ in stmt.assignments:
            if tdef.column(col) is None:
                raise error("31058", name=col)
        _check_columns([expr for _, expr in stmt.assignments], {None: {c.name for c in tdef.columns}})
        set_sql = ", ".join(f'"{col}" = {expr.sql}' for col, expr in stmt.assignments)
        set_params = [p for _, expr in stmt.assignments for p in sp.bind(expr.params, params, session.id)]
        where_sql, where_params = self._where(stmt.where, params, session, tdef)
        table = sqlite_name(user, name)

        def work(db: sqlite3.Connection) -> Result:
            pk_cols = ", ".join(f'"{c}"' for c in tdef.pk) or "rowid"
            targets = db.execute(f"SELECT rowid, {pk_cols} FROM {table}{where_sql}", where_params).fetchall()
            count = 0
            for rowid, *old_pk in targets:
                db.execute(f"UPDATE {table} SET {set_sql} WHERE rowid = ?", [*set_params, rowid])
                changed = [c for c, _ in stmt.assignments]
                new = db.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in changed)} FROM {table} "
                                 f"WHERE rowid = ?", (rowid,)).fetchone()
                after = dict(zip(changed, new, strict=True))
                self._check_values(tdef, after)
                self._log(db, tdef, "U", {"pk": dict(zip(tdef.pk, old_pk, strict=True)), "set": after})
                count += 1
            self._check_unique_keys(db, tdef)
            return Result(("No rows" if count == 0 else "1 row" if count == 1 else f"{count} rows") + " updated.",
                          rowcount=count)

        return self._write(session, work)

    def _do_Delete(self, session: Session, stmt: sp.Delete, params: list) -> Result:
        user, name = stmt.table.qualified(session.user)
        tdef = self.require_table(user, name)
        where_sql, where_params = self._where(stmt.where, params, session, tdef)
        table = sqlite_name(user, name)

        def work(db: sqlite3.Connection) -> Result:
            pk_cols = ", ".join(f'"{c}"' for c in tdef.pk) or "rowid"
            targets = db.execute(f"SELECT rowid, {pk_cols} FROM {table}{where_sql}", where_params).fetchall()
            for rowid, *pk in targets:
                db.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
                self._log(db, tdef, "D", {"pk": dict(zip(tdef.pk, pk, strict=True))})
            count = len(targets)
            return Result(("No rows" if count == 0 else "1 row" if count == 1 else f"{count} rows") + " deleted.",
                          rowcount=count)

        return self._write(session, work)

    def _where(self, where: sp.Expr | None, params: list, session: Session,
               tdef: TableDef) -> tuple[str, list]:
        if where is None:
            return "", []
        _check_columns([where], {None: {c.name for c in tdef.columns}})
        return " WHERE " + where.sql, sp.bind(where.params, params, session.id)

    # ------------------------------------------------------------------ SELECT
    def _do_Select(self, session: Session, stmt: sp.Select, params: list) -> Result:
        from altibase_sim import views

        view_sources = [views.lookup(src) for src, _ in stmt.sources]
        if all(v is not None for v in view_sources):
            db = _scratch()
            for view in {v.name: v for v in view_sources}.values():
                views.materialize(db, view, self, session)
            names = {src.name: f'"{v.name}"' for (src, _), v in zip(stmt.sources, view_sources, strict=True)}
        elif any(v is not None for v in view_sources):
            raise error("31001", detail="a query may not mix system views and tables")
        else:
            db = session.db
            names = {}
            for src, _ in stmt.sources:
                user, name = src.qualified(session.user)
                self.require_table(user, name)
                names[src.name] = sqlite_name(user, name)
        known: dict[str | None, set[str]] = {}
        for (src, alias), view in zip(stmt.sources, view_sources, strict=True):
            if view is not None:
                cols = set(view.columns_of(self))
            else:
                cols = {c.name for c in self.require_table(*src.qualified(session.user)).columns}
            known.setdefault(None, set()).update(cols)
            known[alias or src.name] = cols
        aliases = {item.alias or item.expr.text for item in stmt.items if not item.star}
        exprs = ([i.expr for i in stmt.items if not i.star] + ([stmt.where] if stmt.where else []) + stmt.group_by
                 + ([stmt.having] if stmt.having else []))
        _check_columns(exprs, known)
        _check_columns([e for e, _ in stmt.order_by], known, aliases)
        from_sql = ", ".join(f'{names[src.name]}{" " + chr(34) + alias + chr(34) if alias else ""}'
                             for src, alias in stmt.sources)
        bound: list[Any] = []
        select_parts = []
        for item in stmt.items:
            if item.star:
                select_parts.append("*")
            else:
                heading = item.alias or (item.expr.columns[0][1] if _is_column_ref(item.expr) else item.expr.text)
                select_parts.append(f'{item.expr.sql} AS "{heading}"')
                bound += sp.bind(item.expr.params, params, session.id)
        sql = f"SELECT {'DISTINCT ' if stmt.distinct else ''}{', '.join(select_parts)} FROM {from_sql}"
        if stmt.where:
            sql += " WHERE " + stmt.where.sql
            bound += sp.bind(stmt.where.params, params, session.id)
        if stmt.group_by:
            sql += " GROUP BY " + ", ".join(e.sql for e in stmt.group_by)
            bound += [p for e in stmt.group_by for p in sp.bind(e.params, params, session.id)]
        if stmt.having:
            sql += " HAVING " + stmt.having.sql
            bound += sp.bind(stmt.having.params, params, session.id)
        if stmt.order_by:
            sql += " ORDER BY " + ", ".join(f"{e.sql} {d}" for e, d in stmt.order_by)
            bound += [p for e, _ in stmt.order_by for p in sp.bind(e.params, params, session.id)]
        if stmt.limit is not None:
            sql += f" LIMIT {stmt.limit}"
        try:
            cur = db.execute(sql, bound)
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "no such column" in text:
                raise error("31058", name=text.split(":", 1)[1].strip().upper()) from None
            raise error("31001", detail=text) from None
        columns = [(d[0], 0) for d in cur.description]
        rows = [list(r) for r in cur.fetchall()]
        count = len(rows)
        feedback = "No rows selected." if count == 0 else f"{count} {'row' if count == 1 else 'rows'} selected."
        return Result(feedback, columns, rows, count)

    # ------------------------------------------------------------------ ALTER SYSTEM
    def _do_AlterSystemSet(self, session: Session, stmt: sp.AlterSystemSet, params: list) -> Result:
        name = stmt.name.upper()
        if session.user not in SYSDBA_USERS:
            raise error("311B1")  # the ALTER SYSTEM privilege is checked before the property
        if name == "ADMIN_MODE" and session.user != "SYS":
            raise error("4107F")
        allowed = SETTABLE.get(name, ())
        if allowed == ():
            raise error("0104B", name=name)
        if not isinstance(stmt.value, int) or stmt.value < 0 or (allowed is not None and stmt.value not in allowed):
            raise error("0104C", name=name)
        with self.lock:  # memory only: the configuration file is not touched (as on a real server)
            if name == "ADMIN_MODE" and self.props[name] != stmt.value:
                self.admin_mode_changes.append((time.time(), stmt.value))  # for measuring outages
            self.props[name] = stmt.value
        return Result("Alter success.")

    # ------------------------------------------------------------------ replication statements
    def _replication_statement(self, session: Session, stmt: Any, params: list) -> Result:
        if session.user != "SYS":
            raise error("31084")
        if not self.props["REPLICATION_PORT_NO"]:
            raise error("61023")
        assert self.replication is not None
        return self.replication.execute(session, stmt)

    _do_CreateReplication = _replication_statement
    _do_DropReplication = _replication_statement
    _do_AlterReplication = _replication_statement

    def rep_gap_rows(self) -> list[dict]:
        assert self.replication is not None
        return self.replication.gap_rows()

    def gap_units(self, size: int) -> int:
        return math.ceil(size / max(1, self.props["REPLICATION_GAP_UNIT"]))


def _is_column_ref(expr: sp.Expr) -> bool:
    """A bare (possibly qualified) column: iSQL heads it with the column's name alone."""
    return len(expr.columns) == 1 and re.fullmatch(r'"[^"]+"(\."[^"]+")?', expr.sql) is not None


def _check_columns(exprs: list[sp.Expr], known: dict[str | None, set[str]], extra: set[str] = frozenset()) -> None:
    """Every column an expression names must exist (SQLite would quietly read "X" as a string)."""
    for expr in exprs:
        for qualifier, column in expr.columns:
            if column in extra and qualifier is None:
                continue
            if column not in known.get(qualifier, ()):
                raise error("31058", name=f"{qualifier + '.' if qualifier else ''}{column}")


_local = threading.local()


def duplicate_key(db: sqlite3.Connection, table: str, columns: Any, with_a_null: bool = False) -> tuple | None:
    """A key two rows share under a unique index, as Altibase judges it (NULL equals NULL; a key of only
    NULLs is exempt), or None. ``with_a_null``: only keys holding a NULL (SQLite checks the rest)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    where = f"NOT ({' AND '.join(f'{chr(34)}{c}{chr(34)} IS NULL' for c in columns)})"
    if with_a_null:
        where += f" AND ({' OR '.join(f'{chr(34)}{c}{chr(34)} IS NULL' for c in columns)})"
    return db.execute(f"SELECT {cols} FROM {table} WHERE {where} GROUP BY {cols} HAVING COUNT(*) > 1 LIMIT 1"
                      ).fetchone()


def _scratch() -> sqlite3.Connection:
    """A per-thread in-memory SQLite for evaluating values and system views."""
    db = getattr(_local, "db", None)
    if db is None:
        db = sqlite3.connect(":memory:", isolation_level=None)
        add_functions(db)
        _local.db = db
    return db


def _sqlite_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)
