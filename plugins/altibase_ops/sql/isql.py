"""iSQL: the ``is`` command line and the parsing of what it prints.

iSQL keeps going after an error inside a ``-f`` script and its exit status reflects only the last
statement (or 0 after ``EXIT;``), so success is read from the output: every ``[ERR-XXXXX : ...]``
is a failure unless the step kind lists that code as "already done" (``sql.steps.judge_results``).
The parser keys on result lines only — ``Alter success.``, ``1 row inserted.`` / ``No rows deleted.``, a
SELECT's header/dashes/rows/``N rows selected.``, ``[ERR-...]`` — and treats the ``iSQL>`` echo lines, when
present, only as labels.

The same command line is used by both runners (a local subprocess and a pod): the server, port,
user and password come from environment variables expanded by ``sh``, so the password is never
part of a command we build, log or put in a pod spec.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from altibase_ops.sql.steps import StatementResult
from altibase_ops.sys_password import MAX_PASSWORD_BYTES

# Environment variables the command line reads; the runners set them (a Kubernetes Secret for the
# password in a pod, the Airflow Connection for a local run).
ENV_HOST = "ALTIBASE_HOST"
ENV_PORT = "ALTIBASE_PORT"
ENV_USER = "ALTIBASE_USER"
ENV_PASSWORD = "ALTIBASE_PASSWORD"

_ERROR_START = re.compile(r"^\[ERR-([0-9A-Fa-f]{5}) : ?(.*)$")
_SUCCESS = re.compile(r"^(\w+) success\.$")
# iSQL's row-count line (ut/isql/src/iSQLExecuteCommand.cpp, PrintCount): "No rows " for 0, "1 row ",
# "N rows ", then the command's verb; "processed." for a command kind it does not name.
_COUNT = r"(?:No rows|1 row|\d+ rows)"
_ROWS_CHANGED = re.compile(rf"^{_COUNT} (inserted|updated|deleted|moved|merged|processed)\.$")
_ROWS_SELECTED = re.compile(rf"^{_COUNT} selected\.$")
_DASHES = re.compile(r"^-{3,}[- ]*$")
_ECHO = re.compile(r"^iSQL> ?(.*)$")


def _row_from_line(line: str, spans: list[tuple[int, str]]) -> dict[str, str]:
    # Each value starts at its column's header offset and runs to the next column's offset.
    row = {}
    for index, (start, name) in enumerate(spans):
        end = spans[index + 1][0] if index + 1 < len(spans) else None
        row[name] = line[start:end].strip()
    return row


def parse_output(output: str) -> list[StatementResult]:
    """The results in the order iSQL printed them; unrecognised lines (banners, blanks) are skipped."""
    results: list[StatementResult] = []
    lines = output.splitlines()
    echoed: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        stripped = line.strip()
        index += 1
        if echo := _ECHO.match(stripped):
            echoed = echo.group(1).strip().rstrip(";").strip() or echoed
            continue
        if error := _ERROR_START.match(stripped):
            # the message runs until the closing bracket, possibly over several lines
            text = error.group(2)
            while not text.rstrip().endswith("]") and index < len(lines):
                text += "\n" + lines[index].rstrip()
                index += 1
            message = text.rstrip()[:-1].rstrip() if text.rstrip().endswith("]") else text.rstrip()
            code = error.group(1).upper()
            results.append(StatementResult("error", f"[ERR-{code} : {message}]", code, message,
                                           statement=echoed))
            echoed = None
            continue
        if _SUCCESS.match(stripped) or _ROWS_CHANGED.match(stripped):
            results.append(StatementResult("ok", stripped, statement=echoed))
            echoed = None
            continue
        if _ROWS_SELECTED.match(stripped):
            # a result set with no header (should not happen) still counts as a query result
            results.append(StatementResult("ok", stripped, statement=echoed))
            echoed = None
            continue
        if stripped and index < len(lines) and _DASHES.match(lines[index].strip()):
            spans = [(m.start(), m.group(0).upper()) for m in re.finditer(r"\S+", line)]
            index += 1
            rows = []
            while index < len(lines):
                row_line = lines[index].rstrip()
                if _ERROR_START.match(row_line.strip()):
                    break  # the query failed while fetching; the error is the statement's result
                index += 1
                if _ROWS_SELECTED.match(row_line.strip()):
                    results.append(StatementResult("ok", row_line.strip(), columns=[n for _, n in spans],
                                                   rows=rows, statement=echoed))
                    break
                if row_line.strip():
                    rows.append(_row_from_line(row_line, spans))
            echoed = None
    return results


def query_results(results: list[StatementResult]) -> list[dict[str, Any]] | None:
    """The XCom value: one entry per SELECT (statement, columns, rows as dicts of strings)."""
    queries = [{"statement": r.statement, "columns": r.columns, "rows": r.rows} for r in results if r.is_query]
    return queries or None


def isql_command(binary_word: str, script_word: str | None, *, nls_use: str | None = None) -> str:
    """The iSQL command line as a shell string: the script on standard input, the login in the script.

    ``/NOLOG``: iSQL starts without logging in, and the script's first line, ``CONNECT user/password
    [AS SYSDBA]`` (``connect_line``), logs in. The real client has no other way to take a password off
    its command line: no environment variable, and its prompt reads /dev/tty, never piped input. On
    standard input, not ``-f``: iSQL echoes the commands of a ``-f`` file after its prompt (the CONNECT
    line with the password, into the task log), and those of standard input not. ``binary_word`` and
    ``script_word`` are shell text (``shlex.quote(path)``, or a quoted variable reference; None: the
    caller gives the script as the process's standard input itself); server and port come from the
    environment, expanded by ``sh``.
    The binary must be ``isql`` itself: the ``is`` wrapper adds ``-u sys -p MANAGER``, which ``/NOLOG``
    refuses.
    """
    parts = [binary_word, "-s", f'"${ENV_HOST}"', "-port", f'"${ENV_PORT}"', "/NOLOG", "-silent"]
    if nls_use:
        parts += ["-NLS_USE", shlex.quote(nls_use)]
    if script_word is not None:
        parts += ["<", script_word]
    return " ".join(parts)


# iSQL's CONNECT takes names as identifiers (ut/isql/src/iSQLConnectLexer.l): bare ones are
# upper-cased, "…" ones are passed on as written (quotes included; the server removes them). A
# quoted name cannot hold '"' or a line break, and the server takes 40 bytes of password with quotes.
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONNECT_LABEL = "CONNECT (login; password not shown)"


class UnusableLoginError(ValueError):
    """A user or password iSQL's CONNECT cannot carry."""


def connect_line(user: str, password: str, *, sysdba: bool) -> str:
    """``CONNECT user/"password" [AS SYSDBA];`` for the script's first line (never logged)."""
    if not password or '"' in password or "\n" in password or "\r" in password:
        raise UnusableLoginError("the password cannot be given to iSQL's CONNECT: it is empty or contains '\"' or "
                                 "a line break; change the password or use the ODBC hook")
    if len(password.encode()) + 2 <= MAX_PASSWORD_BYTES:
        password_word = f'"{password}"'
    elif _BARE_NAME.fullmatch(password):
        password_word = password  # too long to quote; the server upper-cases passwords by default anyway
    else:
        raise UnusableLoginError(f"the password is longer than the {MAX_PASSWORD_BYTES - 2} bytes iSQL can quote")
    if _BARE_NAME.fullmatch(user):
        user_word = user
    elif user and '"' not in user and "\n" not in user:
        user_word = f'"{user}"'
    else:
        raise UnusableLoginError(f"the user name {user!r} cannot be given to iSQL's CONNECT")
    return f"CONNECT {user_word}/{password_word}{' AS SYSDBA' if sysdba else ''};"


def connect_line_sh(*, sysdba: bool) -> str:
    """POSIX sh that prints ``connect_line`` for ``$ALTIBASE_USER``/``$ALTIBASE_PASSWORD`` (the pod,
    where the password comes from a Secret): the same rules, with builtins only (printf, case), so
    the password is in no process's argv. Exits 3 with a message when the login cannot be carried."""
    return (_CONNECT_SH.replace("@MAX@", str(MAX_PASSWORD_BYTES - 2))
            .replace("@AS@", " AS SYSDBA" if sysdba else "")
            .replace("@PASSWORD@", ENV_PASSWORD).replace("@USER@", ENV_USER))


_CONNECT_SH = r"""nl='
'
case "$@PASSWORD@" in
  ''|*'"'*|*"$nl"*) echo "the password cannot be given to iSQL's CONNECT: empty, or with a double quote or a line break" >&2; exit 3;;
esac
if [ "$(printf %s "$@PASSWORD@" | wc -c)" -le @MAX@ ]; then
  pw="\"$@PASSWORD@\""
else
  case "$@PASSWORD@" in
    [A-Za-z_]*[!A-Za-z0-9_]*|[!A-Za-z_]*) echo "the password is longer than @MAX@ bytes and not a plain name" >&2; exit 3;;
    *) pw="$@PASSWORD@";;
  esac
fi
case "$@USER@" in
  ''|*'"'*) echo "the user name cannot be given to iSQL's CONNECT" >&2; exit 3;;
  [A-Za-z_]*[!A-Za-z0-9_]*|[!A-Za-z_]*) user="\"$@USER@\"";;
  *) user="$@USER@";;
esac
printf 'CONNECT %s/%s@AS@;\n' "$user" "$pw"
"""
