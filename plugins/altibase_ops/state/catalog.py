"""What the system catalog says about a table: column type codes and a table's definition.

Shared by the jobs that compare definitions: the DDL job (is a statement applied? do the servers
agree?) and provisioning (does an existing table match the params?).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# SYSTEM_.SYS_COLUMNS_.DATA_TYPE codes (General Reference-2)
TYPE_CODES = {"CHAR": 1, "VARCHAR": 12, "NUMERIC": 2, "NUMBER": 6, "FLOAT": 6, "DOUBLE": 8, "REAL": 7,
              "BIGINT": -5, "INTEGER": 4, "SMALLINT": 5, "DATE": 9, "NCHAR": -8, "NVARCHAR": -9}


@dataclass
class TableState:
    """A table's definition on one server, as the dictionary reports it."""
    columns: dict[str, dict[str, Any]]  # name -> {DATA_TYPE, PRECISION, SCALE, IS_NULLABLE, COLUMN_ORDER}
    indexes: set[str]  # USER.INDEX

    def signature(self) -> list:
        return [[name, c["DATA_TYPE"], c["PRECISION"], c["SCALE"], c["IS_NULLABLE"]]
                for name, c in sorted(self.columns.items(), key=lambda kv: kv[1]["COLUMN_ORDER"])]
