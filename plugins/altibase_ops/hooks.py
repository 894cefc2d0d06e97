"""AltibaseHook: a DB-API connection to one Altibase server from an Airflow Connection.

Connection type ``altibase``: host (server or Kubernetes Service name), port (service port, 20300 by
default), login (SYS by default), password, and extra selecting the backend:

- ``{"backend": "odbc", "driver": "/path/libaltibase_odbc-64bit-ul64.so", "nls_use": "UTF8"}`` —
  production: pyodbc and the Altibase ODBC driver (needs unixODBC; pyodbc is imported only here).
- ``{"backend": "simulator"}`` (also the default) — the embedded simulator's DB-API client.

The password never appears in a log line, an exception or a return value: ``odbc_connection_string``
can render a masked copy for logs, and connection errors name the server, the user and the Altibase
error code only.
"""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk import BaseHook, Connection
from airflow.sdk.exceptions import AirflowException

DEFAULT_PORT = 20300
DEFAULT_USER = "SYS"
BACKENDS = ("simulator", "odbc")
MASK = "***"

# pyodbc renders each diagnostic record as "[SQLSTATE] message (native error) (SQLFunction)".
_NATIVE_ERROR = re.compile(r"\((-?\d+)\)\s*\(SQL\w+\)")
_ERR_CODE = re.compile(r"ERR-([0-9A-Fa-f]{5})")


class AltibaseServerError(AirflowException):
    """An Altibase error with the server it came from and its 5-digit hex code."""

    def __init__(self, server: str, code: str | None, message: str, *, action: str):
        self.server = server
        self.code = code
        self.altibase_message = message
        text = f"[ERR-{code} : {message}]" if code else message
        super().__init__(f"Altibase server {server}: {action} failed: {text}")


def _odbc_value(value: str) -> str:
    # ODBC connection-string quoting: braces protect ; = { } and surrounding spaces; } is doubled.
    if value != value.strip() or any(ch in value for ch in ";={}"):
        return "{" + value.replace("}", "}}") + "}"
    return value


def odbc_connection_string(conn: Connection, *, sysdba: bool, masked: bool = False) -> str:
    """The Altibase ODBC connection string for ``conn``; ``masked=True`` hides the password (for logs)."""
    extra = conn.extra_dejson
    driver = extra.get("driver")
    if not driver:
        raise AirflowException(f"Connection {conn.conn_id}: the odbc backend needs extra.driver")
    parts = [
        f"DRIVER={{{driver}}}",
        f"Server={_odbc_value(conn.host or '')}",
        f"PORT={int(conn.port or DEFAULT_PORT)}",
        f"User={_odbc_value(conn.login or DEFAULT_USER)}",
        f"Password={MASK if masked else _odbc_value(conn.password or '')}",
    ]
    if extra.get("nls_use"):
        parts.append(f"NLS_USE={_odbc_value(str(extra['nls_use']))}")
    if extra.get("login_timeout"):
        parts.append(f"LOGIN_TIMEOUT={int(extra['login_timeout'])}")
    if sysdba:
        parts.append("PRIVILEGE=SYSDBA")
    return ";".join(parts)


def parse_odbc_error(exc: BaseException) -> tuple[str | None, str]:
    """(Altibase code, message) from a pyodbc error; the code is the native error as 5 hex digits."""
    args = getattr(exc, "args", ())
    text = str(args[1]) if len(args) > 1 else str(exc)
    sqlstate = str(args[0]) if len(args) > 1 else None
    if match := _ERR_CODE.search(text):
        return match.group(1).upper(), text
    native = _NATIVE_ERROR.search(text)
    if native and int(native.group(1)) > 0:
        return f"{int(native.group(1)):05X}", text
    return None, f"SQLSTATE {sqlstate}: {text}" if sqlstate else text


class AltibaseHook(BaseHook):
    """DB-API connection to one Altibase server.

    :param altibase_conn_id: the Airflow Connection (type ``altibase``).
    :param sysdba: log in with SYSDBA privilege (the only login allowed while ADMIN_MODE = 1; a server
        accepts one SYSDBA session at a time, so close it as soon as the work is done).
    :param client_info: shown in V$SESSION.CLIENT_APP_INFO (simulator backend), so an operator can
        tell the automation's sessions from the application's.
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
        """A new DB-API connection (the caller closes it); raises AltibaseServerError when refused."""
        return self._connect(self.get_connection(self.altibase_conn_id))

    def _connect(self, conn: Connection) -> Any:
        backend = conn.extra_dejson.get("backend", "simulator")
        user = conn.login or DEFAULT_USER
        action = f"login as {user}{' with SYSDBA' if self.sysdba else ''}"
        if backend == "simulator":
            from altibase_sim import dbapi

            try:
                return dbapi.connect(
                    host=conn.host or "127.0.0.1",
                    port=int(conn.port or DEFAULT_PORT),
                    user=user,
                    password=conn.password or "",
                    sysdba=self.sysdba,
                    client_info=self.client_info,
                    login_timeout=self.login_timeout,
                )
            except dbapi.Error as exc:
                raise AltibaseServerError(server_name(conn), exc.code, exc.message, action=action) from None
        if backend == "odbc":
            # Imported here only: pyodbc needs unixODBC, which the simulator backend does not.
            import pyodbc

            self.log.info("Connecting with ODBC: %s", odbc_connection_string(conn, sysdba=self.sysdba, masked=True))
            try:
                return pyodbc.connect(
                    odbc_connection_string(conn, sysdba=self.sysdba),
                    autocommit=True,
                    timeout=int(self.login_timeout),
                )
            except pyodbc.Error as exc:
                code, message = parse_odbc_error(exc)
                # "from None": the pyodbc error's frames hold the connection string with the
                # password; a chained traceback would print their locals in some log setups.
                raise AltibaseServerError(server_name(conn), code, message, action=action) from None
        raise AirflowException(
            f"Connection {conn.conn_id}: unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}"
        )

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's Test button: log in (as configured) and read DUAL once."""
        try:
            self.get_records("SELECT DUMMY FROM DUAL")
        except Exception as exc:
            return False, str(exc)
        return True, f"Connected to Altibase through {self.altibase_conn_id}"

    def get_records(self, sql: str, parameters: tuple = ()) -> list[dict[str, Any]]:
        """Run one query on a fresh connection, close it, and return the rows as dicts.

        The connection is never kept: in admin mode it would be the server's only SYSDBA session.
        """
        statement = sql.strip().rstrip(";")
        conn = self.get_connection(self.altibase_conn_id)
        dbconn = self._connect(conn)
        try:
            cursor = dbconn.cursor()
            try:
                cursor.execute(statement, parameters)
                columns = [column[0].upper() for column in cursor.description or ()]
                return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            except Exception as exc:
                code, message = error_code(exc)
                if message is None:
                    raise
                raise AltibaseServerError(server_name(conn), code, message, action=f"query {statement!r}") from None
            finally:
                cursor.close()
        finally:
            dbconn.close()


def server_name(conn: Connection) -> str:
    """How errors and logs name a server: the connection id and its address."""
    return f"{conn.conn_id} ({conn.host}:{conn.port or DEFAULT_PORT})"


def error_code(exc: BaseException) -> tuple[str | None, str | None]:
    """(code, message) of a database error from either backend; (None, None) for anything else."""
    if isinstance(getattr(exc, "code", None), str) and hasattr(exc, "message"):
        return exc.code, exc.message  # type: ignore[attr-defined]
    if type(exc).__module__.split(".")[0] == "pyodbc":
        return parse_odbc_error(exc)
    return None, None
