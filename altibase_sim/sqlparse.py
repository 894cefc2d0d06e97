"""Parser for the subset of Altibase SQL the simulator serves.

Statements become small dataclasses; expressions (WHERE, select lists, values) are checked against a
strict grammar and translated to SQLite text with bound parameters. Anything outside the subset is
an Altibase syntax error (ERR-31001), never a silent success.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from altibase_sim.errors import AltibaseError, error

_TOKEN = re.compile(r"""
    (?P<ws>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")+")
  | (?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)
  | (?P<id>[A-Za-z_][A-Za-z0-9_$#]*)
  | (?P<op><>|!=|<=|>=|\|\||[=<>+\-*/(),.;?])
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str  # str, qid, num, id, op, end
    value: str
    pos: int

    @property
    def upper(self) -> str:
        return self.value.upper() if self.kind == "id" else self.value


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        if not match:
            raise syntax_error(f"parse error near '{sql[pos:pos + 20]}'")
        kind = match.lastgroup
        if kind != "ws":
            text = match.group()
            if kind == "str":
                text = text[1:-1].replace("''", "'")
            elif kind == "qid":
                text = text[1:-1].replace('""', '"')
            tokens.append(Token(kind, text, match.start()))
        pos = match.end()
    while tokens and tokens[-1].kind == "op" and tokens[-1].value == ";":
        tokens.pop()
    tokens.append(Token("end", "", len(sql)))
    return tokens


def syntax_error(detail: str) -> AltibaseError:
    return error("31001", detail=detail)


# --------------------------------------------------------------------------- statements
@dataclass
class ColumnDef:
    name: str
    type_name: str  # INTEGER, VARCHAR, ...
    precision: int | None = None
    scale: int | None = None
    nullable: bool = True
    default: Any = None
    primary_key: bool = False

    def signature(self) -> tuple:
        """What two servers must agree on for the table definitions to be 'the same'."""
        return (self.name, self.type_name, self.precision, self.scale, self.nullable)

    def type_text(self) -> str:
        if self.precision is None:
            return self.type_name
        if self.scale is None:
            return f"{self.type_name}({self.precision})"
        return f"{self.type_name}({self.precision},{self.scale})"

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type_name, "precision": self.precision, "scale": self.scale,
                "nullable": self.nullable, "default": self.default}

    @classmethod
    def from_json(cls, data: dict) -> ColumnDef:
        return cls(data["name"], data["type"], data["precision"], data["scale"], data["nullable"],
                   data["default"])


@dataclass
class Name:
    user: str | None
    name: str

    def qualified(self, default_user: str) -> tuple[str, str]:
        return (self.user or default_user, self.name)


@dataclass
class CreateTable:
    table: Name
    columns: list[ColumnDef]
    primary_key: list[str]
    unique_keys: list[list[str]] = field(default_factory=list)  # UNIQUE (…) constraints


@dataclass
class DropTable:
    table: Name


@dataclass
class AlterTableAdd:
    table: Name
    columns: list[ColumnDef]


@dataclass
class AlterTableDrop:
    table: Name
    columns: list[str]


@dataclass
class AlterTableModify:
    table: Name
    columns: list[ColumnDef]


@dataclass
class CreateIndex:
    index: Name
    table: Name
    columns: list[str]
    unique: bool


@dataclass
class DropIndex:
    index: Name


@dataclass
class Truncate:
    table: Name


@dataclass
class CreateUser:
    user: str
    password: str


@dataclass
class DropUser:
    user: str


@dataclass
class Expr:
    """A checked expression already translated to SQLite text (``?`` for every bound value)."""
    sql: str
    params: list[Any] = field(default_factory=list)
    text: str = ""  # the original text, upper-cased outside strings (column headings)
    uses_session_id: bool = False
    columns: list[tuple[str | None, str]] = field(default_factory=list)  # (qualifier, column) references


@dataclass
class Insert:
    table: Name
    columns: list[str] | None
    values: list[Expr]


@dataclass
class Update:
    table: Name
    assignments: list[tuple[str, Expr]]
    where: Expr | None


@dataclass
class Delete:
    table: Name
    where: Expr | None


@dataclass
class SelectItem:
    expr: Expr
    alias: str | None
    star: bool = False


@dataclass
class Select:
    items: list[SelectItem]
    sources: list[tuple[Name, str | None]]  # (table, alias)
    where: Expr | None
    group_by: list[Expr]
    order_by: list[tuple[Expr, str]]
    distinct: bool
    having: Expr | None = None
    limit: int | None = None  # LIMIT n (Altibase also takes LIMIT offset, n; the tool never sends it)


@dataclass
class Commit:
    pass


@dataclass
class Rollback:
    pass


@dataclass
class AlterSystemSet:
    name: str
    value: Any


@dataclass
class CreateReplication:
    name: str
    mode: str
    hosts: list[tuple[str, int]]
    items: list[tuple[Name, Name]]


@dataclass
class DropReplication:
    name: str


@dataclass
class AlterReplication:
    name: str
    action: str  # START, QUICKSTART, SYNC, STOP, RESET, FLUSH, ADD_TABLE, DROP_TABLE
    retry: bool = False
    flush_all: bool = False
    wait: int | None = None
    item: tuple[Name, Name] | None = None
    parallel: int | None = None


_TYPES = {"INTEGER", "INT", "BIGINT", "SMALLINT", "NUMERIC", "NUMBER", "DECIMAL", "CHAR", "VARCHAR",
          "NCHAR", "NVARCHAR", "DATE", "DOUBLE", "FLOAT", "REAL"}
_TYPE_ALIASES = {"INT": "INTEGER", "DECIMAL": "NUMERIC"}
_FUNCTIONS = {"COUNT", "SUM", "MIN", "MAX", "AVG", "UPPER", "LOWER", "LENGTH", "ABS", "MOD", "SUBSTR", "DIGEST",
              "HEX_TO_NUM"}
_FUNCTION_SQLITE = {"NVL": "IFNULL"}
_EXPR_KEYWORDS = {"AND", "OR", "NOT", "IS", "NULL", "IN", "BETWEEN", "LIKE", "ESCAPE"}
_STOP_WORDS = {"FROM", "WHERE", "ORDER", "GROUP", "AS", "ASC", "DESC", "BY", "HAVING", "SET", "VALUES",
               "UNION", "SELECT", "INTO", "ON", "JOIN", "LIMIT"}


class Parser:
    def __init__(self, sql: str):
        self.sql = sql
        self.tokens = tokenize(sql)
        self.i = 0

    # ----------------------------------------------------------------- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def fail(self, what: str = "") -> AltibaseError:
        tok = self.tok
        near = self.sql[tok.pos:tok.pos + 30].split("\n")[0] if tok.kind != "end" else "end of statement"
        return syntax_error(f"parse error{': ' + what if what else ''} near '{near}'")

    def at(self, *words: str) -> bool:
        return self.tok.kind == "id" and self.tok.upper in words

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def accept(self, *words: str) -> bool:
        if self.at(*words):
            self.i += 1
            return True
        return False

    def accept_op(self, op: str) -> bool:
        if self.at_op(op):
            self.i += 1
            return True
        return False

    def expect(self, *words: str) -> str:
        if not self.at(*words):
            raise self.fail(f"expected {' or '.join(words)}")
        word = self.tok.upper
        self.i += 1
        return word

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            raise self.fail(f"expected '{op}'")

    def ident(self) -> str:
        tok = self.tok
        if tok.kind == "id":
            self.i += 1
            return tok.upper
        if tok.kind == "qid":
            self.i += 1
            return tok.value
        raise self.fail("expected a name")

    def name(self) -> Name:
        first = self.ident()
        if self.accept_op("."):
            return Name(first, self.ident())
        return Name(None, first)

    def integer(self) -> int:
        tok = self.tok
        if tok.kind != "num" or not tok.value.isdigit():
            raise self.fail("expected an integer")
        self.i += 1
        return int(tok.value)

    def string(self) -> str:
        tok = self.tok
        if tok.kind != "str":
            raise self.fail("expected a string")
        self.i += 1
        return tok.value

    def end(self) -> None:
        if self.tok.kind != "end":
            raise self.fail()

    # ----------------------------------------------------------------- entry point
    def statement(self) -> Any:
        if self.tok.kind == "end":
            raise self.fail("empty statement")
        word = self.tok.upper
        handler = {"CREATE": self.create, "DROP": self.drop, "ALTER": self.alter, "TRUNCATE": self.truncate,
                   "INSERT": self.insert, "UPDATE": self.update, "DELETE": self.delete,
                   "SELECT": self.select, "COMMIT": self.commit, "ROLLBACK": self.rollback}.get(word)
        if handler is None or self.tok.kind != "id":
            raise self.fail()
        stmt = handler()
        self.end()
        return stmt

    def commit(self) -> Commit:
        self.expect("COMMIT")
        self.accept("WORK")
        return Commit()

    def rollback(self) -> Rollback:
        self.expect("ROLLBACK")
        self.accept("WORK")
        return Rollback()

    # ----------------------------------------------------------------- DDL
    def create(self) -> Any:
        self.expect("CREATE")
        if self.accept("TABLE"):
            return self.create_table()
        if self.at("UNIQUE", "INDEX"):
            unique = self.accept("UNIQUE")
            self.expect("INDEX")
            index = self.name()
            self.expect("ON")
            table = self.name()
            columns = self.paren_names()
            return CreateIndex(index, table, columns, unique)
        if self.at("LAZY", "EAGER", "REPLICATION"):
            return self.create_replication()
        if self.accept("USER"):
            user = self.ident()
            self.expect("IDENTIFIED")
            self.expect("BY")
            if self.tok.kind not in ("id", "qid", "str"):
                raise self.fail("expected a password")
            password = self.tok.value  # case as written
            self.i += 1
            return CreateUser(user, password)
        raise self.fail()

    def create_table(self) -> CreateTable:
        table = self.name()
        self.expect_op("(")
        columns: list[ColumnDef] = []
        primary_key: list[str] = []
        unique_keys: list[list[str]] = []
        while True:
            named = self.accept("CONSTRAINT") and bool(self.ident())
            if self.accept("UNIQUE"):
                unique_keys.append(self.paren_names())
            elif self.at("PRIMARY"):
                self.expect("PRIMARY")
                self.expect("KEY")
                primary_key = self.paren_names()
            elif named:
                raise self.fail("expected PRIMARY KEY or UNIQUE")
            else:
                columns.append(self.column_def())
            if self.accept_op(")"):
                break
            self.expect_op(",")
        inline = [c.name for c in columns if c.primary_key]
        if inline and primary_key:
            raise syntax_error("a table has one primary key")
        return CreateTable(table, columns, primary_key or inline, unique_keys)

    def column_def(self) -> ColumnDef:
        name = self.ident()
        if not self.at(*_TYPES):
            raise self.fail("expected a data type")
        type_name = _TYPE_ALIASES.get(self.tok.upper, self.tok.upper)
        self.i += 1
        if type_name == "DOUBLE":
            self.accept("PRECISION")
        col = ColumnDef(name, type_name)
        if self.accept_op("("):
            col.precision = self.integer()
            if self.accept_op(","):
                col.scale = self.integer()
            self.expect_op(")")
        if type_name in ("VARCHAR", "NVARCHAR") and col.precision is None:
            raise self.fail("VARCHAR needs a length")
        while True:
            if self.accept("DEFAULT"):
                col.default = self.literal()
            elif self.at("NOT"):
                self.i += 1
                self.expect("NULL")
                col.nullable = False
            elif self.accept("NULL"):
                col.nullable = True
            elif self.at("PRIMARY"):
                self.i += 1
                self.expect("KEY")
                col.primary_key = True
                col.nullable = False
            else:
                return col

    def literal(self) -> Any:
        tok = self.tok
        negative = False
        if tok.kind == "op" and tok.value == "-":
            negative = True
            self.i += 1
            tok = self.tok
        if tok.kind == "num":
            self.i += 1
            value = float(tok.value) if any(c in tok.value for c in ".eE") else int(tok.value)
            return -value if negative else value
        if negative:
            raise self.fail("expected a number")
        if tok.kind == "str":
            self.i += 1
            return tok.value
        if self.accept("NULL"):
            return None
        raise self.fail("expected a literal")

    def paren_names(self) -> list[str]:
        self.expect_op("(")
        names = [self.ident()]
        while self.accept_op(","):
            names.append(self.ident())
        self.expect_op(")")
        return names

    def drop(self) -> Any:
        self.expect("DROP")
        if self.accept("TABLE"):
            return DropTable(self.name())
        if self.accept("INDEX"):
            return DropIndex(self.name())
        if self.accept("REPLICATION"):
            return DropReplication(self.ident())
        if self.accept("USER"):
            return DropUser(self.ident())
        raise self.fail()

    def truncate(self) -> Truncate:
        self.expect("TRUNCATE")
        self.expect("TABLE")
        return Truncate(self.name())

    def alter(self) -> Any:
        self.expect("ALTER")
        if self.accept("TABLE"):
            table = self.name()
            if self.accept("ADD"):
                # Altibase: ALTER TABLE t ADD COLUMN ( column_definition [, ...] )
                self.expect("COLUMN")
                return AlterTableAdd(table, self.paren_column_defs())
            if self.accept("DROP"):
                self.expect("COLUMN")
                if self.at_op("("):
                    return AlterTableDrop(table, self.paren_names())
                return AlterTableDrop(table, [self.ident()])
            if self.accept("MODIFY"):
                self.expect("COLUMN")
                return AlterTableModify(table, self.paren_column_defs())
            raise self.fail()
        if self.accept("SYSTEM"):
            self.expect("SET")
            name = self.ident()
            self.expect_op("=")
            return AlterSystemSet(name, self.literal())
        if self.accept("REPLICATION"):
            return self.alter_replication()
        raise self.fail()

    def paren_column_defs(self) -> list[ColumnDef]:
        self.expect_op("(")
        cols = [self.column_def()]
        while self.accept_op(","):
            cols.append(self.column_def())
        self.expect_op(")")
        return cols

    # ----------------------------------------------------------------- replication
    def create_replication(self) -> CreateReplication:
        mode = "LAZY"
        if self.at("LAZY", "EAGER"):
            mode = self.tok.upper
            self.i += 1
        self.expect("REPLICATION")
        name = self.ident()
        self.expect("WITH")
        hosts = [(self.string(), self.port())]
        while self.tok.kind == "op" and self.tok.value == "," and self.peek().kind == "str":
            self.i += 1
            hosts.append((self.string(), self.port()))
        while self.tok.kind == "str":
            hosts.append((self.string(), self.port()))
        items = [self.repl_item()]
        while self.accept_op(","):
            items.append(self.repl_item())
        return CreateReplication(name, mode, hosts, items)

    def port(self) -> int:
        self.expect_op(",")
        return self.integer()

    def repl_item(self) -> tuple[Name, Name]:
        self.expect("FROM")
        local = self.name()
        self.expect("TO")
        remote = self.name()
        if local.user is None or remote.user is None:
            raise syntax_error("replication items are written FROM user.table TO user.table")
        return (local, remote)

    def alter_replication(self) -> AlterReplication:
        name = self.ident()
        word = self.expect("START", "QUICKSTART", "SYNC", "STOP", "RESET", "FLUSH", "ADD", "DROP")
        stmt = AlterReplication(name, word)
        if word in ("START", "QUICKSTART"):
            stmt.retry = self.accept("RETRY")
        elif word == "SYNC":
            if self.accept("PARALLEL"):
                stmt.parallel = self.integer()
        elif word == "FLUSH":
            stmt.flush_all = self.accept("ALL")
            if self.accept("WAIT"):
                stmt.wait = self.integer()
        elif word in ("ADD", "DROP"):
            self.expect("TABLE")
            stmt.action = f"{word}_TABLE"
            stmt.item = self.repl_item()
        return stmt

    # ----------------------------------------------------------------- DML
    def insert(self) -> Insert:
        self.expect("INSERT")
        self.expect("INTO")
        table = self.name()
        columns = self.paren_names() if self.at_op("(") else None
        self.expect("VALUES")
        self.expect_op("(")
        values = [self.expr()]
        while self.accept_op(","):
            values.append(self.expr())
        self.expect_op(")")
        return Insert(table, columns, values)

    def update(self) -> Update:
        self.expect("UPDATE")
        table = self.name()
        self.expect("SET")
        assignments = []
        while True:
            column = self.ident()
            self.expect_op("=")
            assignments.append((column, self.expr()))
            if not self.accept_op(","):
                break
        where = self.expr() if self.accept("WHERE") else None
        return Update(table, assignments, where)

    def delete(self) -> Delete:
        self.expect("DELETE")
        self.accept("FROM")
        table = self.name()
        where = self.expr() if self.accept("WHERE") else None
        return Delete(table, where)

    def select(self) -> Select:
        self.expect("SELECT")
        distinct = self.accept("DISTINCT")
        items = [self.select_item()]
        while self.accept_op(","):
            items.append(self.select_item())
        self.expect("FROM")
        sources = [self.source()]
        while self.accept_op(","):
            sources.append(self.source())
        where = self.expr() if self.accept("WHERE") else None
        group_by: list[Expr] = []
        if self.accept("GROUP"):
            self.expect("BY")
            group_by = [self.expr()]
            while self.accept_op(","):
                group_by.append(self.expr())
        having = self.expr() if group_by and self.accept("HAVING") else None
        order_by: list[tuple[Expr, str]] = []
        if self.accept("ORDER"):
            self.expect("BY")
            while True:
                expr = self.expr()
                direction = "DESC" if self.accept("DESC") else ("ASC" if self.accept("ASC") or True else "")
                order_by.append((expr, direction))
                if not self.accept_op(","):
                    break
        limit = None
        if self.accept("LIMIT"):
            if self.tok.kind != "num" or not self.tok.value.isdigit():
                raise self.fail("LIMIT takes a row count")
            limit = int(self.tok.value)
            self.i += 1
        return Select(items, sources, where, group_by, order_by, distinct, having, limit)

    def select_item(self) -> SelectItem:
        if self.at_op("*"):
            self.i += 1
            return SelectItem(Expr("*", text="*"), None, star=True)
        expr = self.expr()
        alias = None
        if self.accept("AS"):
            alias = self.ident()
        elif self.tok.kind in ("id", "qid") and self.tok.upper not in _STOP_WORDS:
            alias = self.ident()
        return SelectItem(expr, alias)

    def source(self) -> tuple[Name, str | None]:
        table = self.name()
        alias = None
        if self.tok.kind in ("id", "qid") and self.tok.upper not in _STOP_WORDS:
            alias = self.ident()
        return (table, alias)

    # ----------------------------------------------------------------- expressions
    def expr(self) -> Expr:
        """Consume one expression (until a stop word, a comma or a closing parenthesis at depth 0)."""
        start = self.i
        out: list[str] = []
        params: list[Any] = []
        depth = 0
        uses_session_id = False
        refs: list[tuple[str | None, str]] = []
        expect_operand = True
        while True:
            tok = self.tok
            if tok.kind == "end":
                break
            if tok.kind == "op":
                if tok.value == ";":
                    raise self.fail("one statement at a time")
                if tok.value == "(":
                    depth += 1
                    out.append("(")
                    expect_operand = True
                elif tok.value == ")":
                    if depth == 0:
                        break
                    depth -= 1
                    out.append(")")
                    expect_operand = False
                elif tok.value == ",":
                    if depth == 0:
                        break
                    out.append(",")
                    expect_operand = True
                elif tok.value == "?":
                    out.append("?")
                    params.append(_PARAM)
                    expect_operand = False
                elif tok.value == "*":
                    out.append("*")
                    # '*' is an operand only inside COUNT(*)
                    expect_operand = not (out[-2:-1] == ["("])
                elif tok.value == ".":
                    raise self.fail()
                else:
                    out.append(tok.value if tok.value != "!=" else "<>")
                    expect_operand = True
                self.i += 1
                continue
            if tok.kind in ("id", "qid") and tok.kind == "id" and tok.upper in _STOP_WORDS:
                break
            if not expect_operand and not (tok.kind == "id" and tok.upper in _EXPR_KEYWORDS):
                break  # an alias or the next clause
            self.i += 1
            if tok.kind == "str":
                out.append("?")
                params.append(tok.value)
                expect_operand = False
            elif tok.kind == "num":
                out.append(tok.value)
                expect_operand = False
            elif tok.kind == "id" and tok.upper in _EXPR_KEYWORDS:
                out.append(tok.upper)
                expect_operand = tok.upper not in ("NULL",)
            elif tok.kind == "id" and self.at_op("("):
                fname = tok.upper
                if fname == "SESSION_ID":
                    self.expect_op("(")
                    self.expect_op(")")
                    out.append("?")
                    params.append(_SESSION_ID)
                    uses_session_id = True
                    expect_operand = False
                elif fname in _FUNCTIONS or fname in _FUNCTION_SQLITE:
                    out.append(_FUNCTION_SQLITE.get(fname, fname))
                    expect_operand = True
                else:
                    raise syntax_error(f"unknown function {fname}")
            else:
                ident = tok.upper if tok.kind == "id" else tok.value
                if self.accept_op("."):
                    ident2 = self.ident()
                    out.append(f'"{ident}"."{ident2}"')
                    refs.append((ident, ident2))
                else:
                    out.append(f'"{ident}"')
                    refs.append((None, ident))
                expect_operand = False
        if depth != 0:
            raise self.fail("unbalanced parentheses")
        if not out:
            raise self.fail("expected an expression")
        end_pos = self.tok.pos
        text = _upper_outside_strings(self.sql[self.tokens[start].pos:end_pos].strip())
        return Expr(" ".join(out), params, text, uses_session_id, refs)


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_PARAM = _Marker("PARAM")
_SESSION_ID = _Marker("SESSION_ID")


def bind(expr_params: list[Any], user_params: list[Any], session_id: int) -> list[Any]:
    """Replace markers by the caller's ? parameters (consumed in order) and the session id."""
    bound = []
    for value in expr_params:
        if value is _PARAM:
            if not user_params:
                raise error("FFFFF", detail="not enough parameters bound")
            bound.append(user_params.pop(0))
        elif value is _SESSION_ID:
            bound.append(session_id)
        else:
            bound.append(value)
    return bound


def _upper_outside_strings(text: str) -> str:
    parts = re.split(r"('(?:[^']|'')*')", text)
    return "".join(p if p.startswith("'") else p.upper() for p in parts)


def parse(sql: str) -> Any:
    return Parser(sql).statement()


def split_statements(script: str) -> list[str]:
    """Split a script on ';' outside strings and comments (what iSQL does with a -f file)."""
    statements, current, i = [], [], 0
    while i < len(script):
        ch = script[i]
        if ch == "'":
            j = i + 1
            while j < len(script):
                if script[j] == "'" and script[j + 1:j + 2] == "'":
                    j += 2
                    continue
                if script[j] == "'":
                    break
                j += 1
            current.append(script[i:j + 1])
            i = j + 1
            continue
        if script.startswith("--", i):
            j = script.find("\n", i)
            j = len(script) if j < 0 else j
            i = j
            continue
        if script.startswith("/*", i):
            j = script.find("*/", i + 2)
            i = len(script) if j < 0 else j + 2
            continue
        if ch == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    tail = "".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s]
