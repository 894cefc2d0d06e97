"""DB-API 2.0 client for the Altibase simulator.

    conn = connect(host="127.0.0.1", port=20300, user="SYS", password="manager", sysdba=True)
    cur = conn.cursor()
    cur.execute("SELECT REP_NAME, REP_GAP FROM V$REPGAP")

Errors carry the Altibase code: ``exc.code == "312C4"``, ``str(exc) == "[ERR-312C4 : ...]"``.
A host that is a name in the simulator registry (``ALTIBASE_SIM_STATE_DIR``) resolves to that
server's address, the way a Kubernetes Service name resolves in a cluster.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from typing import Any

from altibase_sim import protocol
from altibase_sim.errors import AltibaseError, error
from altibase_sim.registry import resolve_service_address

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"


class Error(AltibaseError):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class OperationalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


_CLASS_BY_CODE = {"31001": ProgrammingError, "31031": ProgrammingError, "31058": ProgrammingError,
                  "11058": IntegrityError, "31074": IntegrityError, "3104A": IntegrityError,
                  "50032": OperationalError, "51043": OperationalError}


def _raise(code: str, message: str) -> None:
    raise _CLASS_BY_CODE.get(code, DatabaseError)(code, message)


def connect(host: str = "127.0.0.1", port: int = 20300, user: str = "SYS", password: str = "manager",
            sysdba: bool = False, client_info: str = "", login_timeout: float = 5.0) -> Connection:
    """Open a session on a simulated server; raises OperationalError (ERR-50032) when unreachable."""
    host, port = resolve_service_address(host, int(port))
    try:
        sock = socket.create_connection((host, port), timeout=login_timeout)
    except OSError as exc:
        err = error("50032", detail=f"{host}:{port}: {exc.strerror or exc}")
        raise OperationalError(err.code, err.message) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(sock, f"{host}:{port}")
    try:
        conn._call({"op": "login", "user": user, "password": password, "sysdba": bool(sysdba),
                    "client_info": client_info})
    except BaseException:
        conn.close()
        raise
    sock.settimeout(None)
    return conn


class Connection:
    def __init__(self, sock: socket.socket, address: str):
        self._sock: socket.socket | None = sock
        self.address = address
        self._autocommit = True

    def _call(self, request: dict) -> dict:
        if self._sock is None:
            raise InterfaceError("FFFFF", "connection is closed")
        try:
            protocol.send_frame(self._sock, request)
            reply = protocol.recv_frame(self._sock)
        except (OSError, ConnectionError) as exc:
            self.close()
            err = error("51043", detail=f"{self.address}: {exc}")
            raise OperationalError(err.code, err.message) from None
        if not reply.get("ok"):
            _raise(reply["code"], reply["message"])
        return reply

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._call({"op": "autocommit", "value": bool(value)})
        self._autocommit = bool(value)

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        self._call({"op": "commit"})

    def rollback(self) -> None:
        self._call({"op": "rollback"})

    def close(self) -> None:
        """Log out and wait for the server to end the session (a SYSDBA slot is free on return)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.settimeout(2.0)
            protocol.send_frame(sock, {"op": "logout"})
            protocol.recv_frame(sock)
        except (OSError, ConnectionError, ValueError):
            pass  # the server is gone already: nothing left to end
        finally:
            sock.close()

    @property
    def closed(self) -> bool:
        return self._sock is None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cursor:
    arraysize = 1

    def __init__(self, connection: Connection):
        self.connection = connection
        self.description: list[tuple] | None = None
        self.rowcount = -1
        self.message = ""
        self._rows: list[tuple] = []
        self._pos = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        reply = self.connection._call({"op": "execute", "sql": sql, "params": list(params)})
        columns = reply.get("columns")
        self.description = ([(name, type_code, None, None, None, None, None) for name, type_code in columns]
                            if columns is not None else None)
        self._rows = [tuple(row) for row in reply.get("rows") or []]
        self._pos = 0
        self.rowcount = reply.get("rowcount", -1)
        self.message = reply.get("message", "")
        return self

    def executemany(self, sql: str, seq_of_params: Sequence[Sequence[Any]]) -> None:
        for params in seq_of_params:
            self.execute(sql, params)

    def fetchone(self) -> tuple | None:
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        size = size or self.arraysize
        rows = self._rows[self._pos:self._pos + size]
        self._pos += len(rows)
        return rows

    def fetchall(self) -> list[tuple]:
        rows = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        self._rows = []

    def setinputsizes(self, sizes: object) -> None:
        pass

    def setoutputsize(self, size: object, column: object = None) -> None:
        pass

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
