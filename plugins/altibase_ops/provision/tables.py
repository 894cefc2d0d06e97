"""The tables provisioning creates: the seed's text form (``t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)``)
parsed into validated structures. Names follow the shared identifier pattern and are no reserved word."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from altibase_ops.sql.identifiers import IDENTIFIER_PATTERN, split_top_level


class ProvisionSpecError(ValueError):
    """The provisioning parameters are invalid; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str]):
        self.problems = tuple(problems)
        super().__init__("invalid provisioning parameters:\n" + "\n".join(f"  - {p}" for p in problems))


def identifier_problem(what: str, value: object) -> str | None:
    """Why ``value`` cannot be used as an unquoted SQL identifier, or None if it can."""
    # fullmatch, not match: the pattern's `$` would let a trailing newline through.
    if not isinstance(value, str) or not IDENTIFIER_PATTERN.fullmatch(value):
        return (
            f"{what} {value!r}: must start with a letter and contain only letters, digits and '_' "
            "(at most 40 characters)"
        )
    if value.upper() in _RESERVED_WORDS:
        return f"{what} {value!r}: is an SQL reserved word"
    return None


# Table, column and replication names follow the shared identifier pattern (the one the SQL
# templates' `ident` filter enforces again at rendering) and must not be a word the statements
# would misparse.
_RESERVED_WORDS = frozenset(
    """ADD ALL ALTER AND ANY AS ASC BETWEEN BY CHECK COLUMN CONSTRAINT CREATE DEFAULT DELETE DESC
    DISTINCT DROP EXISTS FOR FOREIGN FROM GRANT GROUP HAVING IN INDEX INSERT INTO IS KEY LIKE NOT
    NULL OF ON OR ORDER PRIMARY REFERENCES REPLICATION REVOKE SELECT SET START STOP SYNC TABLE TO
    UNION UNIQUE UPDATE USER VALUES VIEW WHERE WITH""".split()
)


_NUMERIC_TYPES = ("SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE", "FLOAT", "NUMERIC", "DECIMAL", "NUMBER")
_CHARACTER_TYPES = ("CHAR", "VARCHAR", "NCHAR", "NVARCHAR")
_COLUMN_TYPE = re.compile(
    r"(?P<base>SMALLINT|INTEGER|BIGINT|REAL|DOUBLE|DATE)"
    r"|(?P<float>FLOAT)(?:\s*\(\s*(?P<float_precision>\d{1,2})\s*\))?"
    r"|(?P<exact>NUMERIC|DECIMAL|NUMBER)(?:\s*\(\s*(?P<precision>\d{1,2})\s*(?:,\s*(?P<scale>\d{1,2})\s*)?\))?"
    r"|(?P<char>CHAR|VARCHAR|NCHAR|NVARCHAR)\s*\(\s*(?P<length>\d{1,5})\s*\)",
    re.IGNORECASE | re.ASCII,
)
_COLUMN = re.compile(
    r"(?P<name>\w+)\s+(?P<type>[A-Za-z]+(?:\s*\([\d\s,]*\))?)(?P<constraints>(?:\s+\w+)*)",
)
_TABLE_PRIMARY_KEY = re.compile(r"PRIMARY\s+KEY\s*\((?P<columns>[\w\s,]+)\)", re.IGNORECASE | re.ASCII)
_TABLE = re.compile(r"\s*(?P<name>\w+)\s*\((?P<body>.*)\)\s*;?\s*", re.DOTALL)


@dataclass(frozen=True)
class ColumnSpec:
    """One column: a validated identifier, a canonical type (``INTEGER``, ``VARCHAR(20)``…)."""

    name: str
    type: str
    nullable: bool = True

    @property
    def is_numeric(self) -> bool:
        return self.type.split("(")[0] in _NUMERIC_TYPES

    @property
    def is_character(self) -> bool:
        return self.type.split("(")[0] in _CHARACTER_TYPES

    @property
    def length(self) -> int | None:
        """The declared length of a character column."""
        if not self.is_character:
            return None
        return int(self.type.split("(")[1].rstrip(")"))


@dataclass(frozen=True)
class TableSpec:
    """A table to create on every node and replicate (``sys.<name>``, as in the seed)."""

    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]

    def problems(self) -> list[str]:
        found = []
        if problem := identifier_problem("table name", self.name):
            found.append(problem)
        if not self.columns:
            found.append(f"table {self.name!r}: has no columns")
        seen: set[str] = set()
        for column in self.columns:
            if problem := identifier_problem(f"table {self.name!r}: column name", column.name):
                found.append(problem)
            if not _COLUMN_TYPE.fullmatch(column.type):
                found.append(
                    f"table {self.name!r}: column {column.name!r} has unsupported type {column.type!r}"
                )
            if column.name.upper() in seen:
                found.append(f"table {self.name!r}: column {column.name!r} is declared twice")
            seen.add(column.name.upper())
        if not self.primary_key:
            # Replication refuses tables without a primary key (Replication Manual).
            found.append(f"table {self.name!r}: needs a PRIMARY KEY to be replicated")
        # Exact spelling: the templates compare key and column names as written.
        declared = {column.name for column in self.columns}
        for key_column in self.primary_key:
            if key_column not in declared:
                found.append(f"table {self.name!r}: primary key column {key_column!r} is not a column")
        return found


def _canonical_type(text: str) -> str | None:
    match = _COLUMN_TYPE.fullmatch(text.strip())
    if match is None:
        return None
    if match["base"]:
        return match["base"].upper()
    if match["float"]:
        precision = match["float_precision"]
        return f"FLOAT({precision})" if precision else "FLOAT"
    if match["exact"]:
        kind, precision, scale = match["exact"].upper(), match["precision"], match["scale"]
        if precision is None:
            return kind
        return f"{kind}({precision},{scale})" if scale is not None else f"{kind}({precision})"
    return f"{match['char'].upper()}({int(match['length'])})"


def parse_table(text: str) -> TableSpec:
    """Parse ``name (column TYPE [PRIMARY KEY|NOT NULL]…, … [, PRIMARY KEY (a, b)])``.

    Only this small grammar is accepted — anything else is rejected rather than passed on, because
    the result is rendered into SQL.
    """
    match = _TABLE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ProvisionSpecError([f"table {text!r}: expected 'name (column TYPE, …)'"])
    name, problems = match["name"], []
    columns: list[ColumnSpec] = []
    primary_key: list[str] = []
    for item in split_top_level(match["body"]):
        if key := _TABLE_PRIMARY_KEY.fullmatch(item):
            primary_key.extend(column.strip() for column in key["columns"].split(","))
            continue
        column = _COLUMN.fullmatch(item)
        canonical = _canonical_type(column["type"]) if column else None
        if column is None or canonical is None:
            problems.append(f"table {name!r}: cannot read column definition {item!r}")
            continue
        words = column["constraints"].upper().split()
        constraints = " ".join(words)
        nullable = True
        if constraints in ("PRIMARY KEY", "NOT NULL PRIMARY KEY", "PRIMARY KEY NOT NULL"):
            primary_key.append(column["name"])
            nullable = False
        elif constraints == "NOT NULL":
            nullable = False
        elif constraints:
            problems.append(
                f"table {name!r}: column {column['name']!r} has unsupported constraint {constraints!r}"
            )
        columns.append(ColumnSpec(column["name"], canonical, nullable))
    if problems:
        raise ProvisionSpecError(problems)
    # Key columns take the spelling of their declaration, so the SQL templates can compare names.
    declared = {column.name.upper(): column.name for column in columns}
    primary_key = [declared.get(key.upper(), key) for key in primary_key]
    columns = [ColumnSpec(c.name, c.type, False) if c.name in primary_key else c for c in columns]
    return TableSpec(name, tuple(columns), tuple(primary_key))


