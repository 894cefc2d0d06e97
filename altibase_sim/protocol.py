"""Wire format between simulator clients and servers: length-prefixed JSON frames over TCP."""

from __future__ import annotations

import json
import socket
import struct

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


def send_frame(sock: socket.socket, message: dict) -> None:
    body = json.dumps(message, separators=(",", ":"), default=str).encode()
    sock.sendall(_HEADER.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: socket.socket) -> dict:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes is too large")
    return json.loads(_recv_exact(sock, size))
