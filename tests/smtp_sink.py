"""A local SMTP server for tests (aiosmtpd, in a thread): every message it receives, decoded."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Mail:
    to: list[str]
    subject: str
    body: str


@dataclass
class SmtpSink:
    port: int = 0
    mails: list[Mail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
        with self._lock:
            self.mails.append(Mail(list(envelope.rcpt_tos), str(message["Subject"]), "\n".join(parts)))
        return "250 OK"

    def __enter__(self) -> SmtpSink:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._controller.stop()

    def connection(self) -> str:
        """The Airflow Connection (JSON form, for AIRFLOW_CONN_SMTP_DEFAULT) that sends here."""
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"from_email": "airflow@example.com", "disable_tls": True, "disable_ssl": True}})

    def received(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)
