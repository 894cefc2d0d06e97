"""What each DDL statement will do on each server, judged from its catalog before anything changes.

A statement that Altibase refuses at O5/R5 costs a full outage, and when it succeeded on the first
server it leaves the pair with two definitions. Preflight walks the statements in order over a model
of each table that has not had them yet, as Altibase 7.1 would judge them on a table out of every
replication (which is how the procedure runs them):

==================================================  ==============================================
statement                                           Altibase (7.1 source)
==================================================  ==============================================
ADD COLUMN ... NOT NULL without a DEFAULT,           ERR-3104A (qdn.cpp: a full scan finds a row)
  table with rows
ADD COLUMN of a column that is there                 ERR-31182 / 31022 (a duplicate column name)
DROP COLUMN of the table's last column               ERR-31026 (qdbAlter.cpp validateDropCol)
DROP COLUMN of a column in a multi-column            ERR-31321 (validateDropCol, BUG-22255: every
  PRIMARY KEY or UNIQUE constraint                   unique key of the table)
DROP COLUMN of a single-column PRIMARY KEY           succeeds, and the key goes with it
                                                     (qdbCommon.cpp createConstraintFromInfo); O7's
                                                     ADD TABLE then fails, ERR-61113: the column's
                                                     data is gone and the table cannot go back into
                                                     the replication
DROP COLUMN of a column an index is keyed on         succeeds and drops the index
                                                     (qdbAlter.cpp findDelIndexAndDelMeta): a note
MODIFY COLUMN / CREATE INDEX on a column that        ERR-31058 / 31012 (column not found)
  is not there
CREATE INDEX with a name another index has           ERR-3104C (qdx.cpp)
CREATE INDEX naming a column twice                   ERR-31051 (qdx.cpp)
DROP INDEX of a key constraint's index               ERR-3119E (qdd.cpp)
DROP COLUMN / DROP INDEX of something that is        this tool's records tell a finished drop from
  not there                                          a wrong name (``ddl/records.py``)
==================================================  ==============================================

CREATE UNIQUE INDEX over keys two rows share (ERR-11058) is read from the rows, not the catalog:
preflight's ``duplicate_key_problems`` (one bounded scan per server).

Not predicted (a full scan or more): MODIFY COLUMN ... NOT NULL on a column holding NULLs
(ERR-3102F), a type change the data does not fit. Those fail on the first server, before its table
has changed; restore then puts the pair back as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import resolve_tables
from altibase_ops.ddl.statements import DdlStatement
from altibase_ops.state.catalog import IndexKey
from altibase_ops.state.server import ServerState


@dataclass
class _Table:
    """The parts of a table's definition the rules above read, changed statement by statement."""
    columns: list[str]
    indexes: dict[str, IndexKey]
    rows: int | None  # None when not counted (no statement needs it)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return next((k.columns for k in self.indexes.values() if k.constraint == "PRIMARY KEY"), ())


@dataclass
class Prediction:
    problems: list[str] = field(default_factory=list)  # failures to refuse in preflight
    notes: list[str] = field(default_factory=list)  # effects the DBA should know of


def needs_row_counts(request: DdlRequest) -> bool:
    """Whether a rule reads row counts (ADD COLUMN ... NOT NULL without a DEFAULT; a new unique index,
    whose duplicate check is bounded by the table's rows)."""
    return any(c.not_null and not c.has_default for s in request.ddl if s.kind == "add_column" for c in s.columns) \
        or any(s.kind == "create_index" and s.unique for s in request.ddl)


def unique_keys_to_check(request: DdlRequest, state: ServerState) -> tuple[list[DdlStatement], list[str]]:
    """The CREATE UNIQUE INDEX statements whose keys the server's rows can be checked for before the
    outage (the key's columns are there, no earlier statement empties or changes them), and a note for
    each one that cannot be checked."""
    checkable, notes = [], []
    earlier: list[DdlStatement] = []
    for stmt in resolve_tables(request.ddl, state):
        if stmt.kind == "create_index" and stmt.unique and stmt.table in state.tables:
            before = [e for e in earlier if e.table == stmt.table]
            changed = {c.name for e in before for c in e.columns} | {e.column for e in before if e.column}
            if any(e.kind == "truncate" for e in before):
                pass  # the table is empty when the index is built
            elif set(stmt.keys) & changed or not set(stmt.keys) <= set(state.tables[stmt.table].columns):
                notes.append(f"{stmt.text!r}: its key uses a column an earlier statement adds or changes, so its "
                             "rows cannot be checked for duplicates before the outage")
            else:
                checkable.append(stmt)
        earlier.append(stmt)
    return checkable, notes


def missing_targets(request: DdlRequest, name: str, state: ServerState) -> list[str]:
    """DROP COLUMN / DROP INDEX of something not on the server, where this request never ran the
    statement (no BEGAN/DONE record): a wrong name, or someone else's change, never "already done"."""
    problems = []
    for number, stmt in enumerate(resolve_tables(request.ddl, state)):
        if stmt.kind not in ("drop_column", "drop_index") or state.ddl_records.get(number) in ("BEGAN", "DONE"):
            continue
        if stmt.kind == "drop_column" and stmt.table in state.tables and stmt.column not in state.tables[stmt.table].columns:
            problems.append(f"{name}: {stmt.text!r}: column {stmt.column} is not in {stmt.table}, and no run of this "
                            "request dropped it (check the name; if it was dropped by hand, leave the statement out)")
        elif stmt.kind == "drop_index" and stmt.index not in state.index_tables:
            problems.append(f"{name}: {stmt.text!r}: index {stmt.index} does not exist, and no run of this request "
                            "dropped it (check the name; if it was dropped by hand, leave the statement out)")
    return problems


def predict(request: DdlRequest, name: str, state: ServerState) -> Prediction:
    """Walk the statements over one server that has none of them yet (progress 'before')."""
    result = Prediction()
    index_owner = dict(state.index_tables)  # USER.INDEX -> USER.TABLE, server-wide (names are per user)
    tables = {t: _Table(list(sorted(s.columns, key=lambda c: s.columns[c]["COLUMN_ORDER"])), dict(s.index_keys),
                        state.row_counts.get(t)) for t, s in state.tables.items()}
    for stmt in resolve_tables(request.ddl, state):
        table = tables.get(stmt.table or "")
        if table is None:
            continue  # preflight names a missing table (and a DROP INDEX it cannot place) already
        for problem in _judge(stmt, table, index_owner, result.notes, name):
            result.problems.append(f"{name}: {stmt.text!r}: {problem}")
        _apply(stmt, table, index_owner)
    return result


def _judge(stmt: DdlStatement, table: _Table, index_owner: dict[str, str], notes: list[str],
           server: str) -> list[str]:
    if stmt.kind == "add_column":
        problems = [f"column {c.name} is already in {stmt.table}" for c in stmt.columns if c.name in table.columns]
        if table.rows:
            problems += [f"{stmt.table} has {table.rows} rows and {c.name} is NOT NULL without a DEFAULT: Altibase "
                         "refuses it (ERR-3104A). Give it a DEFAULT, or add it nullable, fill it, then MODIFY it to "
                         "NOT NULL" for c in stmt.columns if c.not_null and not c.has_default]
        return problems
    if stmt.kind == "drop_column":
        if stmt.column not in table.columns:
            return []  # missing_targets judges it, with this request's records
        if len(table.columns) == 1:
            return [f"{stmt.column} is the last column of {stmt.table} (Altibase refuses: ERR-31026)"]
        multi = [(n, k) for n, k in table.indexes.items()
                 if k.constraint in ("PRIMARY KEY", "UNIQUE") and stmt.column in k.columns and len(k.columns) > 1]
        if multi:
            key = multi[0][1]
            return [f"{stmt.column} is part of the {key.constraint} ({', '.join(key.columns)}) of {stmt.table} "
                    "(Altibase refuses to drop a column of a multi-column key constraint: ERR-31321)"]
        if stmt.column in table.primary_key:
            return [f"{stmt.column} is the PRIMARY KEY of {stmt.table}: Altibase drops the key with the column, "
                    "and then refuses to add the table back to the replication (a replicated table must have a "
                    "primary key, ERR-61113) with the column's data already gone. Give the table another primary "
                    "key first, outside this procedure"]
        dropped = [n for n, k in table.indexes.items() if stmt.column in k.columns]
        if dropped:
            notes.append(f"{server}: {stmt.text!r} drops {', '.join(dropped)} with the column (Altibase drops "
                         "every index a dropped column is a key of)")
        return []
    if stmt.kind == "modify_column":
        column = stmt.columns[0].name
        return [] if column in table.columns else [f"column {column} is not in {stmt.table}"]
    if stmt.kind == "create_index":
        problems = [f"column {c} is not in {stmt.table}" for c in stmt.keys if c not in table.columns]
        if len(set(stmt.keys)) != len(stmt.keys):
            problems.append("a column is named twice in the index key (Altibase refuses: ERR-31051)")
        owner = index_owner.get(stmt.index or "")
        if owner is not None and owner != stmt.table:
            problems.append(f"the name {stmt.index} is taken by an index of {owner} (Altibase refuses: ERR-3104C)")
        return problems
    if stmt.kind == "drop_index":
        key = table.indexes.get(stmt.index or "")
        if key is not None and key.constraint:
            return [f"{stmt.index} is the index of {stmt.table}'s {key.constraint}; DROP INDEX cannot drop it "
                    "(Altibase refuses: ERR-3119E)"]
    return []


def _apply(stmt: DdlStatement, table: _Table, index_owner: dict[str, str]) -> None:
    if stmt.kind == "add_column":
        table.columns += [c.name for c in stmt.columns if c.name not in table.columns]
    elif stmt.kind == "drop_column" and stmt.column in table.columns:
        table.columns.remove(stmt.column)
        for name in [n for n, k in table.indexes.items() if stmt.column in k.columns]:
            del table.indexes[name]
            index_owner.pop(name, None)
    elif stmt.kind == "create_index" and stmt.index and stmt.table:
        table.indexes[stmt.index] = IndexKey(stmt.keys, stmt.unique)
        index_owner[stmt.index] = stmt.table
    elif stmt.kind == "drop_index" and stmt.index:
        table.indexes.pop(stmt.index, None)
        index_owner.pop(stmt.index, None)
    elif stmt.kind == "truncate":
        table.rows = 0 if table.rows is not None else None

