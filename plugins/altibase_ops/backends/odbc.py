"""The production backend: pyodbc and the Altibase ODBC driver (needs unixODBC).

Connection extra: ``{"backend": "odbc", "driver": "/opt/altibase/lib/libaltibase_odbc-64bit-ul64.so",
"nls_use": "UTF8", "login_timeout": 5}``. The password never appears in a log line, an exception or a
return value: ``odbc_connection_string(masked=True)`` renders the copy that is logged, and connection
errors are re-raised without the pyodbc frames (whose locals hold the connection string).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from typing import Any

from airflow.sdk import Connection

from altibase_ops.exceptions import AltibaseServerError, BackendNotConfiguredError
from altibase_ops.sys_password import MAX_PASSWORD_BYTES

DEFAULT_PORT = 20300
MASK = "***"
# The real iSQL client for the local runner, when the Connection's extra names none (the image sets it).
ISQL_BINARY_ENV = "ALTIBASE_ISQL_BINARY"

# pyodbc renders each diagnostic record as "[SQLSTATE] message (native error) (SQLFunction)".
_NATIVE_ERROR = re.compile(r"\((-?\d+)\)\s*\(SQL\w+\)")
_ERR_CODE = re.compile(r"ERR-([0-9A-Fa-f]{5})")


# How the Altibase driver reads a connection string (ulnConnStrParse, src/ul/uln/ulnParse.c, 7.1): pairs
# split on ';'; a value is bare (to the next ';', trailing spaces trimmed, '=' '{' '}' taken literally)
# or "…" (to the next '"', no escape, the quotes kept for the server). Braces mean nothing to it. The
# server strips one pair of quotes from UID and PWD only (mtl.cpp) and upper-cases the password
# unless CASE_SENSITIVE_PASSWORD = 1; it takes at most 40 bytes of password, quotes included.
_WHITESPACE = "\t\n\x0b\x0c\r "


class UnrepresentableValueError(BackendNotConfiguredError):
    """A value the Altibase driver's connection-string syntax cannot carry."""


def _bare_ok(value: str) -> bool:
    return (value != "" and ";" not in value and "\0" not in value and value[0] not in _WHITESPACE
            and value[-1] not in _WHITESPACE and value[0] not in "\"([")


def bare_value(name: str, value: str) -> str:
    """A value for a key the driver does not unquote (Server, NLS_USE, numbers): bare, or refused."""
    if not _bare_ok(value):
        raise UnrepresentableValueError(f"{name} {value!r} cannot be written in an Altibase connection string "
                                        "(empty, or with ';', surrounding spaces or a leading quote/bracket)")
    return value


def password_value(password: str) -> str:
    """PWD's value so that the server receives exactly ``password``: quoted ("…", which carries ';',
    '=', braces, brackets and edge spaces), or bare where quoting cannot work (a '"' inside, or no room
    for the quotes within the server's 40 bytes)."""
    if "\0" in password:
        raise UnrepresentableValueError("the password contains a NUL byte")
    quoted = f'"{password}"'
    if '"' not in password and (len(quoted.encode()) <= MAX_PASSWORD_BYTES or not _bare_ok(password)):
        return quoted
    if _bare_ok(password) and not (len(password) >= 2 and password[0] == password[-1] == "'"):
        return password
    raise UnrepresentableValueError(
        "the password cannot be written in an Altibase connection string: it contains '\"' together with ';', "
        "surrounding spaces or a leading quote; change the SYS password")


def user_value(user: str) -> str:
    """UID's value: bare for a plain name (the server upper-cases it, as Altibase stores names), "…" to
    keep anything else exactly."""
    if _bare_ok(user) and all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in user):
        return user
    if '"' in user or "\0" in user:
        raise UnrepresentableValueError(f"the user name {user!r} cannot be written in a connection string")
    return f'"{user}"'


def odbc_connection_string(conn: Connection, *, user: str, sysdba: bool, masked: bool = False,
                           app_info: str = "") -> str:
    """The Altibase ODBC connection string for ``conn``; ``masked=True`` hides the password (for logs).
    ``app_info`` (``backends.app_info``: bare-safe, at most 128 bytes) is what V$SESSION.CLIENT_APP_INFO
    shows for the session."""
    extra = conn.extra_dejson
    driver = extra.get("driver")
    if not driver:
        raise BackendNotConfiguredError(f"Connection {conn.conn_id}: the odbc backend needs extra.driver (the "
                                        "Altibase ODBC driver library or its unixODBC name)")
    password = password_value(conn.password or "")  # refused before anything is logged, masked or not
    parts = [
        # first, in unixODBC's own syntax (braces): unixODBC parses the string before the driver does,
        # takes the first DRIVER/DSN it meets, and passes the string on unchanged; the driver ignores DRIVER
        f"DRIVER={{{driver}}}",
        f"Server={bare_value('host', conn.host or '')}",
        f"PORT={int(conn.port or DEFAULT_PORT)}",
        f"User={user_value(user)}",
        f"Password={MASK if masked else password}",
    ]
    if extra.get("nls_use"):
        parts.append(f"NLS_USE={bare_value('nls_use', str(extra['nls_use']))}")
    if extra.get("login_timeout"):
        parts.append(f"LOGIN_TIMEOUT={int(extra['login_timeout'])}")
    if app_info:
        # the driver's keyword (ulnConnAttribute.c); it sends the value before the login is checked
        parts.append(f"APP_INFO={bare_value('APP_INFO', app_info)}")
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

    log.info("Connecting with ODBC: %s",
             odbc_connection_string(conn, user=user, sysdba=sysdba, masked=True, app_info=client_info))
    try:
        return pyodbc.connect(odbc_connection_string(conn, user=user, sysdba=sysdba, app_info=client_info),
                              autocommit=True, timeout=int(login_timeout))
    except pyodbc.Error as exc:
        code, message = parse_odbc_error(exc)
        # "from None": the pyodbc error's frames hold the connection string with the password; a
        # chained traceback would print their locals in some log setups.
        raise AltibaseServerError(server, code, message, action=action) from None


def isql_binary(conn: Connection) -> str:
    """The real iSQL client for ``conn``'s server: the extra ``isql_binary``, else ``$ALTIBASE_ISQL_BINARY``.
    BackendNotConfiguredError when neither names an executable: never the simulator's client."""
    configured = conn.extra_dejson.get("isql_binary") or os.environ.get(ISQL_BINARY_ENV)
    if not configured:
        raise BackendNotConfiguredError(
            f"Connection {conn.conn_id} reaches a real Altibase (backend odbc), but no iSQL client is "
            f"configured for the local runner: set the Connection's extra 'isql_binary' or the worker's "
            f"{ISQL_BINARY_ENV} to the Altibase client (e.g. /opt/altibase/bin/isql), or use runner "
            "'kubernetes' (the client of the altibase image)")
    found = shutil.which(configured)
    if found is None:
        raise BackendNotConfiguredError(
            f"Connection {conn.conn_id}: the iSQL client {configured!r} is not an executable on this worker")
    return found
