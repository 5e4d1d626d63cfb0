"""The command-line options of ``lemgrid coordinator`` and ``lemgrid keys``, with no import
beyond the coordinator's constants: the command line describes them without loading the
coordinator."""

from __future__ import annotations

import argparse

from lemgrid.coordinator.constants import (
    CURVE_DEFAULT_CLIENT,
    REALISATION_TIMEOUT_S,
    REGISTRATION_TIMEOUT_S,
    ROUND_DEADLINE_S,
)


def add_coordinator_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--params", default=None, metavar="FILE",
                   help="the market, its mechanism and parameters, as JSON (written by "
                   "lemgrid run, or by lemgrid coordinator --scenario)")
    p.add_argument("--roster", default=None, help="roster file or comma-separated agent names")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:0",
                   help="where to bind (default: loopback only, a free port); "
                   "tcp://0.0.0.0:PORT listens on every interface: use --curve-keys then")
    p.add_argument("--curve-keys", default=None, metavar="DIR",
                   help="admit only the CURVE client keys of DIR/clients (see lemgrid keys)")
    p.add_argument("--log", default="messages.jsonl", help="messages.jsonl path")
    p.add_argument("--day", type=int, default=0, help="the first day served")
    p.add_argument("--days", type=int, default=1, help="how many days to serve")
    p.add_argument("--round-deadline-s", type=float, default=ROUND_DEADLINE_S)
    p.add_argument("--registration-timeout-s", type=float, default=REGISTRATION_TIMEOUT_S)
    p.add_argument("--realisation-timeout-s", type=float, default=REALISATION_TIMEOUT_S)
    p.add_argument("--records", default=None,
                   help="write every finished day's record into this folder (one JSON "
                   "file per day)")
    return p


def add_key_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("directory", help="key directory (coordinator.key, clients/, private/)")
    p.add_argument("--clients", nargs="+", default=[CURVE_DEFAULT_CLIENT], metavar="NAME",
                   help=f"client key names: an agent host or one agent (default "
                   f"{CURVE_DEFAULT_CLIENT})")
    p.add_argument("--force", action="store_true", help="replace keys that exist")
    return p
