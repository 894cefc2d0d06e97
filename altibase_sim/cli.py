"""``altibase-sim``: run the simulator in the background and drive it.

    altibase-sim up --servers node1,node2 --state-dir DIR    start (or extend) a simulator
    altibase-sim status | down | add NAME [--version 7.3] | remove NAME
    altibase-sim config NAME ADMIN_MODE=1                     the server's configuration file
    altibase-sim fault restart node1                          ALTER SYSTEM values are lost
    altibase-sim fault pause-sender --server node1 --replication rep1
    altibase-sim load start --server node1 --table SYS.T1
"""

from __future__ import annotations

import argparse
import json
import sys

from altibase_sim.control import SimulatorControl, SimulatorError, start_daemon, stop_daemon
from altibase_sim.registry import default_state_dir
from altibase_sim.server import DEFAULT_VERSION, VERSIONS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, non-zero (argparse prints usage otherwise)
        print(f"altibase-sim: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="altibase-sim", description="Altibase replication-pair simulator")
    parser.add_argument("--state-dir", default=None, help="where servers keep their data (default: "
                        "$ALTIBASE_SIM_STATE_DIR or ./.sim-state)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="start servers in the background and print their addresses")
    up.add_argument("--servers", default="node1,node2", help="comma-separated server names")
    up.add_argument("--state-dir", dest="state_dir_sub", default=None)
    sub.add_parser("down", help="stop the simulator").add_argument("--state-dir", dest="state_dir_sub")
    status = sub.add_parser("status", help="servers, senders, loads")
    status.add_argument("--json", action="store_true")
    status.add_argument("--state-dir", dest="state_dir_sub")

    add = sub.add_parser("add", help="add a server")
    add.add_argument("name")
    add.add_argument("--alias", action="append", default=[], help="another name (e.g. a Service name)")
    add.add_argument("--port", type=int, default=0)
    add.add_argument("--replication-port", type=int, default=20301)
    add.add_argument("--version", choices=VERSIONS, default=None,
                     help=f"the Altibase version modelled (default {DEFAULT_VERSION}; 7.3 has V$REPGAP.REP_GAP_SIZE)")
    config = sub.add_parser("config", help="set a property in a server's configuration file (read at its next "
                                           "start; ALTER SYSTEM changes memory only)")
    config.add_argument("name")
    config.add_argument("assignments", nargs="+", metavar="PROPERTY=VALUE", help="an empty VALUE removes the line")
    remove = sub.add_parser("remove", help="remove a server")
    remove.add_argument("name")
    remove.add_argument("--purge", action="store_true", help="also delete its data")

    fault = sub.add_parser("fault", help="inject a fault").add_subparsers(dest="fault", required=True,
                                                                         parser_class=_Parser)
    for name in ("pause-sender", "resume-sender", "sender-rate"):
        p = fault.add_parser(name)
        p.add_argument("--server", required=True)
        p.add_argument("--replication", required=True)
        if name == "sender-rate":
            p.add_argument("--rows-per-second", type=int, required=True)
    for name in ("server-down", "server-up", "restart"):
        fault.add_parser(name).add_argument("name")
    hold = fault.add_parser("hold-session", help="open a session and keep it until released")
    hold.add_argument("--server", required=True)
    hold.add_argument("--user", default="SYS")
    hold.add_argument("--client-info", default="held-session")
    fault.add_parser("release-session").add_argument("id", type=int)
    fail = fault.add_parser("fail-once", help="make the next matching statement fail with a code")
    fail.add_argument("--server", required=True)
    fail.add_argument("--match", required=True, help="regular expression on the statement text")
    fail.add_argument("--code", required=True, help="5 hex digits, e.g. 61027; DOWN: the server goes down on it; "
                      "RESTART: it runs, and the server restarts when that session ends; SLOW:<seconds>: it "
                      "runs that much later (a long DDL)")
    fail.add_argument("--skip", type=int, default=0, help="let this many matching statements pass first")
    fault.add_parser("load-fail", help="make the next load start/stop on a server fail (a service step "
                     "refused)").add_argument("--server", required=True)

    load = sub.add_parser("load", help="application load").add_subparsers(dest="load", required=True,
                                                                         parser_class=_Parser)
    start = load.add_parser("start")
    start.add_argument("--server", required=True)
    start.add_argument("--table", default="SYS.T1")
    start.add_argument("--sessions", type=int, default=2)
    start.add_argument("--interval", type=float, default=0.005)
    load.add_parser("stop").add_argument("--server", default=None)
    load.add_parser("status")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    state_dir = getattr(args, "state_dir_sub", None) or args.state_dir or default_state_dir()
    sim = SimulatorControl(state_dir)
    try:
        if args.command == "up":
            names = [n.strip() for n in args.servers.split(",") if n.strip()]
            sim = start_daemon(state_dir, names)
            for server in sim.servers():
                print(f"{server['name']} {server['host']}:{server['port']} replication-port "
                      f"{server['replication_port']}{'' if server['up'] else ' (down)'}")
            print(f"state dir {sim.state_dir} (pid {sim.pid})")
        elif args.command == "down":
            print("stopped" if stop_daemon(state_dir) else "not running")
        elif args.command == "status":
            status = sim.status()
            if args.json:
                print(json.dumps(status, indent=2))
            else:
                _print_status(status)
        elif args.command == "add":
            server = sim.add_server(args.name, args.alias, args.port, args.replication_port, args.version)
            print(f"{server['name']} {server['host']}:{server['port']} (Altibase {server['version']})")
        elif args.command == "config":
            values = {}
            for assignment in args.assignments:
                prop, sep, value = assignment.partition("=")
                if not sep or (value and not value.lstrip("-").isdigit()):
                    raise SimulatorError(f"expected PROPERTY=integer, got {assignment!r}")
                values = sim.set_config(args.name, prop.strip(), int(value) if value else None)
            print(" ".join(f"{k}={v}" for k, v in sorted(values.items())) or "(no properties set)")
        elif args.command == "remove":
            sim.remove_server(args.name, args.purge)
        elif args.command == "fault":
            _fault(sim, args)
        elif args.command == "load":
            _load(sim, args)
    except SimulatorError as exc:
        print(f"altibase-sim: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _fault(sim: SimulatorControl, args: argparse.Namespace) -> None:
    if args.fault == "pause-sender":
        sim.pause_sender(args.server, args.replication)
    elif args.fault == "resume-sender":
        sim.resume_sender(args.server, args.replication)
    elif args.fault == "sender-rate":
        sim.set_sender_rate(args.server, args.replication, args.rows_per_second)
    elif args.fault == "server-down":
        sim.server_down(args.name)
    elif args.fault == "server-up":
        sim.server_up(args.name)
    elif args.fault == "restart":
        sim.restart_server(args.name)
    elif args.fault == "hold-session":
        print(sim.hold_session(args.server, user=args.user, client_info=args.client_info))
    elif args.fault == "release-session":
        sim.release_session(args.id)
    elif args.fault == "fail-once":
        sim.fail_once(args.server, args.match, args.code, skip=args.skip)
    elif args.fault == "load-fail":
        sim.fail_load_once(args.server)


def _load(sim: SimulatorControl, args: argparse.Namespace) -> None:
    if args.load == "start":
        print(json.dumps(sim.load_start(args.server, args.table, args.sessions, args.interval)))
    elif args.load == "stop":
        for status in sim.load_stop(args.server):
            print(json.dumps(status))
    else:
        for status in sim.load_status():
            print(json.dumps(status))


def _print_status(status: dict) -> None:
    for server in status["servers"]:
        state = "up" if server["up"] else "DOWN"
        print(f"{server['name']:<16} {server['host']}:{server['port']:<6} {state:<5} admin_mode={server['admin_mode']}"
              f" sessions={server['sessions']}")
        for gap in server["senders"]:
            size = f" REP_GAP_SIZE={gap['REP_GAP_SIZE']}" if "REP_GAP_SIZE" in gap else ""
            print(f"    sender {gap['REP_NAME']}: REP_GAP={gap['REP_GAP']}{size}")
    for load in status["loads"]:
        print(f"load on {load['server']}: running={load['running']} committed={load['committed']} "
              f"errors={load['errors']}")


if __name__ == "__main__":
    main()
