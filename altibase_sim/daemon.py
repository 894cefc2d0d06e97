"""The background simulator process: ``python -m altibase_sim.daemon --state-dir DIR``.

It hosts a Simulation and answers control requests (JSON frames) on a loopback port written to
``<state_dir>/daemon.json``. ``altibase-sim`` and ``SimulatorControl`` are its clients.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import socketserver
import threading
from pathlib import Path

from altibase_sim import protocol
from altibase_sim.simulation import Simulation

DAEMON_FILE = "daemon.json"
# control commands: the Simulation methods a client may call
COMMANDS = {"add_server", "remove_server", "server_down", "server_up", "restart_server", "set_config", "servers", "status", "pause_sender",
            "resume_sender", "set_sender_rate", "fail_once", "fail_load_once", "hold_session", "release_session", "load_start",
            "load_stop", "load_status"}


class _ControlHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sim: Simulation = self.server.sim  # type: ignore[attr-defined]
        try:
            request = protocol.recv_frame(self.request)
        except (ConnectionError, OSError, ValueError):
            return
        cmd = request.get("cmd")
        try:
            if cmd == "ping":
                reply = {"ok": True, "result": os.getpid()}
            elif cmd == "shutdown":
                reply = {"ok": True, "result": None}
                threading.Thread(target=self.server.stop_daemon, daemon=True).start()  # type: ignore[attr-defined]
            elif cmd in COMMANDS:
                reply = {"ok": True, "result": getattr(sim, cmd)(**request.get("args", {}))}
            else:
                reply = {"ok": False, "error": f"unknown command {cmd!r}"}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        protocol.send_frame(self.request, reply)


class _ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(state_dir: Path) -> None:
    sim = Simulation(state_dir)
    control = _ControlServer(("127.0.0.1", 0), _ControlHandler)
    control.sim = sim  # type: ignore[attr-defined]
    done = threading.Event()

    def stop_daemon() -> None:
        control.shutdown()
        done.set()

    control.stop_daemon = stop_daemon  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop_daemon, daemon=True).start())
    info = {"pid": os.getpid(), "control_port": control.server_address[1], "host": socket.gethostname()}
    tmp = state_dir / (DAEMON_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, state_dir / DAEMON_FILE)
    try:
        control.serve_forever(poll_interval=0.1)
    finally:
        done.wait(5)
        sim.shutdown()
        control.server_close()
        try:
            if json.loads((state_dir / DAEMON_FILE).read_text()).get("pid") == os.getpid():
                (state_dir / DAEMON_FILE).unlink()
        except (OSError, ValueError):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(prog="altibase_sim.daemon")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    serve(state_dir)


if __name__ == "__main__":
    main()
