"""Double-auction matching of surplus and deficit participants into bilateral trades.

Vieira Fernandes, Christin, Kar, "Peer-to-Peer (P2P) Electricity Markets for Low Voltage
Networks", SmartGridComm 2024, arXiv 2407.21403 ("Matching_algo" in the README of the
authors' repository github.com/d-vf/P2PEnergyTrading). Pure: no network, no solver, no files.
The paper matches buses; a market matches its participants (``bus`` is whatever integer
names one: a bus, or an agent's index), in whatever unit of power its caller uses
(``q_mw`` names the paper's).

Each bus nets its own generation against its own load. A bus short of power places a buy
order (its deficit, at its bid), a bus with spare power a sell order (its surplus, at its
ask). Buy orders are taken highest bid first, each against the sell orders lowest ask
first, while bid ≥ ask; a trade is t = (seller bus, buyer bus, q = min of what both have
left) and a buyer goes on to the next seller until it is satisfied. Ties keep the order
of the buses (those in ``gen_mw`` first, then the load-only buses of ``load_mw``), as the
authors' code does. A trade carries the seller's ask as its price (pay-as-ask, as in the
authors' code and their benefit split 0.05 / 0.15 €/kWh). Trades below ``min_trade_mw``
are dropped after matching (the quantity they would have moved is not re-offered).

Two deviations of the authors' code (``match_orders`` in
``implementation/P2P_24_hour_block_LP_DC_aprox_21072024.ipynb``), kept out of the default:
it sorts buyers by *increasing* bid and sellers by *decreasing* ask (the opposite of the
authors' README; with the uniform prices of the paper this changes nothing), and it moves on to the
next buyer as soon as the current seller is exhausted, so each buyer trades with one
seller at most (``one_seller_per_buyer=True`` reproduces it). Its 1e-5 MW filter builds a
filtered list that is then not used: its published hours include trades of 1e-6 MW
(``min_trade_mw=0`` reproduces it).
"""

from collections.abc import Mapping
from dataclasses import dataclass

BID_EUR_PER_KWH = 0.20  # what a deficit bus offers to pay (the paper's fixed bid)
ASK_EUR_PER_KWH = 0.05  # what a surplus bus asks (the paper's fixed ask)
MIN_TRADE_MW = 1e-5  # trades below this are dropped


@dataclass(frozen=True)
class Order:
    """A bus's buy order (its deficit) or sell order (its surplus)."""

    bus: int
    q_mw: float
    price_eur_per_kwh: float


@dataclass(frozen=True)
class Match:
    """t = (s, d, q): the seller's bus s delivers q MW to the buyer's bus d."""

    seller_bus: int
    buyer_bus: int
    q_mw: float
    price_eur_per_kwh: float = ASK_EUR_PER_KWH


def _price(price: float | Mapping[int, float], bus: int) -> float:
    return float(price[bus]) if isinstance(price, Mapping) else float(price)


def bus_orders(gen_mw: Mapping[int, float], load_mw: Mapping[int, float],
               bid_eur_per_kwh: float | Mapping[int, float] = BID_EUR_PER_KWH,
               ask_eur_per_kwh: float | Mapping[int, float] = ASK_EUR_PER_KWH,
               ) -> tuple[list[Order], list[Order]]:
    """(buy orders, sell orders): one per bus whose generation and load do not cancel.

    Buses in the order of ``gen_mw``, then the load-only buses of ``load_mw``; a price may be
    one number or a mapping bus → price.
    """
    buys, sells = [], []
    for bus in [*gen_mw, *(b for b in load_mw if b not in gen_mw)]:
        gen, load = float(gen_mw.get(bus, 0.0)), float(load_mw.get(bus, 0.0))
        if gen < 0 or load < 0:
            raise ValueError(f"bus {bus}: generation and load must be nonnegative, "
                             f"got {gen} MW and {load} MW")
        if gen > load:
            sells.append(Order(int(bus), gen - load, _price(ask_eur_per_kwh, bus)))
        elif load > gen:
            buys.append(Order(int(bus), load - gen, _price(bid_eur_per_kwh, bus)))
    return buys, sells


def match_orders(buys: list[Order], sells: list[Order], min_trade_mw: float = MIN_TRADE_MW,
                 one_seller_per_buyer: bool = False) -> list[Match]:
    """Trades of the double auction (module docstring); bids high→low, asks low→high."""
    buys = sorted(buys, key=lambda o: -o.price_eur_per_kwh)  # sorted() is stable
    sells = sorted(sells, key=lambda o: o.price_eur_per_kwh)
    left = [s.q_mw for s in sells]
    trades = []
    for buy in buys:
        need = buy.q_mw
        for k, sell in enumerate(sells):
            if need <= 0 or sell.price_eur_per_kwh > buy.price_eur_per_kwh:
                break
            if left[k] <= 0 or sell.bus == buy.bus:
                continue
            q = min(need, left[k])
            trades.append(Match(sell.bus, buy.bus, q, sell.price_eur_per_kwh))
            need -= q
            left[k] -= q
            if one_seller_per_buyer:
                break
    return [t for t in trades if t.q_mw >= min_trade_mw and t.q_mw > 0]


def match_buses(gen_mw: Mapping[int, float], load_mw: Mapping[int, float],
                bid_eur_per_kwh: float | Mapping[int, float] = BID_EUR_PER_KWH,
                ask_eur_per_kwh: float | Mapping[int, float] = ASK_EUR_PER_KWH,
                min_trade_mw: float = MIN_TRADE_MW,
                one_seller_per_buyer: bool = False) -> list[Match]:
    """Trades of one period from each bus's generation and load (MW)."""
    buys, sells = bus_orders(gen_mw, load_mw, bid_eur_per_kwh, ask_eur_per_kwh)
    return match_orders(buys, sells, min_trade_mw, one_seller_per_buyer)
