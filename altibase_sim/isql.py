"""``isql-sim``: an iSQL-compatible client for the simulator.

Takes the real client's options (``-s -port -u -p -sysdba -silent -f -o -NLS_USE /NOLOG``,
case-insensitive), prints iSQL-style results and errors, and follows iSQL's exit-status rules: an error
inside a script does not stop it; the status is the last statement's (0, or 255 after an error), 0 after
EXIT.

As the real client (ut/isql, 7.1): ``/NOLOG`` starts without a session and refuses ``-u``/``-p``;
``CONNECT user/password [AS SYSDBA]`` is a one-line command whose names are identifiers (a bare one is
upper-cased, a ``"…"`` one is kept as written, quotes removed as the server does); commands read from
a ``-f`` file are echoed after the prompt, commands read from standard input are not.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from typing import TextIO

from altibase_sim import dbapi
from altibase_sim.sqlparse import split_statements

BANNER = """-----------------------------------------------------------------
     Altibase Client Query utility (simulator).
     Release Version 7.3.0.0.2-sim
     Copyright 2000, ALTIBASE Corporation or its subsidiaries.
     All Rights Reserved.
-----------------------------------------------------------------"""
OPTIONS_WITH_VALUE = {"-s": "server", "-port": "port", "-u": "user", "-p": "password", "-f": "file",
                      "-o": "outfile", "-nls_use": "nls_use"}
FLAGS = {"-sysdba": "sysdba", "-silent": "silent", "/nolog": "nolog"}
ERROR_STATUS = 255
_IDENT = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$#]*)'
_CONNECT = re.compile(rf"^\s*CONNECT\s+(?P<user>{_IDENT})\s*/\s*(?P<password>{_IDENT})(?P<sysdba>\s+AS\s+SYSDBA)?\s*;?\s*$",
                      re.IGNORECASE)
# iSQL's own codes (ut/msg/E_UT_US7ASCII.msg, section 9), as ut/isql/dbc/dbcDiagnostic.cpp sets them: no
# connection (entry 32), and a broken link (SQLSTATE 08S01 from the driver, entry 21)
NOT_CONNECTED = "[ERR-91020 : No Connection State]"
COMMUNICATION_FAILURE = "[ERR-91015 : Communication failure.]"


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> dict:
    opts: dict = {"server": "127.0.0.1", "port": int(os.environ.get("ALTIBASE_PORT_NO", "20300")),
                  "user": None, "password": None, "file": None, "outfile": None, "nls_use": None,
                  "sysdba": False, "silent": False, "nolog": False}
    i = 0
    while i < len(argv):
        arg = argv[i].lower()
        if arg in FLAGS:
            opts[FLAGS[arg]] = True
        elif arg in OPTIONS_WITH_VALUE:
            if i + 1 >= len(argv):
                raise UsageError(f"option {argv[i]} needs a value")
            i += 1
            opts[OPTIONS_WITH_VALUE[arg]] = argv[i]
        else:
            raise UsageError(f"unknown option {argv[i]!r}")
        i += 1
    try:
        opts["port"] = int(opts["port"])
    except ValueError:
        raise UsageError(f"invalid port {opts['port']!r}") from None
    if opts["nolog"] and (opts["user"] is not None or opts["password"] is not None):
        raise UsageError("/NOLOG cannot be used with -u or -p")
    return opts


def _name(token: str, upper: bool) -> str:
    # the server strips one pair of quotes from UID/PWD and upper-cases a bare name
    if token.startswith('"'):
        return token[1:-1]
    return token.upper() if upper else token


def commands(script: str) -> list[tuple[str, str]]:
    """("connect", line) and ("sql", statement) in script order: CONNECT is a line of its own, read
    where a statement may start; everything else is split on ';' like iSQL does."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    for line in script.splitlines(keepends=True):
        text = "".join(pending)
        at_boundary = not text.strip() or text.rstrip().endswith(";")
        if at_boundary and re.match(r"^\s*CONNECT\b", line, re.IGNORECASE):
            out += [("sql", stmt) for stmt in split_statements(text)]
            pending = []
            out.append(("connect", line.strip()))
        else:
            pending.append(line)
    out += [("sql", stmt) for stmt in split_statements("".join(pending))]
    return out


def format_result(cur: dbapi.Cursor) -> str:
    if cur.description is None:
        return cur.message
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip()]
    lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.append(cur.message)
    return "\n".join(lines)


def _connect(opts: dict, user: str, password: str, sysdba: bool) -> dbapi.Connection:
    # the real client logs in with APP_INFO=isql (ut/isql/src/iSQLExecuteCommand.cpp, dbcConnection.cpp)
    return dbapi.connect(opts["server"], opts["port"], user, password, sysdba=sysdba, client_info="isql")


def run(opts: dict, out: TextIO) -> int:
    if opts["file"]:
        try:
            with open(opts["file"], encoding="utf-8") as fh:
                script = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read {opts['file']}: {exc.strerror}") from None
    conn = None
    if not opts["nolog"]:
        if opts["user"] is None:
            raise UsageError("no user: give -u")
        password = opts["password"]
        if password is None:
            # the real client reads the password from /dev/tty only, never from piped input
            if not sys.stdin.isatty():
                raise UsageError("no password: give -p")
            password = getpass.getpass("Write Password : ")
        try:
            conn = _connect(opts, opts["user"], password, opts["sysdba"])
        except dbapi.Error as exc:
            # iSQLMain.cpp: a failed login is reported on standard output, exit status 255
            print(str(exc).replace("\n", " "), file=out)
            return ERROR_STATUS
    if not opts["file"]:
        script = sys.stdin.read()
    if not opts["silent"]:
        print(BANNER, file=out)
        print(f"ISQL_CONNECTION = TCP, SERVER = {opts['server']}, PORT_NO = {opts['port']}", file=out)
    status = 0
    try:
        for kind, text in commands(script):
            if opts["file"]:
                print(f"iSQL> {text}" if kind == "connect" else f"iSQL> {text};", file=out)
            if kind == "connect":
                match = _CONNECT.match(text)
                if conn is not None:
                    conn.close()
                    conn = None
                if match is None:
                    print("[ERR-31001 : SQL syntax error]\n", file=out)
                    status = ERROR_STATUS
                    continue
                try:
                    conn = _connect(opts, _name(match["user"], True), _name(match["password"], False),
                                    bool(match["sysdba"]))
                except dbapi.Error as exc:
                    print(f"{exc}\n", file=out)
                    status = ERROR_STATUS
                    continue
                print("Connect success.\n", file=out)
                status = 0
                continue
            stmt = text
            word = stmt.split()[0].upper()
            if word in ("EXIT", "QUIT"):
                return 0
            if conn is None:
                print(f"{NOT_CONNECTED}\n", file=out)
                status = ERROR_STATUS
                continue
            if word == "AUTOCOMMIT" and len(stmt.split()) == 2 and stmt.split()[1].upper() in ("ON", "OFF"):
                value = stmt.split()[1].upper()
                conn.autocommit = value == "ON"
                print(f"Set autocommit {value.lower()} success.\n", file=out)
                status = 0
                continue
            cur = conn.cursor()
            try:
                cur.execute(stmt)
            except dbapi.OperationalError as exc:
                print(f"{COMMUNICATION_FAILURE if exc.code == '51043' else exc}\n", file=out)
                return ERROR_STATUS  # the connection is gone: nothing after this can run
            except dbapi.Error as exc:
                print(f"{exc}\n", file=out)
                status = ERROR_STATUS
                continue
            print(format_result(cur) + "\n", file=out)
            status = 0
    finally:
        if conn is not None:
            conn.close()
    return status


def main(argv: list[str] | None = None) -> None:
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
        if opts["outfile"]:
            with open(opts["outfile"], "w", encoding="utf-8") as out:
                code = run(opts, out)
        else:
            code = run(opts, sys.stdout)
    except UsageError as exc:
        print(f"isql-sim: {exc}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
