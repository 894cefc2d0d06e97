"""Run notifications (altibase_ops/notify.py) over each channel, to local servers the tests start:
SMTP (aiosmtpd) and Apprise (its json:// service, posting to a local HTTP server)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from altibase_ops.notify import AltibaseRunNotifier, channels
from tests.smtp_sink import SmtpSink


def context() -> dict:
    ti = SimpleNamespace(dag_id="altibase_replicated_ddl", run_id="manual__1", task_id="summary")
    params = {"servers": [{"name": "node1", "conn_id": "c1", "role": "active"},
                          {"name": "node2", "conn_id": "c2", "role": "standby"}],
              "replication_name": "REP1", "service_mode": "can_stop", "topology": "active_standby",
              "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"], "change_id": "0001_c3"}
    return {"ti": ti, "params": params}


@pytest.fixture
def http_sink():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()


def test_each_kind_goes_to_every_configured_channel(monkeypatch, http_sink):
    port, posted = http_sink
    monkeypatch.setenv("AIRFLOW_CONN_APPRISE_OPS", json.dumps(
        {"conn_type": "apprise", "extra": {"config": {"path": f"json://127.0.0.1:{port}/"}}}))
    with SmtpSink() as smtp:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection())
        monkeypatch.setenv("ALTIBASE_NOTIFY_EMAIL", "dba@example.com")
        monkeypatch.setenv("ALTIBASE_NOTIFY_APPRISE_CONN_ID", "apprise_ops")
        AltibaseRunNotifier("succeeded", "time in admin mode per server (s): {'node1': 1.2}").notify(context())
        AltibaseRunNotifier("failed", "Nothing was changed").notify(context())
        mails = smtp.received()
    assert [m.subject for m in mails] == [
        "[Altibase DDL] SUCCEEDED: replication REP1 on node1 (active), node2 (standby) — change 0001_c3",
        "[Altibase DDL] FAILED: replication REP1 on node1 (active), node2 (standby) — change 0001_c3"]
    assert "time in admin mode per server" in mails[0].body and "/dags/altibase_replicated_ddl/runs/manual__1" in mails[0].body
    assert [p["title"] for p in posted] == [m.subject for m in mails]
    assert "Nothing was changed" in posted[1]["message"]


def test_no_channel_sends_nothing_and_a_broken_channel_never_fails_the_step(monkeypatch):
    assert channels({}) == {}
    monkeypatch.setenv("ALTIBASE_NOTIFY_EMAIL", "dba@example.com")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": 9}))
    AltibaseRunNotifier("started").notify(context())  # connection refused: logged, not raised
    with pytest.raises(ValueError, match="kind must be one of"):
        AltibaseRunNotifier("maybe")
