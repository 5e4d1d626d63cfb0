"""The wire protocol between agents and the coordinator: one module both sides import.

Every message is an envelope (``v``, ``type``, ``msg_id``, ``sender``, ``day``,
``round``) around a typed body. Agents send ``register`` (join a day's market),
``offer`` (quantities per commodity, optionally per counterparty), ``meter`` (the
realised power at the connection, in one or more consecutive periods) and
``heartbeat``; the coordinator sends
``signal`` (per-period prices and limits, per commodity and optionally per
counterparty, and consensus terms for iterative mechanisms), ``clearing`` (the day-ahead
result), ``settlement`` (the day's bill after the meters) and ``error``.

Bodies are generic over mechanisms: a commodity or market is a key (``p2v``, ``net``,
``power``, ``heat``, ``import``, ``export``, ...), a period series is a list of finite
numbers; the powers an agent sends are at most ``MAX_KW`` in magnitude, so the sums and
products of a mechanism stay finite. There is no field for load, PV, state of charge,
appliances or any other private profile, and unknown fields are refused.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from lemgrid.coordinator.constants import (  # noqa: F401 (carried to the rest)
    CURVE_CLIENTS_DIR,
    CURVE_DEFAULT_CLIENT,
    CURVE_PRIVATE_DIR,
    CURVE_PUBLIC,
    CURVE_SECRET,
    CURVE_SERVER_KEY,
    HEARTBEAT_EXPIRY_S,
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_LIVENESS,
    REQUEST_RETRIES,
    REQUEST_TIMEOUT_S,
    ROUND_DEADLINE_S,
)

PROTOCOL_VERSION = 7


# Commodity keys that both sides of a mechanism use.
NET = "net"  # an agent's signed net demand at its connection (+ import)
P2P = "p2p"  # peer-to-peer trades
POWER, HEAT = "power", "heat"  # the bilateral market's commodities
KW_PER_MW = 1000.0  # powers travel in kW; an iterative mechanism's ρ in €/MW²h
INFEASIBLE = "infeasible:"  # starts an operator's binding label for a period it cannot clear

Kind = Literal["prosumer", "ev", "building", "operator"]
KINDS: tuple[str, ...] = Kind.__args__
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
MSG_ID_MAX = 64  # characters of a msg_id
MAX_DETAIL = 300  # characters of an error's detail
Number = Annotated[float, Field(allow_inf_nan=False)]
Series = Annotated[list[Number], Field(max_length=100_000)]  # one value per period
NonNegSeries = Annotated[list[Annotated[float, Field(ge=0, allow_inf_nan=False)]],
                         Field(max_length=100_000)]
MAX_KW = 1e9  # the largest power an agent may state, far above any connection
Power = Annotated[float, Field(ge=-MAX_KW, le=MAX_KW, allow_inf_nan=False)]
PowerSeries = Annotated[list[Power], Field(max_length=100_000)]  # sent by agents
LimitSeries = Annotated[list[Annotated[float, Field(ge=0, le=MAX_KW, allow_inf_nan=False)]],
                        Field(max_length=100_000)]
Period = Annotated[int, Field(ge=0, lt=100_000)]
# A series given sparsely, {period: value}, 0 in every period it does not name: a
# bilateral market's trade with one counterparty, which after the netting flows in a
# period or two of the day (1000 peers: 743 counterparties a peer, 96 values each, as
# lists). ``series_array`` reads either form.
SparseSeries = Annotated[dict[Period, Number], Field(max_length=100_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterBody(_Body):
    """An agent joins one day's market: its kind, horizon and the limits at its
    connection a mechanism may use (per period, kW): e.g. ``p2v`` (P2V trades),
    ``import``, ``export``, ``cdl`` (consumer demand limit), ``pil`` (power injection
    limit)."""

    kind: Kind
    periods: int = Field(gt=0, le=100_000)
    period_h: float = Field(gt=0, le=24)
    limits_kw: dict[Key, LimitSeries] = Field(default_factory=dict)


class Terms(_Body):
    """Per-period terms for one commodity (or one counterparty and commodity)."""

    price_eur_per_kwh: Series | None = None
    limit_kw: NonNegSeries | None = None
    target_kw: Series | None = None  # consensus target of an iterative mechanism
    rho: Number | None = Field(None, description="penalty on this term's consensus, where it "
                               "differs from the signal's rho")
    penalty_eur_per_kwh: Series | None = Field(
        None, description="a cost per kWh traded in either direction (a network path's loss "
        "and congestion penalty), on top of the price")
    counterparties: int | None = Field(
        None, ge=0, le=100_000, description="how many bilateral trades these terms aggregate "
        "(price: their mean price, target: their sum), where it differs by commodity")


class TradeTerms(_Body):
    """A proposed bilateral trade: kW per period the seller delivers to the buyer (at
    ``price_eur_per_kwh``), as a market puts it to the network operator for clearance."""

    seller: Key
    buyer: Key
    kw: NonNegSeries
    price_eur_per_kwh: Series | None = None


Label = Annotated[str, Field(max_length=200)]


class SignalBody(_Body):
    terms: dict[Key, Terms] = Field(default_factory=dict)
    by_counterparty: dict[Key, dict[Key, Terms]] | None = None
    rho: Number | None = Field(None, description="penalty of an iterative mechanism")
    counterparties: int | None = Field(
        None, ge=0, le=100_000,
        description="how many counterparties a commodity's terms stand for, where one term "
                    "aggregates the agent's bilateral trades (its price: their mean price; its "
                    "target: their sum)")
    trades: list[TradeTerms] | None = Field(None, max_length=100_000,
                                            description="trades put to the network operator")


class OfferBody(_Body):
    """Quantities per commodity (kW per period; ``net`` is signed: + import, − export),
    optionally per counterparty."""

    quantities_kw: dict[Key, PowerSeries]
    by_counterparty_kw: dict[Key, dict[Key, PowerSeries]] | None = None
    accepted_kw: list[NonNegSeries] | None = Field(
        None, max_length=100_000, description="the network operator's answer to a signal's "
        "trades: the kW it accepts of each, in their order")
    binding: dict[Key, Annotated[list[Label], Field(max_length=1000)]] | None = Field(
        None, description="the network operator's limits that bind, per period (its index)")
    penalties_eur_per_kwh: dict[Key, dict[Key, Series]] | None = Field(
        None, description="the network operator's path penalty per kWh traded between two "
        "agents (agent → counterparty → series; the operator's own name as the counterparty "
        "stands for the main grid)")


class ClearingBody(_Body):
    """The day-ahead result for one agent: cleared quantities and prices per commodity
    (and per counterparty where the market trades bilaterally: kW bought from it, − sold),
    and ``position_kw``: the energy the market delivers (+) or takes (−) at the agent's
    connection in each period; the rest of its realised power is retail."""

    quantities_kw: dict[Key, Series] = Field(default_factory=dict)
    prices_eur_per_kwh: dict[Key, Series] = Field(default_factory=dict)
    by_counterparty_kw: dict[Key, dict[Key, Series | SparseSeries]] | None = None  # trades
    by_counterparty_price: dict[Key, dict[Key, Series | SparseSeries]] | None = None  # prices
    position_kw: Series
    converged: bool
    export_limit_kw: dict[Key, Annotated[float, Field(ge=0, le=MAX_KW, allow_inf_nan=False)]] \
        | None = Field(None, max_length=100_000, description="the most the agent may feed into "
                       "the network (kW) in the periods (their index) where the network "
                       "operator curtailed its sales; elsewhere its own limits hold")


class MeterBody(_Body):
    """The realised power at the agent's connection (+ import) in the consecutive
    periods from ``period`` on, one value each: a meter reports every period, every hour
    or once a day (``merge_meters``). A single value stands for a list of one."""

    period: int = Field(ge=0, le=100_000)
    p_kw: Annotated[list[Power], Field(min_length=1, max_length=100_000)]

    @field_validator("p_kw", mode="before")
    @classmethod
    def _one_period(cls, value):
        return [value] if isinstance(value, (int, float)) else value


class SettlementBody(_Body):
    """The day's bill from the market, per period (€, + the agent pays): the traded
    bill of the day-ahead position, the deviation cost of the realised power against
    it and the violation cost of the deviation; ``position_kw`` is the realised energy
    the market covered (the rest is retail)."""

    position_kw: Series
    traded_eur: Series
    deviation_eur: Series
    violation_eur: Series


class HeartbeatBody(_Body):
    pass


# "gone": the agent has left the run (it failed a day) and is not served again.
ErrorCode = Literal["malformed", "version", "unknown_type", "duplicate", "late",
                    "unknown_agent", "forbidden", "gone"]


class ErrorBody(_Body):
    code: ErrorCode
    detail: str = Field(max_length=MAX_DETAIL)
    ref_msg_id: str | None = Field(None, max_length=MSG_ID_MAX)


class _MessageIds:
    """Message ids unique to a process (a random prefix, drawn again in a forked child)
    and within it (a counter): a random id per message read the system's random source
    each time, a sixth of a scripted swarm's time."""

    def __init__(self):
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix, self.count = uuid.uuid4().hex[:16], itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.count):x}"


new_msg_id = _MessageIds()


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: int = PROTOCOL_VERSION
    msg_id: str = Field(default_factory=new_msg_id, max_length=MSG_ID_MAX)
    sender: Key
    day: int = Field(0, ge=0, le=1_000_000)
    round: int = Field(0, ge=0, le=1_000_000)


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


class Meter(_Envelope):
    type: Literal["meter"] = "meter"
    body: MeterBody


class Settlement(_Envelope):
    type: Literal["settlement"] = "settlement"
    body: SettlementBody


class Heartbeat(_Envelope):
    type: Literal["heartbeat"] = "heartbeat"
    body: HeartbeatBody = HeartbeatBody()


class Error(_Envelope):
    type: Literal["error"] = "error"
    body: ErrorBody


def merge_meters(readings: list[Meter]) -> Meter:
    """One meter message for consecutive readings of one agent and day (in order):
    the first one's envelope, every period's value."""
    first = readings[0]
    values = [v for m in readings for v in m.body.p_kw]
    return first.model_copy(update={"body": MeterBody(period=first.body.period,
                                                      p_kw=values)})


MESSAGE_CLASSES = (Register, Signal, Offer, Clearing, Meter, Settlement, Heartbeat, Error)
Message = Annotated[
    Register | Signal | Offer | Clearing | Meter | Settlement | Heartbeat | Error,
    Field(discriminator="type"),
]
MESSAGE_TYPES = {cls.model_fields["type"].default: cls for cls in MESSAGE_CLASSES}
_ADAPTER = TypeAdapter(Message)


class ProtocolError(ValueError):
    """A frame that is not a valid message of this protocol version."""

    def __init__(self, code: str, detail: str, msg_id: str | None = None):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.msg_id = code, detail, msg_id


def encode(msg: _Envelope) -> bytes:
    return msg.model_dump_json().encode()


def decode(frame: bytes):
    """Parse one frame; raise ProtocolError naming what is wrong (a short detail, quoting
    only a ``msg_id`` that a valid message could carry)."""
    try:
        raw = json.loads(frame)
    except (ValueError, RecursionError) as exc:  # ValueError: also an integer too long to read
        raise ProtocolError("malformed", f"not JSON ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise ProtocolError("malformed", "a message must be a JSON object")
    msg_id = _ref_id(raw.get("msg_id"))
    if type(raw.get("v")) is not int or raw.get("v") != PROTOCOL_VERSION:
        raise ProtocolError("version", f"protocol version {_shown(raw.get('v'), 20)} is not "
                            f"{PROTOCOL_VERSION}", msg_id)
    if not isinstance(raw.get("type"), str) or raw["type"] not in MESSAGE_TYPES:
        raise ProtocolError("unknown_type", f"message type {_shown(raw.get('type'), 40)} is "
                            f"not one of {', '.join(MESSAGE_TYPES)}", msg_id)
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError("malformed", clean_text(f"{where}: {first['msg']}"),
                            msg_id) from None


def clean_text(text: str, limit: int = MAX_DETAIL) -> str:
    """``text`` cut to ``limit`` characters, anything UTF-8 cannot carry escaped."""
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _ref_id(value) -> str | None:
    """A ``msg_id`` to quote back: a string a valid envelope could carry, else None."""
    if not isinstance(value, str) or len(value) > MSG_ID_MAX:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in the JSON)
        return None
    return value


def _shown(value, limit: int) -> str:
    """A short printable picture of a JSON value."""
    if isinstance(value, (dict, list)):
        return f"(a JSON {'object' if isinstance(value, dict) else 'array'})"
    return repr(str(value)[:limit])


def series_array(values: list[float] | dict[int, float], periods: int) -> np.ndarray:
    """A period series as an array of ``periods`` values, from a list or a
    ``SparseSeries`` (0 where it names no value)."""
    if isinstance(values, dict):
        out = np.zeros(periods)
        if values:
            out[np.fromiter(values.keys(), int, len(values))] = np.fromiter(
                values.values(), float, len(values))
        return out
    return np.asarray(values, float)


def period_values(values: list[float] | dict[int, float]) -> list[tuple[int, float]]:
    """(period, value) of a period series, list or ``SparseSeries`` (the periods it names,
    in order)."""
    return sorted(values.items()) if isinstance(values, dict) else list(enumerate(values))

