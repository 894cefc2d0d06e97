"""How the hook reaches a server: one module per backend, named by the Connection's ``backend`` extra.

- ``odbc`` (``backends/odbc.py``): production, pyodbc and the Altibase ODBC driver.
- ``simulator`` (``backends/simulator.py``): the embedded simulator; the only module of this package
  that imports ``altibase_sim``.

A Connection must name its backend. There is no default: a production Connection that forgot its
extra must fail with a message saying what to set, not quietly talk to a simulator.

Each backend module has ``connect(conn, *, user, sysdba, client_info, login_timeout, log)`` returning
a DB-API connection (autocommit on), ``database_error(exc)`` returning ``(code, message)`` for its
own driver's errors and None for anything else, and ``isql_binary(conn)``: the iSQL client the local
runner starts for that server (the real one for ``odbc``, ``isql-sim`` for ``simulator``).
"""

from __future__ import annotations

import re
from types import ModuleType

from airflow.sdk import BaseHook, Connection
from airflow.sdk.exceptions import AirflowNotFoundException

from altibase_ops.exceptions import BackendNotConfiguredError

BACKENDS = ("odbc", "simulator")
# V$SESSION.CLIENT_APP_INFO holds at most 128 bytes (MMC_APPINFO_MAX_LEN, src/mm/include/mmcSession.h);
# the driver refuses a longer APP_INFO (src/ul/uln/ulnConnAttribute.c, ULN_CONN_ATTR_APP_INFO: 1..128).
APP_INFO_MAX_BYTES = 128


def app_info(client_info: str) -> str:
    """What a session reports as V$SESSION.CLIENT_APP_INFO for ``client_info``, the same on every backend.

    The ODBC driver sends APP_INFO to the server as the connection string gives it, delimiters included
    (ulnConnStrParse keeps the quotes of a "…" value; the server stores the bytes, mmtCmsConnection.cpp),
    so the value must be written bare: no ';' (it ends the value), no edge whitespace (trimmed), no
    leading '"', '(' or '[' (they open a delimited value). It is a label, not data: such characters are
    replaced, and a long one is cut to 128 bytes, rather than refusing the login. "" sends none.
    """
    text = re.sub(r'^[\s"(\[]+', "", client_info.replace(";", ",").replace("\0", ""))
    return text.encode()[:APP_INFO_MAX_BYTES].decode(errors="ignore").rstrip()


def backend_name(conn: Connection) -> str:
    """The ``backend`` extra of ``conn``; BackendNotConfiguredError when it is missing or unknown."""
    backend = conn.extra_dejson.get("backend")
    if backend not in BACKENDS:
        found = "has no 'backend' extra" if backend is None else f"has backend {backend!r}"
        raise BackendNotConfiguredError(
            f"Connection {conn.conn_id} {found}: set its extra 'backend' to 'odbc' (a real Altibase: also "
            f"'driver', the Altibase ODBC driver library) or 'simulator' (the embedded simulator), e.g. "
            f'{{"backend": "odbc", "driver": "/opt/altibase/lib/libaltibase_odbc-64bit-ul64.so"}}')
    return backend


def backend_module(conn: Connection) -> ModuleType:
    """The module of ``conn``'s backend, imported only when a Connection names it."""
    if backend_name(conn) == "odbc":
        from altibase_ops.backends import odbc

        return odbc
    from altibase_ops.backends import simulator

    return simulator


def database_error(exc: BaseException) -> tuple[str | None, str] | None:
    """(code, message) of a database error from any backend; None for anything else (a bug)."""
    from altibase_ops.backends import odbc, simulator

    return simulator.database_error(exc) or odbc.database_error(exc)


def server_address(conn_id: str) -> tuple[str, int]:
    """Where a Connection leads: (address, port), the host resolved when it resolves (two names for one
    address are one server), as written otherwise."""
    import socket

    conn = BaseHook.get_connection(conn_id)
    host = (conn.host or "127.0.0.1").strip().lower()
    try:
        host = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError:
        pass
    return host, int(conn.port or 20300)


def connection_problems(conn_id: str, *, runner: str) -> list[str]:
    """Why ``conn_id`` cannot serve a run, before anything is sent: it does not exist, names no usable
    backend, or (local iSQL runner) has no iSQL client for its backend. Empty when it can."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return [f"Airflow Connection {conn_id!r} not found"]
    try:
        module = backend_module(conn)
        if runner == "local":
            module.isql_binary(conn)
    except BackendNotConfiguredError as exc:
        return [str(exc)]
    return []
