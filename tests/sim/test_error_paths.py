"""Every refusal the DAGs can meet on the simulator is one a real 7.1 server gives (issue 24).

The walk sends the statements the DAGs send — rendered from ``include/sql`` — in the states that make
a server refuse them, and checks each code and text against the server's message files
(``altibase_sim/errors.py``). ERR-FFFFF is the simulator's own code for a broken wire message; no
statement may meet it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from altibase_ops.ddl.statements import DDL_SQL_FILTERS
from altibase_ops.sql.templates import render_sql
from altibase_sim import dbapi
from altibase_sim.errors import MESSAGES
from tests.sim.helpers import query, run, seed_pair

TABLE = "CREATE TABLE T2 (C1 INTEGER PRIMARY KEY, C2 INTEGER, C3 INTEGER, C4 VARCHAR(10))"


def ddl(statement: str) -> str:
    """The statement as the DDL steps' script carries it."""
    return render_sql("ddl/run_ddl.sql", filters=DDL_SQL_FILTERS, ddl=[statement]).strip().rstrip(";")


def replication(template: str, **params) -> str:
    return render_sql(f"ddl/{template}.sql", replication_name="REP1", tables=["SYS.T1"], flush_wait_seconds=1,
                      **params).strip().rstrip(";")


STOPPED = [("node2", "ALTER REPLICATION REP1 STOP"), "ALTER REPLICATION REP1 STOP"]  # no sender, no receiver
# (what the server refuses, setup (on node1 unless named) after the seed's pair, the statement, the code 7.1 gives)
WALK = [
    ("a unique index over duplicate keys", ["INSERT INTO T2 VALUES (1, 5, 1, 'a')", "INSERT INTO T2 VALUES (2, 5, 2, 'b')"],
     ddl("CREATE UNIQUE INDEX SYS.T2_U ON SYS.T2 (C2)"), "11058"),
    ("a two-column unique index over keys equal with a NULL (NULL equals NULL in a key)",
     ["INSERT INTO T2 VALUES (1, 5, NULL, 'a')", "INSERT INTO T2 VALUES (2, 5, NULL, 'b')"],
     ddl("CREATE UNIQUE INDEX SYS.T2_U ON SYS.T2 (C2, C3)"), "11058"),
    ("an index name already used", ["CREATE INDEX T2_I ON T2 (C2)"], ddl("CREATE INDEX SYS.T2_I ON SYS.T2 (C3)"), "3104C"),
    ("an index on a column that is not there", [], ddl("CREATE INDEX SYS.T2_I ON SYS.T2 (C9)"), "31058"),
    ("a column added twice", [], ddl("ALTER TABLE SYS.T2 ADD COLUMN (C2 INTEGER)"), "31022"),
    ("NOT NULL without a DEFAULT on a table with rows", ["INSERT INTO T2 VALUES (1, 1, 1, 'a')"],
     ddl("ALTER TABLE SYS.T2 ADD COLUMN (C5 INTEGER NOT NULL)"), "3104A"),
    ("MODIFY to NOT NULL over NULLs", ["INSERT INTO T2 VALUES (1, NULL, 1, 'a')"],
     ddl("ALTER TABLE SYS.T2 MODIFY COLUMN (C2 INTEGER NOT NULL)"), "31074"),
    ("DROP COLUMN of a column that is not there", [], ddl("ALTER TABLE SYS.T2 DROP COLUMN C9"), "31058"),
    ("DROP INDEX of an index that is not there", [], ddl("DROP INDEX SYS.T2_NONE"), "31014"),
    ("a DDL on a table of a table that is not there", [], ddl("TRUNCATE TABLE SYS.T9"), "31031"),
    ("a DDL on a replicated table with REPLICATION_DDL_ENABLE 0", [], ddl("TRUNCATE TABLE SYS.T1"), "312C4"),
    ("START of a started replication", [], replication("start_replication"), "6100A"),
    ("DROP TABLE of the replication's last table", STOPPED, replication("drop_replication_table"), "6106F"),
    ("ADD TABLE of a table already there", STOPPED, replication("add_replication_table"), "11058"),
    ("ADMIN_MODE set out of range", [], "ALTER SYSTEM SET ADMIN_MODE = 7", "0104C"),
]


@pytest.mark.parametrize(("why", "setup", "statement", "code"), WALK, ids=[w[0] for w in WALK])
def test_every_refusal_the_dags_can_meet_carries_the_code_and_text_a_real_server_gives(engine, why, setup,
                                                                                      statement, code):
    seed_pair(engine)
    run(engine, "node1", TABLE)
    for step in setup:
        run(engine, *(step if isinstance(step, tuple) else ("node1", step)))
    with pytest.raises(dbapi.Error) as refused:
        run(engine, "node1", statement)
    assert refused.value.code == code, f"{why}: {refused.value}"
    # the text is the message file's (31058, 31031 name the object where the server quotes the statement)
    assert refused.value.code != "FFFFF" and refused.value.code in MESSAGES
    assert MESSAGES[code].split("{")[0].strip() in str(refused.value), f"{why}: {refused.value}"


def test_a_refused_unique_index_leaves_the_table_without_it_and_its_rows_as_they_were(engine):
    run(engine, "node1", TABLE, "INSERT INTO T2 VALUES (1, 5, NULL, 'a')", "INSERT INTO T2 VALUES (2, 5, NULL, 'b')",
        "INSERT INTO T2 VALUES (3, NULL, NULL, 'c')", "INSERT INTO T2 VALUES (4, NULL, NULL, 'd')")
    with pytest.raises(dbapi.Error):
        run(engine, "node1", "CREATE UNIQUE INDEX T2_U ON T2 (C2, C3)")
    assert query(engine, "node1", "SELECT COUNT(*) FROM SYSTEM_.SYS_INDICES_ WHERE INDEX_NAME = 'T2_U'") == [(0,)]
    assert query(engine, "node1", "SELECT COUNT(*) FROM T2") == [(4,)]
    # keys of only NULLs are exempt (smnbValuebaseBuild.cpp isRowUnique): rows 3 and 4 do not block it
    run(engine, "node1", "DELETE FROM T2 WHERE C1 = 2", "CREATE UNIQUE INDEX T2_U ON T2 (C2, C3)")
    with pytest.raises(dbapi.Error) as refused:  # and the index then refuses the same key with a NULL
        run(engine, "node1", "INSERT INTO T2 VALUES (5, 5, NULL, 'e')")
    assert refused.value.code == "11058"
    run(engine, "node1", "INSERT INTO T2 VALUES (6, NULL, NULL, 'f')")


# The simulator's own code stays where no SQL reaches: a request on a session that is not logged in or
# of a kind the wire protocol does not know, fewer bound values than '?', a closed connection, a
# simulator bug (caught so that the client sees it instead of a dead thread). The iSQL stand-in prints
# iSQL's own codes (ERR-91020, ERR-91015), never this one.
PROTOCOL_ONLY = {("simulation.py", "handle"), ("simulation.py", "serve"), ("sqlparse.py", "bind"),
                 ("dbapi.py", "_call")}


class _FFFFFSites(ast.NodeVisitor):
    def __init__(self, file: str):
        self.file, self.scope, self.sites = file, ["<module>"], set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "FFFFF" in node.value:
            self.sites.add((self.file, self.scope[-1]))


def test_the_simulators_own_error_code_is_raised_only_where_no_statement_reaches():
    sites: set[tuple[str, str]] = set()
    for path in Path("altibase_sim").glob("*.py"):
        if path.name != "errors.py":  # the table of codes itself
            finder = _FFFFFSites(path.name)
            finder.visit(ast.parse(path.read_text()))
            sites |= finder.sites
    assert ("sqlparse.py", "bind") in sites  # the walk sees the sites it must see
    assert sites <= PROTOCOL_ONLY, f"ERR-FFFFF raised in {sorted(sites - PROTOCOL_ONLY)}"
