"""Real time: what an agent actually does in a period, given its day-ahead plan and what
really happened (load, PV and wind differ from their forecasts).

RECON (docs/models.md#real-time-realisation; the locality market's households reschedule
their batteries in real time to cut deviation penalties): flexible loads run as planned; PV and wind produce their actual availability
less the curtailment the plan chose; the battery absorbs the difference between actual
and forecast net demand as far as its power and energy allow, so the realised power at
the connection tracks the planned one; where the export would exceed the
period's export limit (the connection's, or a network operator's cap on curtailed sales),
renewables are curtailed first (the plan's battery schedule stands), then, where that is
not enough, the battery charges more or discharges less. An EV
drives, charges and (V2G) discharges as planned, less the discharge above an export limit;
where a co-simulator reports it not plugged in, it neither charges nor discharges (its
state of charge falls short of the plan's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RENEWABLES = ("pv_kw", "wind_kw")
PRODUCERS = ("gen_kw", "chp_kw")  # dispatchable: they produce as planned


@dataclass(frozen=True)
class Actuals:
    """Realised profiles over the run (kW per period); None: as forecast."""

    load_kw: np.ndarray | None = None
    pv_kw: np.ndarray | None = None
    wind_kw: np.ndarray | None = None

    def at(self, forecast, day: int, t: int) -> dict[str, float]:
        """The realised load and availabilities in period ``t`` of ``day``; ``forecast``
        is that day's data."""
        k = day * forecast.horizon.periods + t
        out = {}
        for name in ("load_kw", *RENEWABLES):
            own = getattr(forecast, name, None)
            if own is None:
                continue
            actual = getattr(self, name)
            out[name] = float(own[t]) if actual is None else float(actual[k])
        return out


def observe(day_data, observed: dict[str, float] | None) -> dict[str, float]:
    """A co-simulator's report of the period, checked against what the agent has: a
    household's realised ``load_kw`` (≥ 0) and ``pv_kw`` availability (≥ 0, if it has PV),
    an EV's ``plugged`` (1 or 0). A report it cannot take raises ValueError naming it."""
    out = {}
    ev = hasattr(day_data, "trip_kwh")
    for attr, value in (observed or {}).items():
        has = (ev if attr == "plugged"
               else not ev and getattr(day_data, attr, None) is not None)
        if not has:
            raise ValueError(f"{attr} from a co-simulator, but {day_data.name} has no "
                             f"{'connection state' if attr == 'plugged' else attr}")
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{attr} from a co-simulator is {value}: need a finite value ≥ 0")
        out[attr] = float(value)
    return out


def battery_range_kw(spec, soc_kwh: float, period_h: float) -> tuple[float, float]:
    """The battery's feasible net charging power (charge − discharge) this period."""
    up = min(spec.charge_max_kw, (spec.capacity_kwh - soc_kwh) / (spec.eta_charge * period_h))
    down = min(spec.discharge_max_kw, (soc_kwh - spec.soc_min_kwh) * spec.eta_discharge / period_h)
    return -max(down, 0.0), max(up, 0.0)


def realise_period(day_data, planned: dict[str, np.ndarray], t: int, soc_kwh: float | None,
                   actual: dict[str, float], export_cap_kw: float) -> dict[str, float]:
    """The realised flows of period ``t`` (kW; ``soc_kwh`` at its end; ``net_kw`` at the
    connection, + import). ``planned``: the day-ahead plan's flows."""
    h = day_data.horizon.period_h
    flows = {k: float(v[t]) for k, v in planned.items()}
    if hasattr(day_data, "trip_kwh"):  # an EV: as planned (a V2G EV's feed-in goes out)
        if not actual.get("plugged", 1.0):  # not plugged in after all: no charge, no feed-in
            for key in ("buy_kw", "p2v_kw", "sell_kw", "p2p_kw", "ch_kw", "dis_kw"):
                if key in flows:
                    flows[key] = 0.0
        net = (flows.get("buy_kw", 0.0) + flows.get("p2v_kw", 0.0) - flows.get("sell_kw", 0.0)
               + flows.get("p2p_kw", 0.0))
        if net < -export_cap_kw:  # V2G: discharge (and feed-in) less
            cut = min(-export_cap_kw - net, flows.get("sell_kw", 0.0), flows.get("dis_kw", 0.0))
            flows["sell_kw"] = flows.get("sell_kw", 0.0) - cut
            flows["dis_kw"] = flows.get("dis_kw", 0.0) - cut
            net += cut
        return _with_soc(day_data, flows, soc_kwh, h, float(day_data.trip_kwh[t]), net)
    extra = actual["load_kw"] - float(day_data.load_kw[t])
    flows["load_kw"] = actual["load_kw"]
    for name in RENEWABLES:
        if name in actual and name in flows:
            forecast = float(getattr(day_data, name)[t])
            gen = min(max(flows[name] + actual[name] - forecast, 0.0), actual[name])
            extra -= gen - flows[name]
            flows[name] = gen
    _track_with_battery(day_data, flows, soc_kwh, extra, h)
    net = _net(flows)
    if net < -export_cap_kw:
        net += _curtail(flows, -export_cap_kw - net)
    if net < -export_cap_kw:
        _track_with_battery(day_data, flows, soc_kwh, net + export_cap_kw, h)
        net = _net(flows)
    return _with_soc(day_data, flows, soc_kwh, h, 0.0, net)


def _net(flows: dict[str, float]) -> float:
    return (flows["load_kw"] + flows.get("flex_kw", 0.0) + flows.get("ch_kw", 0.0)
            - flows.get("dis_kw", 0.0) - sum(flows.get(n, 0.0) for n in (*RENEWABLES, *PRODUCERS)))


def _track_with_battery(d, flows, soc_kwh, extra_kw: float, h: float) -> None:
    """Shift the battery's net charging by −extra, within what it can do now."""
    if d.battery is None or soc_kwh is None or "dis_kw" not in flows:
        return
    low, high = battery_range_kw(d.battery, soc_kwh, h)
    net = min(max(flows["ch_kw"] - flows["dis_kw"] - extra_kw, low), high)
    flows["ch_kw"], flows["dis_kw"] = max(net, 0.0), max(-net, 0.0)


def _curtail(flows: dict[str, float], kw: float) -> float:
    """Curtail PV first, then wind, by up to ``kw``; the amount curtailed."""
    done = 0.0
    for name in RENEWABLES:
        cut = min(flows.get(name, 0.0), kw - done)
        if cut > 0:
            flows[name] -= cut
            done += cut
    return done


def _with_soc(d, flows, soc_kwh, h, drain_kwh: float, net_kw: float) -> dict[str, float]:
    flows["net_kw"] = net_kw
    if d.battery is not None and soc_kwh is not None:
        b = d.battery
        gain = h * (b.eta_charge * flows.get("ch_kw", 0.0) - flows.get("dis_kw", 0.0)
                    / b.eta_discharge)
        flows["soc_kwh"] = soc_kwh + gain - drain_kwh
    return flows
