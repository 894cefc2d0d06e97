"""What the system catalog says about a table: column type codes and a table's definition.

Shared by the jobs that compare definitions: the DDL job (is a statement applied? do the servers
agree?) and provisioning (does an existing table match the params?).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# SYSTEM_.SYS_COLUMNS_.DATA_TYPE codes (General Reference-2)
TYPE_CODES = {"CHAR": 1, "VARCHAR": 12, "NUMERIC": 2, "NUMBER": 6, "FLOAT": 6, "DOUBLE": 8, "REAL": 7,
              "BIGINT": -5, "INTEGER": 4, "SMALLINT": 5, "DATE": 9, "NCHAR": -8, "NVARCHAR": -9}


# SYS_CONSTRAINTS_.CONSTRAINT_TYPE of the key constraints (qdParseTree.h qdConstraintType)
KEY_CONSTRAINT_TYPES = {2: "UNIQUE", 3: "PRIMARY KEY"}
# Altibase names what it creates itself (a key constraint's index: __SYS_IDX_ID_<n>) with this prefix;
# the number differs between servers, so such an index is compared by what it is, not by its name
SYSTEM_NAME_PREFIX = "__SYS_"


@dataclass(frozen=True)
class IndexKey:
    """An index of a table: its key columns in order, unique or not, and the constraint it serves."""
    columns: tuple[str, ...]
    unique: bool
    constraint: str | None = None  # "PRIMARY KEY" | "UNIQUE" | None for a plain CREATE [UNIQUE] INDEX

    def describe(self, name: str) -> str:
        what = self.constraint or ("UNIQUE INDEX" if self.unique else "INDEX")
        label = what if name.split(".")[-1].startswith(SYSTEM_NAME_PREFIX) else f"{what} {name}"
        return f"{label} ({', '.join(self.columns)})"


@dataclass
class TableState:
    """A table's definition on one server, as the dictionary reports it."""
    columns: dict[str, dict[str, Any]]  # name -> {DATA_TYPE, PRECISION, SCALE, IS_NULLABLE, COLUMN_ORDER}
    indexes: set[str]  # USER.INDEX
    index_keys: dict[str, IndexKey] = field(default_factory=dict)  # USER.INDEX -> its key

    @property
    def primary_key(self) -> tuple[str, ...]:
        return next((k.columns for k in self.index_keys.values() if k.constraint == "PRIMARY KEY"), ())

    def signature(self) -> list:
        """What must be equal on both servers: the columns in order, then the indexes and key
        constraints (system-named ones by what they are)."""
        columns = [[name, c["DATA_TYPE"], c["PRECISION"], c["SCALE"], c["IS_NULLABLE"]]
                   for name, c in sorted(self.columns.items(), key=lambda kv: kv[1]["COLUMN_ORDER"])]
        return columns + sorted(key.describe(name) for name, key in self.index_keys.items())
