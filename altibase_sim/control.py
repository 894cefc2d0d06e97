"""Client of the simulator daemon: start it, stop it, add servers, inject faults, drive the load.

    sim = start_daemon("/tmp/sim", servers=["node1", "node2"])
    sim.pause_sender("node1", "REP1")
    sim.load_start("node1", table="SYS.T1")
    stop_daemon("/tmp/sim")
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from altibase_sim import protocol
from altibase_sim.daemon import DAEMON_FILE
from altibase_sim.registry import default_state_dir


class SimulatorError(RuntimeError):
    pass


def daemon_info(state_dir: Path | str) -> dict | None:
    """The running daemon's {pid, control_port} for a state dir, or None."""
    try:
        info = json.loads((Path(state_dir) / DAEMON_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if _alive(info["pid"]) else None


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie, e.g. our own killed child, counts as gone)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # it was our child and has just been reaped
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class SimulatorControl:
    def __init__(self, state_dir: Path | str | None = None, timeout: float = 30.0):
        self.state_dir = Path(state_dir).resolve() if state_dir else default_state_dir()
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        info = daemon_info(self.state_dir)
        if info is None:
            raise SimulatorError(f"no simulator is running for {self.state_dir} (start one: altibase-sim up)")
        try:
            with socket.create_connection(("127.0.0.1", info["control_port"]), timeout=self.timeout) as sock:
                protocol.send_frame(sock, {"cmd": cmd, "args": args})
                reply = protocol.recv_frame(sock)
        except (OSError, ConnectionError) as exc:
            raise SimulatorError(f"simulator control at port {info['control_port']} failed: {exc}") from None
        if not reply.get("ok"):
            raise SimulatorError(reply.get("error", "unknown error"))
        return reply.get("result")

    @property
    def pid(self) -> int | None:
        info = daemon_info(self.state_dir)
        return info["pid"] if info else None

    def connect(self, name: str, user: str = "SYS", password: str = "manager", sysdba: bool = False,
                client_info: str = "") -> Any:
        """A DB-API connection to one of the servers, by name."""
        from altibase_sim import dbapi

        server = self.server(name)
        return dbapi.connect(server["host"], server["port"], user, password, sysdba=sysdba, client_info=client_info)

    # thin, named wrappers (the public fault-injection and load interface)
    def servers(self) -> list[dict]:
        return self.call("servers")

    def server(self, name: str) -> dict:
        for entry in self.servers():
            if entry["name"] == name:
                return entry
        raise SimulatorError(f"no server named {name!r}")

    def status(self) -> dict:
        return self.call("status")

    def add_server(self, name: str, aliases: list[str] | tuple[str, ...] = (), port: int = 0,
                   replication_port: int = 20301, version: str | None = None) -> dict:
        extra = {"version": version} if version else {}
        return self.call("add_server", name=name, aliases=list(aliases), port=port,
                         replication_port=replication_port, **extra)

    def remove_server(self, name: str, purge: bool = False) -> None:
        self.call("remove_server", name=name, purge=purge)

    def server_down(self, name: str) -> None:
        self.call("server_down", name=name)

    def server_up(self, name: str) -> None:
        self.call("server_up", name=name)

    def restart_server(self, name: str) -> None:
        """Down and up again: ALTER SYSTEM values are gone, the configuration file's are back."""
        self.call("restart_server", name=name)

    def set_config(self, name: str, prop: str, value: int | None) -> dict[str, int]:
        """A line of the server's configuration file (None removes it); read at the next start."""
        return self.call("set_config", name=name, prop=prop, value=value)

    def pause_sender(self, server: str, replication: str) -> None:
        self.call("pause_sender", server=server, replication=replication)

    def resume_sender(self, server: str, replication: str) -> None:
        self.call("resume_sender", server=server, replication=replication)

    def set_sender_rate(self, server: str, replication: str, rows_per_second: int | None) -> None:
        self.call("set_sender_rate", server=server, replication=replication, rows_per_second=rows_per_second)

    def fail_once(self, server: str, statement_regex: str, code: str, skip: int = 0) -> None:
        self.call("fail_once", server=server, statement_regex=statement_regex, code=code, skip=skip)

    def fail_load_once(self, server: str, message: str = "injected fault", command: str | None = None) -> None:
        self.call("fail_load_once", server=server, message=message, command=command)

    def hold_session(self, server: str, user: str = "SYS", password: str = "manager",
                     client_info: str = "held-session", sysdba: bool = False) -> int:
        return self.call("hold_session", server=server, user=user, password=password, client_info=client_info,
                         sysdba=sysdba)

    def release_session(self, held_id: int) -> None:
        self.call("release_session", held_id=held_id)

    def load_start(self, server: str, table: str = "SYS.T1", sessions: int = 2, interval: float = 0.005,
                   key_column: str = "C1", value_column: str | None = "C2", user: str = "SYS",
                   password: str = "manager", credentials_of: str | None = None) -> dict:
        return self.call("load_start", server=server, table=table, sessions=sessions, interval=interval,
                         key_column=key_column, value_column=value_column, user=user, password=password,
                         credentials_of=credentials_of)

    def load_stop(self, server: str | None = None) -> list[dict]:
        return self.call("load_stop", server=server)

    def load_status(self, with_keys: bool = False) -> list[dict]:
        return self.call("load_status", with_keys=with_keys)


def start_daemon(state_dir: Path | str | None = None, servers: list[str] | tuple[str, ...] = (),
                 timeout: float = 15.0) -> SimulatorControl:
    """Start the daemon for a state dir (or reuse the running one) and make sure ``servers`` exist."""
    control = SimulatorControl(state_dir)
    control.state_dir.mkdir(parents=True, exist_ok=True)
    if daemon_info(control.state_dir) is None:
        log = open(control.state_dir / "daemon.log", "ab")  # noqa: SIM115 - handed to the child
        subprocess.Popen([sys.executable, "-m", "altibase_sim.daemon", "--state-dir", str(control.state_dir)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                control.call("ping")
                break
            except SimulatorError:
                if time.monotonic() > deadline:
                    raise SimulatorError(f"the simulator did not start; see {control.state_dir / 'daemon.log'}") \
                        from None
                time.sleep(0.05)
    for name in servers:
        control.add_server(name)
    return control


def stop_daemon(state_dir: Path | str | None = None, timeout: float = 15.0) -> bool:
    """Stop the daemon of a state dir; False when none was running."""
    control = SimulatorControl(state_dir)
    pid = control.pid
    if pid is None:
        return False
    try:
        control.call("shutdown")
    except SimulatorError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True
