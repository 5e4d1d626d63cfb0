"""The wire protocol between agents and the coordinator: one module both sides import.

Every message is an envelope (``v``, ``type``, ``msg_id``, ``sender``, ``day``,
``round``) around a typed body. Agents send ``register``, ``offer`` and
``heartbeat``; the coordinator sends ``signal``, ``clearing`` and ``error``. There is
no field for load, PV, state of charge or any other private profile.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1

# Timing (seconds). Name the base constants, derive the rest.
HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_LIVENESS = 5
HEARTBEAT_EXPIRY_S = HEARTBEAT_INTERVAL_S * HEARTBEAT_LIVENESS
REQUEST_TIMEOUT_S = 10.0
REQUEST_RETRIES = 3
ROUND_DEADLINE_S = REQUEST_TIMEOUT_S * REQUEST_RETRIES

# The CURVE key directory that ``lemgrid keys`` writes; both sides find keys by these.
CURVE_SERVER_KEY = "coordinator"  # DIR/coordinator.key (public), .key_secret (pair)
CURVE_CLIENTS_DIR, CURVE_PRIVATE_DIR = "clients", "private"  # public keys; key pairs
CURVE_PUBLIC, CURVE_SECRET = ".key", ".key_secret"
CURVE_DEFAULT_CLIENT = "agents"  # one key for a whole agent host

Kind = Literal["prosumer", "ev", "building", "consumer"]
Side = Literal["seller", "buyer"]
Quantities = list[Annotated[float, Field(ge=0)]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterBody(_Body):
    kind: Kind
    side: Side
    periods: int = Field(gt=0)
    p2v_max_kw: float = Field(ge=0, description="connection limit for P2V trades")


class SignalBody(_Body):
    p2v_limit_kw: Quantities | None = None
    price_eur_per_kwh: list[float] | None = None


class OfferBody(_Body):
    p2v_kw: Quantities
    by_counterparty_kw: dict[str, Quantities] | None = None


class ClearingBody(_Body):
    p2v_kw: Quantities
    residual_kw: Quantities
    price_eur_per_kwh: list[float]
    converged: bool


class HeartbeatBody(_Body):
    pass


class ErrorBody(_Body):
    code: Literal["malformed", "version", "unknown_type", "duplicate", "late", "unknown_agent",
                  "forbidden"]
    detail: str
    ref_msg_id: str | None = None


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: int = PROTOCOL_VERSION
    msg_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    sender: str
    day: int = 0
    round: int = 0


class Register(_Envelope):
    type: Literal["register"] = "register"
    body: RegisterBody


class Signal(_Envelope):
    type: Literal["signal"] = "signal"
    body: SignalBody


class Offer(_Envelope):
    type: Literal["offer"] = "offer"
    body: OfferBody


class Clearing(_Envelope):
    type: Literal["clearing"] = "clearing"
    body: ClearingBody


class Heartbeat(_Envelope):
    type: Literal["heartbeat"] = "heartbeat"
    body: HeartbeatBody = HeartbeatBody()


class Error(_Envelope):
    type: Literal["error"] = "error"
    body: ErrorBody


Message = Annotated[
    Register | Signal | Offer | Clearing | Heartbeat | Error, Field(discriminator="type")
]
MESSAGE_TYPES = {cls.model_fields["type"].default: cls
                 for cls in (Register, Signal, Offer, Clearing, Heartbeat, Error)}
_ADAPTER = TypeAdapter(Message)


class ProtocolError(ValueError):
    """A frame that is not a valid message of this protocol version."""

    def __init__(self, code: str, detail: str, msg_id: str | None = None):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.msg_id = code, detail, msg_id


def encode(msg: _Envelope) -> bytes:
    return msg.model_dump_json().encode()


def decode(frame: bytes) -> Register | Signal | Offer | Clearing | Heartbeat | Error:
    """Parse one frame; raise ProtocolError naming what is wrong."""
    try:
        raw = json.loads(frame)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("malformed", f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ProtocolError("malformed", "a message must be a JSON object")
    msg_id = raw.get("msg_id") if isinstance(raw.get("msg_id"), str) else None
    if raw.get("v") != PROTOCOL_VERSION:
        raise ProtocolError("version", f"protocol version {raw.get('v')!r} is not "
                            f"{PROTOCOL_VERSION}", msg_id)
    if raw.get("type") not in MESSAGE_TYPES:
        raise ProtocolError("unknown_type", f"message type {raw.get('type')!r} is not one of "
                            f"{', '.join(MESSAGE_TYPES)}", msg_id)
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError("malformed", f"{where}: {first['msg']}", msg_id) from None
