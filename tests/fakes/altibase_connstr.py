"""How the Altibase 7.1 ODBC driver reads a connection string, and what the server then makes of the
user and password: the rules written down from the vendor's source, to prove our strings round-trip.

- ``parse``: ``ulnConnStrParse`` (src/ul/uln/ulnParse.c): pairs split on ';'; whitespace is ASCII
  only; a key is ``[A-Za-z_][A-Za-z0-9_]*``; a value is bare (to the next ';', trailing whitespace
  trimmed, '=' '{' '}' literal), ``"…"`` (to the next '"', no escape, quotes kept), ``(…)`` or ``[…]``
  (restricted characters, delimiters kept); ``KEY=;`` sets nothing. Keys are case-insensitive.
- ``server_password`` / ``server_user``: mtl.cpp: one outer pair of '"' or "'" is removed; the
  password is then upper-cased (CASE_SENSITIVE_PASSWORD = 0, the default), a bare user name too.
"""

from __future__ import annotations

WHITESPACE = set(b"\t\n\x0b\x0c\r ")


class ConnStrFormatError(ValueError):
    """The driver's HY090 'Invalid connection string format' (ERR-5108D)."""


def _alpha(c: int) -> bool:
    return 65 <= c <= 90 or 97 <= c <= 122


def _alnum(c: int) -> bool:
    return _alpha(c) or 48 <= c <= 57


def parse(text: str) -> dict[str, bytes]:
    """{KEY (upper case): value bytes as the driver passes them on}; the last of a repeated key wins."""
    s = text.encode()
    n, pos, out = len(s), 0, {}
    while True:
        while pos < n and s[pos] in WHITESPACE:
            pos += 1
        if pos >= n:
            return out
        if s[pos] == 0x3B:  # ';' of an empty pair
            pos += 1
            continue
        start = pos
        if s[pos] == 0x5F or _alpha(s[pos]):
            pos += 1
            while pos < n and (s[pos] == 0x5F or _alnum(s[pos])):
                pos += 1
        key = s[start:pos].decode().upper()
        while pos < n and s[pos] in WHITESPACE:
            pos += 1
        if not key or pos >= n or s[pos] != 0x3D:
            raise ConnStrFormatError(f"no key=value at byte {start}")
        pos += 1
        while pos < n and s[pos] in WHITESPACE:
            pos += 1
        if pos >= n or s[pos] == 0x3B:
            out.pop(key, None)  # KEY=; sets nothing (warning 01S00)
            continue
        first, vstart = s[pos], pos
        if first == 0x22:  # "…" to the next '"'
            end = s.find(b'"', pos + 1)
            if end < 0:
                raise ConnStrFormatError("unterminated quote")
            pos = vend = end + 1
        elif first in (0x28, 0x5B):  # (…) or […]
            close, allowed = (0x29, b",.:/%[] ") if first == 0x28 else (0x5D, b":/%.")
            pos += 1
            while pos < n and s[pos] != close:
                if not (_alnum(s[pos]) or s[pos] in allowed or (first == 0x28 and s[pos] in WHITESPACE)):
                    raise ConnStrFormatError(f"byte {s[pos]!r} inside {chr(first)}…")
                pos += 1
            if pos >= n:
                raise ConnStrFormatError("unterminated bracket")
            pos = vend = pos + 1
        else:  # bare, to the next ';'
            end = s.find(b";", pos + 1)
            pos = vend = n if end < 0 else end
            while vend > vstart and s[vend - 1] in WHITESPACE:
                vend -= 1
        out[key] = s[vstart:vend]
        if pos < n and s[pos] not in WHITESPACE and s[pos] != 0x3B and first not in (0x22, 0x28, 0x5B):
            raise ConnStrFormatError("text after a value")


def _unquote(raw: bytes) -> tuple[bytes, bool]:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in (0x22, 0x27):
        return raw[1:-1], True
    return raw, False


def server_password(raw: bytes, *, case_sensitive: bool = False) -> bytes:
    value, _ = _unquote(raw)
    return value if case_sensitive else value.upper()


def server_user(raw: bytes) -> bytes:
    value, quoted = _unquote(raw)
    return value if quoted else value.upper()
