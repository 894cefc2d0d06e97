"""The production backend: pyodbc and the Altibase ODBC driver (needs unixODBC).

Connection extra: ``{"backend": "odbc", "driver": "/opt/altibase/lib/libaltibase_odbc-64bit-ul64.so",
"nls_use": "UTF8", "login_timeout": 5}``. The password never appears in a log line, an exception or a
return value: ``odbc_connection_string(masked=True)`` renders the copy that is logged, and connection
errors are re-raised without the pyodbc frames (whose locals hold the connection string).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from airflow.sdk import Connection

from altibase_ops.exceptions import AltibaseServerError, BackendNotConfiguredError

DEFAULT_PORT = 20300
MASK = "***"

# pyodbc renders each diagnostic record as "[SQLSTATE] message (native error) (SQLFunction)".
_NATIVE_ERROR = re.compile(r"\((-?\d+)\)\s*\(SQL\w+\)")
_ERR_CODE = re.compile(r"ERR-([0-9A-Fa-f]{5})")


def _odbc_value(value: str) -> str:
    # ODBC connection-string quoting: braces protect ; = { } and surrounding spaces; } is doubled.
    if value != value.strip() or any(ch in value for ch in ";={}"):
        return "{" + value.replace("}", "}}") + "}"
    return value


def odbc_connection_string(conn: Connection, *, user: str, sysdba: bool, masked: bool = False) -> str:
    """The Altibase ODBC connection string for ``conn``; ``masked=True`` hides the password (for logs)."""
    extra = conn.extra_dejson
    driver = extra.get("driver")
    if not driver:
        raise BackendNotConfiguredError(f"Connection {conn.conn_id}: the odbc backend needs extra.driver (the "
                                        "Altibase ODBC driver library or its unixODBC name)")
    parts = [
        f"DRIVER={{{driver}}}",
        f"Server={_odbc_value(conn.host or '')}",
        f"PORT={int(conn.port or DEFAULT_PORT)}",
        f"User={_odbc_value(user)}",
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


def database_error(exc: BaseException) -> tuple[str | None, str] | None:
    """(code, message) for a pyodbc error, None for anything else (pyodbc is not imported to tell)."""
    if type(exc).__module__.split(".")[0] == "pyodbc":
        return parse_odbc_error(exc)
    return None


def connect(conn: Connection, *, user: str, sysdba: bool, client_info: str, login_timeout: float,
            server: str, action: str, log: logging.Logger) -> Any:
    # Imported here only: pyodbc needs unixODBC, which the simulator backend does not.
    import pyodbc

    log.info("Connecting with ODBC: %s", odbc_connection_string(conn, user=user, sysdba=sysdba, masked=True))
    try:
        return pyodbc.connect(odbc_connection_string(conn, user=user, sysdba=sysdba), autocommit=True,
                              timeout=int(login_timeout))
    except pyodbc.Error as exc:
        code, message = parse_odbc_error(exc)
        # "from None": the pyodbc error's frames hold the connection string with the password; a
        # chained traceback would print their locals in some log setups.
        raise AltibaseServerError(server, code, message, action=action) from None
