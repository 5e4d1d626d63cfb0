"""The grid simulator as its own process, listening on a free port of a host (it says
``grid simulator listening on HOST:PORT`` first) for one runner's mosaik ``connect``.

The distributed runner forks it (``fork``): the runner has imported pandapower and built
the scenario's network already, so the forked process starts with both (1.5-2 s of
imports and 0.3-0.5 s of network building a process started afresh spends, on CPUs the
agents are starting on too). Where the platform cannot fork safely, the runner starts
``python -m lemgrid.scenarios.run.grid_process HOST [NETWORK OPTIONS_JSON]`` instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

from lemgrid.agents.serve import listen_and_serve
from lemgrid.scenarios.run.frozen import frozen

ACCEPT_TIMEOUT_S = 120.0  # exit if no runner has connected by then
READY = "grid simulator listening on "
PROCESS_NAME = b"lemgrid-grid"  # the forked process's name in ps, top and /proc/PID/comm
CAN_FORK = sys.platform == "linux"  # macOS: forking a process with many libraries loaded is unsafe


class Forked:
    """A forked child as the runner's helpers use a ``subprocess.Popen``: its pid, the
    pipe it prints its address to (``stdout``), ``poll``, ``wait`` and ``kill``."""

    stderr = None  # it writes its errors to the runner's standard error

    def __init__(self, pid: int, stdout):
        self.pid, self.stdout, self.returncode = pid, stdout, None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(PROCESS_NAME.decode(), timeout)
            time.sleep(0.005)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _name_process(name: bytes) -> None:
    """Linux's prctl(PR_SET_NAME): the name ps and top show (the command line stays the
    runner's)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def fork(host: str) -> Forked:
    """Fork this process into the grid simulator listening on a free port of ``host``.
    The child shares the parent's modules and built networks (``grid.networks`` keeps
    them) copy-on-write; objects are frozen for the fork so that its garbage collections
    do not copy them."""
    read, write = os.pipe()
    with frozen(), warnings.catch_warnings():
        # Python warns about forking a process with threads (a progress bar's monitor,
        # BLAS's workers): the child runs none of their code, only the grid simulator.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            _name_process(PROCESS_NAME)
            # The runner answers an interrupt (it stops its helpers); SIGTERM ends this
            # process as it would any other, not through the runner's handler.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            from lemgrid.grid.simulator import GridSimulator

            with os.fdopen(write, "w") as out:
                code = listen_and_serve(GridSimulator(), host, 0, ACCEPT_TIMEOUT_S,
                                        READY.strip(), out)
        except BaseException as exc:  # noqa: BLE001 - never return into the runner's code
            print(f"grid simulator: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        finally:
            os._exit(code)
    os.close(write)
    return Forked(pid, os.fdopen(read, "r"))


def prebuild(network: str, options: dict) -> None:
    """Build ``network`` with ``options`` into this process's network cache
    (``grid.networks.load_network``), for the grid simulator's ``create`` to copy; a
    mistake is left for that ``create`` to name."""
    from lemgrid.grid.networks import load_network

    try:
        load_network(network, **options)
    except ValueError:
        pass


def main(argv: list[str] | None = None) -> int:
    """``HOST [NETWORK OPTIONS_JSON]``: with a network, it is built before the process
    listens (``grid.networks.load_network`` keeps it), while the agents start, instead of
    when the runner creates the grid (0.3-0.5 s at the end of the start-up)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 3):
        print("usage: python -m lemgrid.scenarios.run.grid_process HOST [NETWORK OPTIONS_JSON]",
              file=sys.stderr)
        return 2
    from lemgrid.grid.simulator import GridSimulator

    if len(argv) == 3:
        prebuild(argv[1], json.loads(argv[2]))
    return listen_and_serve(GridSimulator(), argv[0], 0, ACCEPT_TIMEOUT_S, READY.strip())


if __name__ == "__main__":
    # pandapower uses numba when it can import it (lemgrid installs numba for the
    # bilateral market's netting, which this process never runs): 0.5 s more start-up
    # (its import 0.2 s, the first net 0.13 s, loading its compiled helpers at the first
    # power flow 0.16 s) and 140 MB, for no gain on these networks. Hidden, pandapower
    # takes its pure-Python path.
    sys.modules["numba"] = None
    raise SystemExit(main())
