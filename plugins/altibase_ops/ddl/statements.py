"""The user's DDL statements: what the DAG accepts, which table each one changes, and whether a server
already has it applied (so a re-run skips what is done instead of failing on it).

Accepted, one statement per list entry, each on a table listed in ``tables`` (Altibase syntax):

    ALTER TABLE u.t ADD COLUMN ( c TYPE [DEFAULT v] [NOT NULL] [, ...] )
    ALTER TABLE u.t DROP COLUMN c
    ALTER TABLE u.t MODIFY COLUMN ( c TYPE [NOT NULL] )
    CREATE [UNIQUE] INDEX [u.]i ON u.t ( c [, ...] )
    DROP INDEX [u.]i                  (its table is looked up on the servers in preflight)
    TRUNCATE TABLE u.t

Anything else — DML, DROP TABLE, a second statement, comments — is refused before any server is
touched. An unqualified table name means SYS's table, because the DAG runs the DDL as SYS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from altibase_ops.sql.identifiers import IDENTIFIER_PATTERN, split_top_level
from altibase_ops.state.catalog import TYPE_CODES, TableState

_TYPE = r"(?:INTEGER|INT|BIGINT|SMALLINT|NUMERIC|DECIMAL|NUMBER|CHAR|VARCHAR|NCHAR|NVARCHAR|DATE|DOUBLE|FLOAT|REAL)"
_NAME = r"[A-Za-z][A-Za-z0-9_]{0,39}"
_QNAME = rf"(?:{_NAME}\.)?{_NAME}"
_COLUMN_DEF = re.compile(
    rf"^\s*(?P<name>{_NAME})\s+(?P<type>{_TYPE})(?:\s*\(\s*(?P<precision>\d+)\s*(?:,\s*(?P<scale>\d+)\s*)?\))?"
    rf"(?P<rest>(?:\s+DEFAULT\s+(?:-?\d+(?:\.\d+)?|'[^']*'|NULL)|\s+NOT\s+NULL|\s+NULL)*)\s*$",
    re.IGNORECASE | re.ASCII)
_FORMS = [
    ("add_column", re.compile(rf"^ALTER\s+TABLE\s+(?P<table>{_QNAME})\s+ADD\s+COLUMN\s*\((?P<body>.+)\)$",
                              re.IGNORECASE | re.DOTALL | re.ASCII)),
    ("drop_column", re.compile(rf"^ALTER\s+TABLE\s+(?P<table>{_QNAME})\s+DROP\s+COLUMN\s+(?P<column>{_NAME})$",
                               re.IGNORECASE | re.ASCII)),
    ("modify_column", re.compile(rf"^ALTER\s+TABLE\s+(?P<table>{_QNAME})\s+MODIFY\s+COLUMN\s*\((?P<body>.+)\)$",
                                 re.IGNORECASE | re.DOTALL | re.ASCII)),
    ("create_index", re.compile(rf"^CREATE\s+(?P<unique>UNIQUE\s+)?INDEX\s+(?P<index>{_QNAME})\s+ON\s+"
                                rf"(?P<table>{_QNAME})\s*\((?P<columns>[^()]+)\)$", re.IGNORECASE | re.ASCII)),
    ("drop_index", re.compile(rf"^DROP\s+INDEX\s+(?P<index>{_QNAME})$", re.IGNORECASE | re.ASCII)),
    ("truncate", re.compile(rf"^TRUNCATE\s+TABLE\s+(?P<table>{_QNAME})$", re.IGNORECASE | re.ASCII)),
]
_TYPE_ALIASES = {"INT": "INTEGER", "DECIMAL": "NUMERIC"}


# Longer than any accepted form needs; a longer entry is refused before it is echoed anywhere.
MAX_DDL_LENGTH = 4000
_SHOWN = 120  # characters of a statement an error message quotes


class InvalidDdlError(ValueError):
    """A DDL statement the DAG will not run."""


def shown(text: Any) -> str:
    """A statement as error messages quote it: repr, cut to a readable length."""
    quoted = repr(text)
    return quoted if len(quoted) <= _SHOWN else f"{quoted[:_SHOWN]}… ({len(str(text))} characters)"


_LITERALS = re.compile(r"'[^']*'")


def _outside_literals(text: str) -> str:
    return _LITERALS.sub("''", text)


def _one_line(text: str) -> str:
    """``text`` with every run of whitespace outside its string literals made one space."""
    parts, last = [], 0
    for match in _LITERALS.finditer(text):
        parts.append(re.sub(r"[ \t\r\n]+", " ", text[last:match.start()]))
        parts.append(match.group(0))
        last = match.end()
    parts.append(re.sub(r"[ \t\r\n]+", " ", text[last:]))
    return "".join(parts).strip()


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    precision: int | None
    scale: int | None
    not_null: bool
    has_default: bool = False  # a DEFAULT other than NULL


@dataclass(frozen=True)
class DdlStatement:
    text: str  # as the user wrote it (without a trailing ';')
    kind: str  # add_column | drop_column | modify_column | create_index | drop_index | truncate
    table: str | None  # USER.TABLE; None for DROP INDEX until preflight resolves it
    columns: tuple[Column, ...] = field(default_factory=tuple)
    column: str | None = None  # drop_column
    index: str | None = None  # USER.INDEX for create_index / drop_index
    keys: tuple[str, ...] = ()  # create_index: its key columns, in order
    unique: bool = False  # create_index: CREATE UNIQUE INDEX

    def with_table(self, table: str) -> DdlStatement:
        return replace(self, table=table)


def _qualify(name: str) -> str:
    parts = name.upper().split(".")
    return ".".join(parts) if len(parts) == 2 else f"SYS.{parts[0]}"


def _column_defs(body: str, text: str) -> tuple[Column, ...]:
    columns = []
    for part in split_top_level(body):
        match = _COLUMN_DEF.match(part)
        if not match:
            raise InvalidDdlError(f"{shown(text)}: cannot read the column definition {shown(part.strip())}")
        type_name = match["type"].upper()
        columns.append(Column(match["name"].upper(), _TYPE_ALIASES.get(type_name, type_name),
                              int(match["precision"]) if match["precision"] else None,
                              int(match["scale"]) if match["scale"] else None,
                              bool(re.search(r"NOT\s+NULL", match["rest"] or "", re.IGNORECASE | re.ASCII)),
                              bool(re.search(r"DEFAULT\s+(?!NULL\b)", match["rest"] or "", re.IGNORECASE | re.ASCII))))
    return tuple(columns)


def parse_ddl(text: Any) -> DdlStatement:
    """One statement of the ``ddl`` parameter, or InvalidDdlError saying why not."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidDdlError(f"{shown(text)}: a DDL statement must be non-empty text")
    if len(text) > MAX_DDL_LENGTH:
        raise InvalidDdlError(f"{shown(text)}: longer than {MAX_DDL_LENGTH} characters; no accepted form needs that")
    if not _outside_literals(text).isascii():
        # Python's case-insensitive matching folds look-alikes (U+017F 'ſ' to 's', U+212A 'K' to 'k');
        # Altibase does not: refuse them here rather than fail mid-procedure
        odd = sorted({f"U+{ord(c):04X}" for c in _outside_literals(text) if not c.isascii()})
        raise InvalidDdlError(f"{shown(text)}: non-ASCII characters outside a string literal ({', '.join(odd)}); "
                              "names and keywords must be ASCII")
    for literal in re.findall(r"'[^']*'", text):
        # the script must never depend on how iSQL reads a line break inside a literal (it continues the
        # statement, ut/isql/src/iSQLPreLexer.l; a client that did not would read the next line as a
        # statement): a literal is one line. A ';' inside quotes does not end an iSQL statement (same file).
        if any(ord(c) < 32 or ord(c) == 127 for c in literal):
            raise InvalidDdlError(f"{shown(text)}: a string literal holds a control character ({shown(literal)}); "
                                  "the iSQL script must not be able to read a second statement in it. Use a "
                                  "literal without line breaks or control characters")
    if any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 for c in text):
        raise InvalidDdlError(f"{shown(text)}: control characters are not allowed in a DDL statement")
    # outside literals, line breaks and tabs are spaces: the statement reaches iSQL on one line
    stripped = _one_line(text)
    if stripped.endswith(";"):
        stripped = stripped[:-1].rstrip()
    if ";" in _outside_literals(stripped):
        raise InvalidDdlError(f"{shown(text)}: one statement per entry (found ';' inside)")
    if "--" in stripped or "/*" in stripped:
        raise InvalidDdlError(f"{shown(text)}: comments are not allowed in DDL statements")
    first = stripped.split(None, 1)[0].upper()
    if first in ("INSERT", "UPDATE", "DELETE", "MERGE", "SELECT", "UPSERT", "COMMIT", "ROLLBACK"):
        raise InvalidDdlError(f"{shown(text)}: DML is not DDL; this DAG runs only DDL")
    if re.match(r"^DROP\s+TABLE\b", stripped, re.IGNORECASE | re.ASCII):
        raise InvalidDdlError(f"{shown(text)}: DROP TABLE of a replicated table is refused by Altibase (ERR-3103F) "
                              "and is not part of this procedure")
    for kind, pattern in _FORMS:
        match = pattern.match(stripped)
        if not match:
            continue
        groups = match.groupdict()
        table = _qualify(groups["table"]) if groups.get("table") else None
        if kind in ("add_column", "modify_column"):
            columns = _column_defs(groups["body"], text)
            if kind == "modify_column" and len(columns) != 1:
                raise InvalidDdlError(f"{shown(text)}: MODIFY COLUMN one column per statement")
            return DdlStatement(stripped, kind, table, columns=columns)
        if kind == "drop_column":
            return DdlStatement(stripped, kind, table, column=groups["column"].upper())
        if kind == "create_index":
            for col in groups["columns"].split(","):
                if not IDENTIFIER_PATTERN.fullmatch(col.strip()):
                    raise InvalidDdlError(f"{shown(text)}: {col.strip()!r} is not a column name")
            index, owner = _qualify(groups["index"]), table.split(".")[0]
            if index.split(".")[0] != owner:
                # the procedure checks and drops only the table's own objects; an index elsewhere would
                # cost an outage and never show as applied
                raise InvalidDdlError(f"{shown(text)}: the index {index} would belong to "
                                      f"{index.split('.')[0]}, not to the table's owner {owner}; name it "
                                      f"{owner}.{index.split('.')[1]}")
            return DdlStatement(stripped, kind, table, index=_qualify(groups["index"]),
                                keys=tuple(c.strip().upper() for c in groups["columns"].split(",")),
                                unique=bool(groups["unique"]))
        if kind == "drop_index":
            return DdlStatement(stripped, kind, None, index=_qualify(groups["index"]))
        return DdlStatement(stripped, kind, table)
    raise InvalidDdlError(
        f"{shown(text)}: not an accepted DDL form (ALTER TABLE … ADD COLUMN (…) / DROP COLUMN c / MODIFY COLUMN (…), "
        "CREATE [UNIQUE] INDEX … ON …(…), DROP INDEX …, TRUNCATE TABLE …)")


def ddl_statement(text: Any) -> str:
    """The ``ddl`` filter of the SQL templates: a statement, only after ``parse_ddl`` accepted it."""
    return parse_ddl(text).text


# The DDL job's template filters, beside the shared identifier filters (include/sql/ddl/run_ddl.sql).
DDL_SQL_FILTERS = {"ddl": ddl_statement}


def _matches(column: Column, state: dict[str, Any]) -> bool:
    if int(state["DATA_TYPE"]) != TYPE_CODES[column.type_name]:
        return False
    if column.precision is not None and int(state["PRECISION"]) != column.precision:
        return False
    if column.scale is not None and int(state["SCALE"] or 0) != column.scale:
        return False
    return not column.not_null or state["IS_NULLABLE"] == "F"


class DefinitionConflictError(InvalidDdlError):
    """An object of the statement's name exists with another definition: neither applied nor to apply."""


def _describe_column(name: str, state: dict[str, Any]) -> str:
    type_name = next((t for t, code in TYPE_CODES.items() if code == int(state["DATA_TYPE"])), str(state["DATA_TYPE"]))
    return (f"{name} {type_name}({state['PRECISION']}, {state['SCALE'] or 0})"
            f"{' NOT NULL' if state['IS_NULLABLE'] == 'F' else ''}")


def _asked(column: Column) -> str:
    size = "" if column.precision is None else f"({column.precision}{'' if column.scale is None else f', {column.scale}'})"
    return f"{column.name} {column.type_name}{size}{' NOT NULL' if column.not_null else ''}"


def is_applied(stmt: DdlStatement, state: TableState) -> bool | None:
    """True when the server already shows the statement's effect — the definition it asks for, not
    only the name — False when not; None when the effect cannot be read from the definition (TRUNCATE).
    A same-name column or index with another definition raises DefinitionConflictError, naming both."""
    if stmt.kind == "add_column":
        present = [c.name in state.columns for c in stmt.columns]
        if any(present) and not all(present):
            raise InvalidDdlError(f"{stmt.text!r} is half applied: some of its columns exist, some do not")
        for column in stmt.columns:
            existing = state.columns.get(column.name)
            if existing is not None and not (_matches(column, existing)
                                             and (existing["IS_NULLABLE"] == "F") == column.not_null):
                raise DefinitionConflictError(
                    f"{shown(stmt.text)}: the table already has a column {_describe_column(column.name, existing)}, "
                    f"not the {_asked(column)} this statement asks for; drop or rename one of them first")
        return all(present)
    if stmt.kind == "drop_column":
        return stmt.column not in state.columns
    if stmt.kind == "modify_column":
        column = stmt.columns[0]
        return column.name in state.columns and _matches(column, state.columns[column.name])
    if stmt.kind == "create_index":
        existing = state.index_keys.get(stmt.index or "")
        if existing is not None and (existing.columns != stmt.keys or existing.unique != stmt.unique):
            raise DefinitionConflictError(
                f"{shown(stmt.text)}: the table already has {existing.describe(stmt.index or '')}, not the "
                f"{'UNIQUE ' if stmt.unique else ''}INDEX {stmt.index} ({', '.join(stmt.keys)}) this statement "
                "asks for; drop it or choose another name first")
        return stmt.index in state.indexes
    if stmt.kind == "drop_index":
        return stmt.index not in state.indexes
    return None
