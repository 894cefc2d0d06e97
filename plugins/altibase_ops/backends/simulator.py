"""The embedded default: the Altibase simulator (``altibase_sim``). The only module of this package
that imports it; the hook, the provisioning target and the service control all ask through here.

Connection extra: ``{"backend": "simulator"}``. Host and port are a simulator server's (or, with
``ALTIBASE_SIM_STATE_DIR`` set, a name registered in the simulator's registry, such as a provisioned
node's Service name). ``altibase_sim`` is imported inside the functions, so production code paths
never load it.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from airflow.sdk import Connection

from altibase_ops.exceptions import AltibaseServerError

DEFAULT_PORT = 20300
# altibase_sim.registry.STATE_DIR_ENV, spelled out so reading it does not import the simulator
STATE_DIR_ENV = "ALTIBASE_SIM_STATE_DIR"


def connect(conn: Connection, *, user: str, sysdba: bool, client_info: str, login_timeout: float,
            server: str, action: str, log: logging.Logger) -> Any:
    from altibase_sim import dbapi

    try:
        return dbapi.connect(host=conn.host or "127.0.0.1", port=int(conn.port or DEFAULT_PORT), user=user,
                             password=conn.password or "", sysdba=sysdba, client_info=client_info,
                             login_timeout=login_timeout)
    except dbapi.Error as exc:
        raise AltibaseServerError(server, exc.code, exc.message, action=action) from None


def isql_binary(conn: Connection) -> str:
    """The simulator's iSQL (``isql-sim``): next to the running Python (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "isql-sim"
    if beside.exists():
        return str(beside)
    return shutil.which("isql-sim") or "isql-sim"


def database_error(exc: BaseException) -> tuple[str | None, str] | None:
    """(code, message) for a simulator DB-API error, None for anything else."""
    if type(exc).__module__.split(".")[0] == "altibase_sim" and hasattr(exc, "code") and hasattr(exc, "message"):
        return exc.code, exc.message  # type: ignore[attr-defined]
    return None


def simulator_state_dir() -> Path:
    """The simulator's state directory as this process uses it (``ALTIBASE_SIM_STATE_DIR``, else the default)."""
    from altibase_sim.registry import default_state_dir

    return default_state_dir()


# ------------------------------------------------------------------------- the simulator as a target
def control(state_dir: str | Path | None) -> Any:
    """A client of the running simulator daemon of ``state_dir`` (servers, faults, the application load)."""
    from altibase_sim.control import SimulatorControl

    return SimulatorControl(state_dir)


def start(state_dir: str | Path) -> Any:
    """The simulator daemon of ``state_dir``, started when it is not running (the embedded default
    starts with its first use); its control client."""
    from altibase_sim.control import start_daemon

    return start_daemon(state_dir)


def registered_servers(state_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The servers in the simulator's registry file, by name (no daemon contact)."""
    from altibase_sim.registry import read_registry

    return read_registry(state_dir).get("servers", {})
