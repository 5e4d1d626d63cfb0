"""Who may speak: CURVE keys for the coordinator and its agents, and the ZAP check (pyzmq).

``lemgrid keys DIR`` writes a key directory laid out as

    DIR/coordinator.key           the coordinator's public key: every agent host needs it
    DIR/coordinator.key_secret    the coordinator's key pair: the coordinator host only
    DIR/clients/NAME.key          clients' public keys: the coordinator admits these only
    DIR/private/NAME.key_secret   client NAME's key pair: the agent host(s) that use it

A client key is named after the agent host that holds it (one shared key, ``agents``, by
default) or after one agent. With ``--curve-keys DIR`` the coordinator's ROUTER is a
CURVE server and a ZAP authenticator admits only the public keys in ``DIR/clients``; a
connection with another key, or none, is dropped at the handshake and never reaches the
service. Every admitted frame carries its key's name as ZAP ``User-Id``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import zmq
from zmq.auth import create_certificates, load_certificate
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from lemgrid.coordinator.protocol import (
    CURVE_CLIENTS_DIR,
    CURVE_DEFAULT_CLIENT,
    CURVE_PRIVATE_DIR,
    CURVE_PUBLIC,
    CURVE_SECRET,
    CURVE_SERVER_KEY,
)

SERVER_KEY, DEFAULT_CLIENT = CURVE_SERVER_KEY, CURVE_DEFAULT_CLIENT
CLIENTS_DIR, PRIVATE_DIR = CURVE_CLIENTS_DIR, CURVE_PRIVATE_DIR
PUBLIC, SECRET = CURVE_PUBLIC, CURVE_SECRET
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a key name is a file name
HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
EXIT_EXISTS = 2  # ``lemgrid keys`` would overwrite a key
LOG = logging.getLogger("lemgrid.coordinator.auth")


class KeysError(RuntimeError):
    """A key directory that cannot be written or read as asked."""


# -- writing keys -------------------------------------------------------------------------
def make_keys(directory: str | Path, clients: Sequence[str] = (DEFAULT_CLIENT,),
              force: bool = False) -> list[Path]:
    """Write the coordinator's key pair (if ``directory`` has none, or ``force``) and one
    key pair per client name; return the files written. Refuse, writing nothing, if a
    named client has a key already, unless ``force``."""
    d = Path(directory)
    bad = [n for n in clients if not NAME.fullmatch(n)]
    if bad:
        raise KeysError(f"client key names must be letters, digits, '_', '.', '-': {bad}")
    pairs = [d / PRIVATE_DIR / f"{n}{SECRET}" for n in clients]
    existing = [p for p in pairs if p.exists() or public_of(p).exists()]
    if existing and not force:
        raise KeysError(f"{existing[0]} exists; pass --force to replace the keys of "
                        f"{', '.join(p.name.removesuffix(SECRET) for p in existing)}")
    written = []
    if force or not (d / f"{SERVER_KEY}{SECRET}").exists():
        written += _write_pair(d, SERVER_KEY)
    (d / CLIENTS_DIR).mkdir(parents=True, exist_ok=True)
    for pair in pairs:
        public, secret = _write_pair(pair.parent, pair.name.removesuffix(SECRET))
        written += [public.replace(public_of(pair)), secret]
    return written


def public_of(pair: Path) -> Path:
    """Where the coordinator looks for the public key of the client key pair ``pair``."""
    return pair.parent.parent / CLIENTS_DIR / f"{pair.name.removesuffix(SECRET)}{PUBLIC}"


def _write_pair(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = map(Path, create_certificates(directory, name))
    secret.chmod(0o600)
    return public, secret


# -- reading keys -------------------------------------------------------------------------
def server_key_pair(directory: str | Path) -> tuple[bytes, bytes]:
    path = Path(directory) / f"{SERVER_KEY}{SECRET}"
    if not path.is_file():
        raise KeysError(f"no coordinator key pair at {path} (lemgrid keys {directory} "
                        "writes one)")
    return load_certificate(path)


def client_keys(directory: str | Path) -> dict[bytes, str]:
    """The admitted clients: z85 public key -> key name, from ``DIR/clients/*.key``."""
    found = sorted((Path(directory) / CLIENTS_DIR).glob(f"*{PUBLIC}"))
    if not found:
        raise KeysError(f"no client keys in {Path(directory) / CLIENTS_DIR} (lemgrid keys "
                        f"{directory} writes one)")
    return {load_certificate(p)[0]: p.name.removesuffix(PUBLIC) for p in found}


# -- the coordinator's side -----------------------------------------------------------------
class KeyAuthenticator(ThreadAuthenticator):
    """ZAP in a thread: admit exactly ``keys``; each admitted connection's User-Id is its
    key's name (not the z85 key) so the service can bind agents to keys."""

    def __init__(self, context: zmq.Context, keys: dict[bytes, str]):
        super().__init__(context, log=LOG)
        self.keys = keys
        self.start()
        self.configure_curve_callback("*", self)

    def callback(self, domain: str, z85_key: bytes) -> bool:
        return z85_key in self.keys

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.keys[z85.encode(client_public_key)]


class CurveServer:
    """Make ``socket`` (a ROUTER, not yet bound) a CURVE server admitting the client keys
    of ``directory``; count and log the connections refused at the handshake."""

    def __init__(self, socket: zmq.Socket, directory: str | Path):
        self.keys = client_keys(directory)
        public, secret = server_key_pair(directory)
        socket.curve_publickey, socket.curve_secretkey = public, secret
        socket.curve_server = True
        self.authenticator = KeyAuthenticator(socket.context, self.keys)
        self.monitor = socket.get_monitor_socket(HANDSHAKE_FAILED)
        self.refused: dict[str, int] = {}  # reason -> connections refused at the handshake
        self.refused_total = 0  # their sum, safe to read from another thread

    def read_refusals(self) -> None:
        """Count the monitor's handshake failures; log the first one of each kind."""
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            reason = _refusal_reason(event["event"], event["value"])
            if reason not in self.refused:
                LOG.warning("coordinator: refused a connection at the CURVE handshake (%s); "
                            "more of these are counted, not logged", reason)
            self.refused[reason] = self.refused.get(reason, 0) + 1
            self.refused_total += 1

    def key_name(self, frame: zmq.Frame) -> str:
        """The name of the key the connection that sent ``frame`` holds."""
        return frame.get("User-Id")

    def may_register(self, key: str, name: str, roster: list[str] | None) -> bool:
        """A key named after an agent speaks for that agent only, and only it registers
        that agent; any other key registers any agent without a key of its own."""
        if key == name:
            return True
        return name not in self.keys.values() and key not in (roster or ())

    def close(self) -> None:
        self.monitor.close(linger=0)
        self.authenticator.stop()


def _refusal_reason(event: int, value: int) -> str:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "client key not admitted"
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "client without CURVE"
    if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "handshake did not decrypt: client holds another coordinator key"
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:  # value: an errno
        return f"handshake failed: {os.strerror(value)}"
    return f"protocol error {value:#x}"


def is_loopback(endpoint: str) -> bool:
    """Whether a bound ``tcp://host:port`` endpoint listens on loopback only."""
    host = endpoint.removeprefix("tcp://").rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- command line ------------------------------------------------------------------------------
def write_keys(args) -> int:
    """``lemgrid keys``: write the keys and name every file written."""
    try:
        written = make_keys(args.directory, args.clients, args.force)
    except KeysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_EXISTS
    for path in written:
        print(f"wrote {path}")
    print(f"the coordinator needs {SERVER_KEY}{SECRET} and {CLIENTS_DIR}/; an agent host "
          f"needs {SERVER_KEY}{PUBLIC} and its {PRIVATE_DIR}/NAME{SECRET}")
    return 0
