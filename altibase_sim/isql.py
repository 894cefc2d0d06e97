"""``isql-sim``: an iSQL-compatible client for the simulator.

Takes the real client's options (``-s -port -u -p -sysdba -silent -f -o -NLS_USE``, case-insensitive),
prints iSQL-style results and errors, and follows iSQL's exit-status rules: an error inside a ``-f``
script does not stop it; the status is the last statement's (0, or 255 after an error), 0 after EXIT.
"""

from __future__ import annotations

import getpass
import os
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
FLAGS = {"-sysdba": "sysdba", "-silent": "silent"}
ERROR_STATUS = 255


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> dict:
    opts: dict = {"server": "127.0.0.1", "port": int(os.environ.get("ALTIBASE_PORT_NO", "20300")),
                  "user": None, "password": None, "file": None, "outfile": None, "nls_use": None,
                  "sysdba": False, "silent": False}
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
    return opts


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


def run(opts: dict, out: TextIO) -> int:
    if opts["user"] is None:
        raise UsageError("no user: give -u")
    password = opts["password"]
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("no password: give -p")
        password = getpass.getpass("Write Password : ")
    if opts["file"]:
        try:
            with open(opts["file"], encoding="utf-8") as fh:
                script = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read {opts['file']}: {exc.strerror}") from None
    else:
        script = sys.stdin.read()
    try:
        conn = dbapi.connect(opts["server"], opts["port"], opts["user"], password, sysdba=opts["sysdba"],
                             client_info="isql-sim")
    except dbapi.Error as exc:
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return 1
    if not opts["silent"]:
        print(BANNER, file=out)
        print(f"ISQL_CONNECTION = TCP, SERVER = {opts['server']}, PORT_NO = {opts['port']}", file=out)
    status = 0
    with conn:
        for stmt in split_statements(script):
            print(f"iSQL> {stmt};", file=out)
            word = stmt.split()[0].upper()
            if word in ("EXIT", "QUIT"):
                return 0
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
                print(f"{exc}\n", file=out)
                return ERROR_STATUS  # the connection is gone: nothing after this can run
            except dbapi.Error as exc:
                print(f"{exc}\n", file=out)
                status = ERROR_STATUS
                continue
            print(format_result(cur) + "\n", file=out)
            status = 0
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
