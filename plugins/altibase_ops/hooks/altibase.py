"""AltibaseHook: DB-API sessions on one Altibase server, from an Airflow Connection.

Connection type ``altibase``: host (server or Kubernetes Service name), port (service port, 20300 by
default), login (SYS by default), password, and the ``backend`` extra, which is required:
``odbc`` (production; see ``altibase_ops.backends.odbc`` for the driver settings) or ``simulator``
(the embedded simulator). A missing or unknown backend is an error naming the extra.

The one way this package runs SQL on a server: the hook's ``run`` / ``get_records`` / ``get_first``
(shaped like Airflow's SQL hooks, each on a fresh connection closed at once), or several statements
on one connection through ``session()``. Cursor handling and error translation live here only:
every database error leaves as ``AltibaseServerError`` with the server, the Altibase code and the
statement. Statements that change state go through ``altibase_ops.sql.steps.run_script``, which adds
the "already done" table on top of a session.

Sessions are never kept: in admin mode a SYSDBA session is the server's only one (ERR-41041 for a
second), so whoever opens one closes it as soon as its work is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk import BaseHook, Connection

from altibase_ops.backends import app_info, backend_module, database_error
from altibase_ops.exceptions import AltibaseServerError

DEFAULT_PORT = 20300
DEFAULT_USER = "SYS"


def server_name(conn: Connection) -> str:
    """How errors and logs name a server: the connection id and its address."""
    return f"{conn.conn_id} ({conn.host}:{conn.port or DEFAULT_PORT})"


def _statement(sql: str) -> str:
    # DB-API takes one statement without its terminator; templates end theirs with ';' for iSQL.
    return sql.strip().rstrip(";").strip()


class AltibaseSession:
    """One open connection to one server; every error leaves as AltibaseServerError."""

    def __init__(self, connection: Any, server: str):
        self.connection = connection
        self.server = server

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> Any:
        """Run one statement; returns the cursor (rows, ``rowcount``, ``description``)."""
        statement = _statement(sql)
        cursor = self.connection.cursor()
        try:
            cursor.execute(statement, tuple(parameters))
        except Exception as exc:
            found = database_error(exc)
            if found is None:
                raise
            code, message = found
            raise AltibaseServerError(self.server, code, message, action=f"{statement!r}") from None
        return cursor

    def records(self, sql: str, parameters: Iterable[Any] = ()) -> list[tuple]:
        return [tuple(row) for row in self._fetch(self.execute(sql, parameters), sql)]

    def first(self, sql: str, parameters: Iterable[Any] = ()) -> tuple | None:
        rows = self.records(sql, parameters)
        return rows[0] if rows else None

    def dicts(self, sql: str, parameters: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """The rows as ``{COLUMN: value}`` (column names upper-cased, as the catalog reports them)."""
        cursor = self.execute(sql, parameters)
        columns = [column[0].upper() for column in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in self._fetch(cursor, sql)]

    def _fetch(self, cursor: Any, sql: str) -> list[Any]:
        try:
            return cursor.fetchall()
        except Exception as exc:  # a query can fail while its rows are fetched
            found = database_error(exc)
            if found is None:
                raise
            raise AltibaseServerError(self.server, found[0], found[1], action=f"{_statement(sql)!r}") from None
        finally:
            cursor.close()


class AltibaseHook(BaseHook):
    """Sessions on one Altibase server.

    :param altibase_conn_id: the Airflow Connection (type ``altibase``, with a ``backend`` extra).
    :param sysdba: log in with SYSDBA privilege (the only login allowed while ADMIN_MODE = 1; a server
        accepts one SYSDBA session at a time, so close it as soon as the work is done).
    :param client_info: shown in V$SESSION.CLIENT_APP_INFO (the ODBC driver's APP_INFO), so an operator
        can tell the automation's sessions from the application's; cut to what the driver can carry
        (``backends.app_info``), the same on every backend.
    :param login_timeout: seconds to wait for the login.
    """

    conn_name_attr = "altibase_conn_id"
    default_conn_name = "altibase_default"
    conn_type = "altibase"
    hook_name = "Altibase"

    def __init__(
        self,
        altibase_conn_id: str = default_conn_name,
        sysdba: bool = False,
        client_info: str = "airflow",
        login_timeout: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.altibase_conn_id = altibase_conn_id
        self.sysdba = sysdba
        self.client_info = client_info
        self.login_timeout = login_timeout

    def get_conn(self) -> Any:
        """A new DB-API connection (autocommit; the caller closes it); AltibaseServerError when refused."""
        return self._connect(self.get_connection(self.altibase_conn_id))

    def _connect(self, conn: Connection) -> Any:
        user = conn.login or DEFAULT_USER
        return backend_module(conn).connect(
            conn, user=user, sysdba=self.sysdba, client_info=app_info(self.client_info), login_timeout=self.login_timeout,
            server=server_name(conn), action=f"login as {user}{' with SYSDBA' if self.sysdba else ''}",
            log=self.log)

    @contextmanager
    def session(self) -> Iterator[AltibaseSession]:
        """One connection for several statements, closed on leaving the block."""
        conn = self.get_connection(self.altibase_conn_id)  # looked up once for the login and the name
        connection = self._connect(conn)
        try:
            yield AltibaseSession(connection, server_name(conn))
        finally:
            connection.close()

    def run(self, sql: str | Iterable[str], parameters: Iterable[Any] = (),
            handler: Callable[[Any], Any] | None = None) -> Any:
        """Run one statement or several in order on one session; returns ``handler(cursor)`` of the
        last statement (None without a handler), like Airflow's ``DbApiHook.run``."""
        statements = [sql] if isinstance(sql, str) else list(sql)
        result = None
        with self.session() as session:
            for statement in statements:
                cursor = session.execute(statement, parameters)
                result = handler(cursor) if handler else None
        return result

    def get_records(self, sql: str, parameters: Iterable[Any] = ()) -> list[tuple]:
        """All rows of a query, as the DB-API returns them (tuples)."""
        with self.session() as session:
            return session.records(sql, parameters)

    def get_first(self, sql: str, parameters: Iterable[Any] = ()) -> tuple | None:
        """The first row of a query, or None."""
        with self.session() as session:
            return session.first(sql, parameters)

    def get_records_as_dicts(self, sql: str, parameters: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """All rows of a query as ``{COLUMN: value}``."""
        with self.session() as session:
            return session.dicts(sql, parameters)

    def ping(self) -> None:
        """Log in (as configured) and read DUAL once; AltibaseServerError when the server refuses."""
        self.get_first("SELECT DUMMY FROM DUAL")

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's Test button: ``ping``."""
        try:
            self.ping()
        except Exception as exc:
            return False, str(exc)
        return True, f"Connected to Altibase through {self.altibase_conn_id}"
