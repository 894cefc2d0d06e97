"""A set of simulated servers in one process: listeners, name registry, faults, application load.

``python -m altibase_sim.daemon`` runs one of these in the background (``altibase-sim up``); tests may
also run one in-process. Servers are addressed by TCP like real ones, so clients in other processes
(``isql-sim``, the DB-API client, Airflow tasks) see no difference.
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

from altibase_sim import protocol
from altibase_sim.errors import AltibaseError, error
from altibase_sim.registry import read_registry, write_registry
from altibase_sim.replication import ReplicationManager
from altibase_sim.server import DEFAULT_VERSION, Server, Session

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
LOAD_KEY_SPACE = 100_000_000  # application-load keys of server slot i are i*SPACE + n: no collisions


class _Handler(socketserver.BaseRequestHandler):
    server: _Listener

    def handle(self) -> None:
        host = self.server.host
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host.clients.add(sock)
        session: Session | None = None
        try:
            while True:
                try:
                    request = protocol.recv_frame(sock)
                except (ConnectionError, OSError, ValueError):
                    return
                try:
                    reply, session = host.serve(request, session, sock)
                except AltibaseError as exc:
                    reply = {"ok": False, "code": exc.code, "message": exc.message}
                except Exception as exc:  # a simulator bug must reach the client, not kill the thread silently
                    reply = {"ok": False, "code": "FFFFF", "message": f"simulator internal error: {exc!r}"}
                try:
                    protocol.send_frame(sock, reply)
                except OSError:
                    return
        finally:
            host.clients.discard(sock)
            if session is not None:
                host.end_session(session)


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: ServerHost, port: int):
        self.host = host
        super().__init__(("127.0.0.1", port), _Handler)


class ServerHost:
    """A Server plus its TCP listener and open client sockets."""

    def __init__(self, server: Server):
        self.server = server
        self.clients: set[socket.socket] = set()
        self.listener: _Listener | None = None

    def listen(self) -> None:
        self.listener = _Listener(self, self.server.port)
        self.server.port = self.listener.server_address[1]
        threading.Thread(target=self.listener.serve_forever, kwargs={"poll_interval": 0.05},
                         name=f"listener-{self.server.name}", daemon=True).start()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.shutdown()
            self.listener.server_close()
            self.listener = None
        for sock in list(self.clients):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server.disconnect_all()

    def end_session(self, session: Session, sock: socket.socket | None = None) -> None:
        """Log a session out; a RESTART fault armed by one of its statements restarts the server now,
        before the client hears back (its socket is spared), so the next client meets the restarted
        server."""
        self.server.logout(session)
        if session.restart_at_logout and self.server.on_restart is not None:
            session.restart_at_logout = False
            if sock is not None:
                self.clients.discard(sock)
            self.server.on_restart()

    def serve(self, request: dict, session: Session | None, sock: socket.socket) -> tuple[dict, Session | None]:
        op = request.get("op")
        if op == "login":
            peer = sock.getpeername()
            session = self.server.login(request["user"], request["password"], bool(request.get("sysdba")),
                                        request.get("client_info") or "", f"TCP {peer[0]}:{peer[1]}")
            return {"ok": True, "session_id": session.id}, session
        if op == "logout":
            if session is not None:
                self.end_session(session, sock)
            return {"ok": True}, None
        if session is None:
            raise error("FFFFF", detail="not logged in")
        if op == "execute":
            result = self.server.execute(session, request["sql"], request.get("params") or [])
            return ({"ok": True, "columns": result.columns, "rows": result.rows, "rowcount": result.rowcount,
                     "message": result.message}, session)
        if op == "commit":
            self.server.commit(session)
            return {"ok": True, "message": "Commit success."}, session
        if op == "rollback":
            self.server.rollback(session)
            return {"ok": True, "message": "Rollback success."}, session
        if op == "autocommit":
            self.server.set_autocommit(session, bool(request["value"]))
            return {"ok": True}, session
        raise error("FFFFF", detail=f"unknown request {op!r}")


class AppLoad:
    """Application sessions that insert rows until stopped, recording every committed key."""

    def __init__(self, sim: Simulation, server: str, table: str, sessions: int, interval: float,
                 key_column: str, value_column: str | None, user: str, password: str):
        self.sim, self.server, self.table = sim, server, table
        self.sessions, self.interval = sessions, interval
        self.key_column, self.value_column = key_column, value_column
        self.user, self.password = user, password
        self.committed: list[int] = []
        self.errors = 0
        self.last_error = ""
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        slot = sim.slot(server)
        self._next = slot * LOAD_KEY_SPACE + self._max_existing(slot) + 1

    def _max_existing(self, slot: int) -> int:
        from altibase_sim import dbapi

        host = self.sim.hosts[self.server].server
        with dbapi.connect("127.0.0.1", host.port, self.user, self.password, client_info="app-load-setup") as conn:
            cur = conn.cursor()
            cur.execute(f"SELECT MAX({self.key_column}) FROM {self.table} WHERE {self.key_column} >= ? "
                        f"AND {self.key_column} < ?", (slot * LOAD_KEY_SPACE, (slot + 1) * LOAD_KEY_SPACE))
            value = cur.fetchone()[0]
        return 0 if value is None else int(value) - slot * LOAD_KEY_SPACE

    def next_key(self) -> int:
        with self.lock:
            key = self._next
            self._next += 1
            return key

    def start(self) -> None:
        self.started_at = time.time()  # the application's traffic begins (for outage measurements)
        for i in range(self.sessions):
            thread = threading.Thread(target=self._run, name=f"load-{self.server}-{i}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self) -> None:
        from altibase_sim import dbapi

        columns = [self.key_column] + ([self.value_column] if self.value_column else [])
        sql = f"INSERT INTO {self.table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        conn = None
        while not self.stop_event.is_set():
            try:
                if conn is None:
                    host = self.sim.hosts[self.server].server
                    conn = dbapi.connect("127.0.0.1", host.port, self.user, self.password, client_info="app-load")
                key = self.next_key()
                conn.cursor().execute(sql, [key, key % 1000][:len(columns)])
                with self.lock:
                    self.committed.append(key)
            except dbapi.Error as exc:
                with self.lock:
                    self.errors += 1
                    self.last_error = str(exc)
                if isinstance(exc, dbapi.OperationalError) and conn is not None:
                    conn.close()
                    conn = None
                self.stop_event.wait(0.05)
                continue
            except KeyError:  # the server was removed
                break
            self.stop_event.wait(self.interval)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self.stopped_at = time.time()  # its last session has ended

    def status(self, with_keys: bool = False) -> dict:
        with self.lock:
            data = {"server": self.server, "table": self.table, "running": not self.stop_event.is_set(),
                    "sessions": self.sessions, "interval": self.interval, "key_column": self.key_column,
                    "user": self.user,
                    "value_column": self.value_column,
                    "committed": len(self.committed), "errors": self.errors, "last_error": self.last_error,
                    "started_at": getattr(self, "started_at", None), "stopped_at": getattr(self, "stopped_at", None)}
            if with_keys:
                data["committed_keys"] = list(self.committed)
        return data


class Simulation:
    def __init__(self, state_dir: Path | str):
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.hosts: dict[str, ServerHost] = {}
        self.lock = threading.RLock()
        self.loads: dict[str, AppLoad] = {}
        self.finished_loads: list[dict] = []
        self.load_faults: dict[str, tuple[str, str | None]] = {}
        self.stopped_loads: list[AppLoad] = []  # their credentials, for credentials_of
        self.held: dict[int, Any] = {}
        self._next_held = 1
        registry = read_registry(self.state_dir)
        for name, entry in registry.get("servers", {}).items():
            self._open(name, entry["port"], entry["replication_port"], tuple(entry.get("aliases", ())),
                       entry.get("sys_password", "manager"), up=entry.get("up", True),
                       version=entry.get("version", DEFAULT_VERSION))

    # ------------------------------------------------------------------ registry
    def _save_registry(self) -> None:
        write_registry(self.state_dir, {"servers": {
            name: {"host": "127.0.0.1", "port": h.server.port, "replication_port": h.server.replication_port,
                   "aliases": list(h.server.aliases), "up": h.server.up, "db": h.server.db_path,
                   "version": h.server.version, "config": h.server.config_path}
            for name, h in self.hosts.items()}})

    def slot(self, name: str) -> int:
        return list(self.hosts).index(name) + 1

    def config_path(self, name: str) -> Path:
        """The server's altibase.properties: read when it starts, never written by ALTER SYSTEM."""
        return self.state_dir / f"{name}.properties"

    def _open(self, name: str, port: int, replication_port: int, aliases: tuple[str, ...], sys_password: str,
              up: bool = True, version: str = DEFAULT_VERSION) -> ServerHost:
        server = Server(name, str(self.state_dir / f"{name}.db"), port=port, replication_port=replication_port,
                        sys_password=sys_password, aliases=aliases, config_path=str(self.config_path(name)),
                        version=version)
        ReplicationManager(server, self.resolve_peer)
        server.on_crash = lambda: self.server_down(name)
        server.on_restart = lambda: self.restart_server(name)
        host = ServerHost(server)
        host.listen()  # the port is held even while the server is "down", so its address never changes
        self.hosts[name] = host
        server.up = up
        if up:
            server.replication.resume_started()
        return host

    def resolve_peer(self, host: str, port: int) -> Server | None:
        """What a replication's WITH 'host', port reaches: a registered name, or a local address + port."""
        wanted = host.lower()
        for name, h in self.hosts.items():
            if wanted == name.lower() or wanted in (a.lower() for a in h.server.aliases):
                return h.server if h.server.replication_port == port else None
        if host in LOCAL_HOSTS:
            matches = [h.server for h in self.hosts.values() if h.server.replication_port == port]
            return matches[0] if len(matches) == 1 else None
        return None

    def server(self, name: str) -> Server:
        host = self.hosts.get(name)
        if host is None:
            raise ValueError(f"no server named {name!r}")
        return host.server

    # ------------------------------------------------------------------ servers
    def add_server(self, name: str, aliases: list[str] | tuple[str, ...] = (), port: int = 0,
                   replication_port: int = 20301, sys_password: str = "manager",
                   version: str = DEFAULT_VERSION) -> dict:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,62}", name):
            raise ValueError(f"invalid server name {name!r}")
        with self.lock:
            if name in self.hosts:
                return self.describe(name)
            self._open(name, port, replication_port, tuple(aliases), sys_password, version=version)
            self._save_registry()
            return self.describe(name)

    def remove_server(self, name: str, purge: bool = False) -> None:
        with self.lock:
            host = self.hosts.get(name)
            if host is None:
                return
            self.load_stop(name)
            host.server.replication.shutdown()
            host.close()
            host.server.close_store()
            del self.hosts[name]
            self._save_registry()
            if purge:
                for suffix in ("", "-wal", "-shm"):
                    Path(host.server.db_path + suffix).unlink(missing_ok=True)

    def server_down(self, name: str) -> None:
        """The server process dies: sessions drop, senders stop, peers' senders go to RETRY."""
        with self.lock:
            server = self.server(name)
            host = self.hosts[name]
            server.up = False
            server.replication.shutdown()
            for sock in list(host.clients):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            server.disconnect_all()
            self._save_registry()

    def server_up(self, name: str) -> None:
        """The server process starts: its configuration file's properties (not the ALTER SYSTEM values of
        its previous life), a new start time, and the replications that were started start again."""
        with self.lock:
            server = self.server(name)
            if not server.up:
                server.boot()
                server.up = True
                server.replication.resume_started()
                self._save_registry()

    def restart_server(self, name: str) -> None:
        """A restart (a pod rescheduled, a crash and the liveness probe): down, then up again."""
        self.server_down(name)
        self.server_up(name)

    def set_config(self, name: str, prop: str, value: int | None) -> dict[str, int]:
        """Change the server's configuration file (None removes the line); it takes effect at the next
        start, as on a real server. Returns the file's values."""
        from altibase_sim.server import read_config, write_config

        path = str(self.config_path(self.server(name).name))
        values = read_config(path)
        if value is None:
            values.pop(prop.upper(), None)
        else:
            values[prop.upper()] = int(value)
        write_config(path, values)
        return values

    def describe(self, name: str) -> dict:
        server = self.server(name)
        return {"name": name, "host": "127.0.0.1", "port": server.port, "replication_port": server.replication_port,
                "aliases": list(server.aliases), "up": server.up, "version": server.version}

    def servers(self) -> list[dict]:
        return [self.describe(name) for name in self.hosts]

    def connect(self, name: str, user: str = "SYS", password: str = "manager", sysdba: bool = False,
                client_info: str = "") -> Any:
        """A DB-API connection to one of the servers, by name (same call as SimulatorControl.connect)."""
        from altibase_sim import dbapi

        return dbapi.connect("127.0.0.1", self.server(name).port, user, password, sysdba=sysdba,
                             client_info=client_info)

    def status(self) -> dict:
        out = []
        for name in self.hosts:
            info = self.describe(name)
            server = self.server(name)
            info["admin_mode"] = server.props["ADMIN_MODE"]
            info["admin_mode_changes"] = list(server.admin_mode_changes)
            info["sessions"] = len(server.sessions)
            info["senders"] = server.replication.gap_rows() if server.up else []
            out.append(info)
        return {"servers": out, "loads": self.load_status()}

    # ------------------------------------------------------------------ faults
    def pause_sender(self, server: str, replication: str, paused: bool = True) -> None:
        manager = self.server(server).replication
        manager.paused[replication.upper()] = paused
        sender = manager.senders.get(replication.upper())
        if sender is not None:
            with sender.pass_lock:  # a pass in flight ends first: nothing ships once this returns
                pass

    def resume_sender(self, server: str, replication: str) -> None:
        self.pause_sender(server, replication, paused=False)

    def set_sender_rate(self, server: str, replication: str, rows_per_second: int | None) -> None:
        rates = self.server(server).replication.rates
        if rows_per_second is None:
            rates.pop(replication.upper(), None)
        else:
            rates[replication.upper()] = max(1, int(rows_per_second))

    def fail_once(self, server: str, statement_regex: str, code: str, skip: int = 0) -> None:
        """The next matching statement fails with ``code``; with ``skip``, the (skip+1)-th one does."""
        self.server(server).faults.append([re.compile(statement_regex, re.IGNORECASE), code.upper(), int(skip)])

    def fail_load_once(self, server: str, message: str = "injected fault", command: str | None = None) -> None:
        """The next load command on ``server`` (``command``: only a "start" or only a "stop"; None: either)
        fails, changing nothing: the application's side refusing a service step (a deployment that
        cannot scale, a router that rejects the change)."""
        with self.lock:
            self.load_faults[server] = (message, command)

    def _load_fault(self, server: str, command: str) -> None:
        with self.lock:
            fault = self.load_faults.get(server)
            if fault is None or fault[1] not in (None, command):
                return
            del self.load_faults[server]
        raise RuntimeError(f"the application load on {server} refused the {command} ({fault[0]})")

    def hold_session(self, server: str, user: str = "SYS", password: str = "manager",
                     client_info: str = "held-session", sysdba: bool = False) -> int:
        from altibase_sim import dbapi

        conn = dbapi.connect("127.0.0.1", self.server(server).port, user, password, sysdba=sysdba,
                             client_info=client_info)
        with self.lock:
            held_id = self._next_held
            self._next_held += 1
            self.held[held_id] = conn
        return held_id

    def release_session(self, held_id: int) -> None:
        conn = self.held.pop(int(held_id), None)
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------------ application load
    def load_start(self, server: str, table: str = "SYS.T1", sessions: int = 2, interval: float = 0.005,
                   key_column: str = "C1", value_column: str | None = "C2", user: str = "SYS",
                   password: str = "manager", credentials_of: str | None = None) -> dict:
        """``credentials_of``: log in as the last load of that server did (its user and password), so a
        service control that moves or restarts an application never needs to know its password."""
        self._load_fault(server, "start")
        with self.lock:
            if server in self.loads:
                return self.loads[server].status()
            if credentials_of is not None:
                user, password = self._credentials(credentials_of, user, password)
            load = AppLoad(self, server, table, sessions, interval, key_column, value_column, user, password)
            self.loads[server] = load
        load.start()
        return load.status()

    def _credentials(self, server: str, user: str, password: str) -> tuple[str, str]:
        if server in self.loads:
            return self.loads[server].user, self.loads[server].password
        for load in reversed(self.stopped_loads):
            if load.server == server:
                return load.user, load.password
        return user, password

    def load_stop(self, server: str | None = None) -> list[dict]:
        if server is not None:
            self._load_fault(server, "stop")
        with self.lock:
            names = [server] if server else list(self.loads)
            stopping = [self.loads.pop(n) for n in names if n in self.loads]
            self.stopped_loads += stopping
        for load in stopping:
            load.stop()
            self.finished_loads.append(load.status(with_keys=True))
        return [load.status() for load in stopping]

    def load_status(self, with_keys: bool = False) -> list[dict]:
        running = [load.status(with_keys) for load in self.loads.values()]
        finished = [dict(s) if with_keys else {k: v for k, v in s.items() if k != "committed_keys"}
                    for s in self.finished_loads]
        return running + finished

    # ------------------------------------------------------------------ lifecycle
    def shutdown(self) -> None:
        self.load_stop()
        for held_id in list(self.held):
            self.release_session(held_id)
        for host in list(self.hosts.values()):
            host.server.replication.shutdown()
            host.close()
            host.server.close_store()
        self.hosts.clear()


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
