"""Equipment blocks that add themselves to a Pyomo block: battery, PV unit, wind
turbine, flexible loads, grid connections, EV charger, generator, CHP unit and heat
balance.

Every block records three lists on the agent's top block so the solver wrapper can
prove an LP relaxation MILP-optimal (see ``agents.solver``):

- ``indicators``: ``(binary, flow)`` pairs of the form ``flow <= M * binary``;
- ``exclusive``: pairs of binaries with ``x_a + x_b <= 1``;
- ``integers``: binaries that are genuine decisions (not indicators of a flow); the LP
  solution must already be integral in them.

Producers with a quadratic cost also record ``quadratic``: ``(power, epigraph, a)``
triples (see ``add_epigraph``; read them with ``quadratic_terms``).

Every number a block takes from an agent's data comes from its ``*_numbers`` function
(pure numpy: a dict of scalars and per-period arrays) and enters the block through
``numbers_of``: as plain floats, or, in a ``parametric`` build, as mutable Pyomo
parameters, so that one built model serves every agent of the same structure
(``agents.model``). Nothing else in a block may depend on the data's values; what
does (which blocks exist, the number of tangents, a flexible load's window) is the
model's structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np

from lemgrid.agents.data import (
    BatterySpec,
    ChpSpec,
    FlexibleLoad,
    GeneratorSpec,
    Horizon,
    polygon_halfplanes,
)
from lemgrid.agents.lazy import lazy

pyo = lazy("pyomo.environ")  # imported where a model is written in Pyomo

EPIGRAPH_SEGMENTS = 24  # K: tangents of ½·a·x² at K + 1 evenly spaced points


def _register(top: pyo.Block, indicators=(), exclusive=(), integers=(), quadratic=()) -> None:
    top.indicators = [*getattr(top, "indicators", []), *indicators]
    top.exclusive = [*getattr(top, "exclusive", []), *exclusive]
    top.integers = [*getattr(top, "integers", []), *integers]
    top.quadratic = [*getattr(top, "quadratic", []), *quadratic]


def quadratic_terms(block: pyo.Block, named: bool = False) -> list[tuple[pyo.Var, pyo.Var,
                                                                        float | str]]:
    """Every quadratic cost in ``block`` and its sub-blocks: (the power variable indexed by
    period, its epigraph variable indexed by period, a in €/kW²h). In the MILP each period
    costs Δt·z_t with z_t ≥ the tangents of ½·a·x_t²; the exact cost instead puts no cost
    on z and Δt·a on the Hessian diagonal of x. ``named``: a parametric model's a as the
    name of its number (``ModelNumbers.flat``) instead of its value."""
    return [(x, z, a.name if named else float(pyo.value(a)))
            for blk in block.block_data_objects() for x, z, a in getattr(blk, "quadratic", [])]


Numbers = dict[str, float | np.ndarray]  # a block's numbers by name (scalars, per period)


def numbers_of(b: pyo.Block, numbers: Numbers, parametric: bool,
               mutable: Sequence[str] = ()) -> SimpleNamespace:
    """The block's numbers to write its constraints with: ``v.name`` (a scalar) or
    ``v.name[t]``. Plain floats, except in a ``parametric`` build and for the names in
    ``mutable`` (what a market sets: a limit, a price), which are mutable parameters
    added to ``b`` under their names."""
    out = SimpleNamespace()
    for name, value in numbers.items():
        a = np.asarray(value, float)
        if parametric or name in mutable:
            if a.ndim == 0:
                comp = pyo.Param(initialize=float(a), mutable=True, within=pyo.Reals)
            else:
                comp = pyo.Param(range(len(a)), initialize=dict(enumerate(a.tolist())),
                                 mutable=True, within=pyo.Reals)
            b.add_component(name, comp)
            setattr(out, name, comp)
        else:
            setattr(out, name, float(a) if a.ndim == 0 else a.tolist())
    return out


def battery_numbers(horizon: Horizon, spec: BatterySpec, drain_kwh: np.ndarray | None = None,
                    with_discharge: bool = True, discharge_kw: np.ndarray | None = None
                    ) -> Numbers:
    """A battery's numbers (``add_battery``): limits, Δt·η_c, Δt/η_d, the energy drained
    per period, and the most discharge per period (``discharge_kw``; default: the spec's
    in every period)."""
    h, n = horizon.period_h, horizon.periods
    out = {"charge_max_kw": spec.charge_max_kw, "soc_min_kwh": spec.soc_min_kwh,
           "capacity_kwh": spec.capacity_kwh, "e0_kwh": spec.e0_kwh,
           "e_end_min_kwh": spec.e_end_min_kwh, "charge_gain": h * spec.eta_charge,
           "drain_kwh": np.zeros(n) if drain_kwh is None else np.asarray(drain_kwh, float)}
    if with_discharge:
        out["discharge_max_kw"] = spec.discharge_max_kw
        out["discharge_loss"] = h * (1.0 / spec.eta_discharge)
        out["discharge_cap_kw"] = (np.full(n, float(spec.discharge_max_kw)) if discharge_kw
                                   is None else np.asarray(discharge_kw, float))
    return out


def add_battery(top: pyo.Block, horizon: Horizon, numbers: Numbers,
                parametric: bool = False) -> pyo.Block:
    """State of charge, charge and (with ``discharge_max_kw`` among the numbers)
    discharge with mutual exclusion.

    E_t = E_{t-1} + Δt (η_c ch_t − dis_t / η_d) − drain_t, E_min ≤ E_t ≤ E_max,
    dis_t ≤ D_t (the most discharge in period t), E_T ≥ E_end (RECON: a day must not end
    emptier than the scenario allows).
    """
    T = range(horizon.periods)
    top.battery = b = pyo.Block()
    v = numbers_of(b, numbers, parametric)
    b.ch_kw = pyo.Var(T, bounds=(0, v.charge_max_kw))
    b.soc_kwh = pyo.Var(T, bounds=(v.soc_min_kwh, v.capacity_kwh))
    dis = {t: 0 for t in T}
    with_discharge = "discharge_max_kw" in numbers
    if with_discharge:
        b.dis_kw = pyo.Var(T, bounds=lambda b, t: (0, v.discharge_cap_kw[t]))
        b.x_ch = pyo.Var(T, domain=pyo.Binary)
        b.x_dis = pyo.Var(T, domain=pyo.Binary)
        b.ch_on = pyo.Constraint(T, rule=lambda b, t: b.ch_kw[t] <= v.charge_max_kw * b.x_ch[t])
        b.dis_on = pyo.Constraint(
            T, rule=lambda b, t: b.dis_kw[t] <= v.discharge_max_kw * b.x_dis[t]
        )
        b.one_mode = pyo.Constraint(T, rule=lambda b, t: b.x_ch[t] + b.x_dis[t] <= 1)
        dis = b.dis_kw
        _register(top, [(b.x_ch, b.ch_kw), (b.x_dis, b.dis_kw)], [(b.x_ch, b.x_dis)])

    def soc_rule(b, t):
        prev = v.e0_kwh if t == 0 else b.soc_kwh[t - 1]
        gain = v.charge_gain * b.ch_kw[t]
        if with_discharge:
            gain = gain - v.discharge_loss * dis[t]
        return b.soc_kwh[t] == prev + gain - v.drain_kwh[t]

    b.soc = pyo.Constraint(T, rule=soc_rule)
    b.end = pyo.Constraint(expr=b.soc_kwh[horizon.periods - 1] >= v.e_end_min_kwh)
    return b


def generation_numbers(available_kw: np.ndarray) -> Numbers:
    """A PV unit's or wind turbine's numbers: the available power per period."""
    return {"available_kw": np.asarray(available_kw, float)}


def add_pv(top: pyo.Block, horizon: Horizon, numbers: Numbers,
           parametric: bool = False) -> pyo.Block:
    """PV output, at most the available power (curtailment allowed, RECON)."""
    top.pv = b = pyo.Block()
    v = numbers_of(b, numbers, parametric)
    b.gen_kw = pyo.Var(range(horizon.periods), bounds=lambda b, t: (0, v.available_kw[t]))
    return b


def add_wind(top: pyo.Block, horizon: Horizon, numbers: Numbers,
             parametric: bool = False) -> pyo.Block:
    """Wind output, at most the available power (curtailment allowed, RECON)."""
    top.wind = b = pyo.Block()
    v = numbers_of(b, numbers, parametric)
    b.gen_kw = pyo.Var(range(horizon.periods), bounds=lambda b, t: (0, v.available_kw[t]))
    return b


def flexible_numbers(loads: Sequence[FlexibleLoad]) -> Numbers:
    """Flexible loads' numbers: each one's rating and duration (its window is structure:
    ``flexible_windows``)."""
    return {"rating_kw": np.array([f.rating_kw for f in loads], float),
            "duration_periods": np.array([f.duration_periods for f in loads], float)}


def flexible_windows(horizon: Horizon, loads: Sequence[FlexibleLoad]) -> tuple[range, ...]:
    """Each flexible load's window [α_f, β_f) within the horizon."""
    return tuple(range(max(f.window_start, 0), min(f.window_end, horizon.periods))
                 for f in loads)


def add_flexible_loads(top: pyo.Block, horizon: Horizon, numbers: Numbers,
                       windows: tuple[range, ...], parametric: bool = False) -> pyo.Block:
    """Shiftable appliances: load f is on (``on[f, t] = 1``, drawing its rating) for
    exactly d_f periods of its window [α_f, β_f), and off outside it (RECON, §E).

    Σ_{t ∈ [α_f, β_f)} on[f, t] = d_f, kw_t = Σ_f rating_f · on[f, t].
    """
    T, F = range(horizon.periods), range(len(windows))
    top.flexible = b = pyo.Block()
    v = numbers_of(b, numbers, parametric)
    b.on = pyo.Var(F, T, domain=pyo.Binary,
                   bounds=lambda b, f, t: (0, 1 if t in windows[f] else 0))
    b.duration = pyo.Constraint(
        F, rule=lambda b, f: sum(b.on[f, t] for t in windows[f]) == v.duration_periods[f]
    )
    b.kw = pyo.Expression(T, rule=lambda b, t: sum(v.rating_kw[f] * b.on[f, t] for f in F))
    _register(top, integers=[b.on])
    return b


def grid_numbers(horizon: Horizon, buy_max_kw: float, sell_max_kw: float,
                 p2v_max_kw: float) -> Numbers:
    """A prosumer's connection: its limits (the coordinator's P2V limit is the agent's
    own number ``p2v_limit_kw``: ``p2v_limit_numbers``)."""
    return {"buy_max_kw": buy_max_kw, "sell_max_kw": sell_max_kw, "p2v_max_kw": p2v_max_kw}


def p2v_limit_numbers(horizon: Horizon, p2v_max_kw: float) -> Numbers:
    """The coordinator's per-period P2V limit L_t (kW), at first the most the agent may
    trade; it lives on the agent's own block as the mutable parameter ``p2v_limit_kw``."""
    return {"p2v_limit_kw": np.full(horizon.periods, float(p2v_max_kw))}


def add_grid_connection(top: pyo.Block, horizon: Horizon, numbers: Numbers,
                        parametric: bool = False) -> pyo.Block:
    """Retail purchase, feed-in and P2V sale of a prosumer (Eqs 3–7).

    buy ≤ Bmax·xb, sell ≤ Smax·xs, p2v ≤ L_t·xp, xb + xs ≤ 1, xb + xp ≤ 1. The P2V limit
    L_t is the mutable parameter ``top.p2v_limit_kw`` (``p2v_limit_numbers``).
    """
    T = range(horizon.periods)
    limit = top.p2v_limit_kw
    top.grid = b = pyo.Block()
    v = numbers_of(b, numbers, parametric)
    b.buy_kw = pyo.Var(T, bounds=(0, v.buy_max_kw))
    b.sell_kw = pyo.Var(T, bounds=(0, v.sell_max_kw))
    b.p2v_kw = pyo.Var(T, bounds=(0, v.p2v_max_kw))
    b.x_buy, b.x_sell, b.x_p2v = (pyo.Var(T, domain=pyo.Binary) for _ in range(3))
    b.buy_on = pyo.Constraint(T, rule=lambda b, t: b.buy_kw[t] <= v.buy_max_kw * b.x_buy[t])
    b.sell_on = pyo.Constraint(T, rule=lambda b, t: b.sell_kw[t] <= v.sell_max_kw * b.x_sell[t])
    b.p2v_on = pyo.Constraint(T, rule=lambda b, t: b.p2v_kw[t] <= limit[t] * b.x_p2v[t])
    b.buy_or_sell = pyo.Constraint(T, rule=lambda b, t: b.x_buy[t] + b.x_sell[t] <= 1)
    b.buy_or_p2v = pyo.Constraint(T, rule=lambda b, t: b.x_buy[t] + b.x_p2v[t] <= 1)
    _register(
        top,
        [(b.x_buy, b.buy_kw), (b.x_sell, b.sell_kw), (b.x_p2v, b.p2v_kw)],
        [(b.x_buy, b.x_sell), (b.x_buy, b.x_p2v)],
    )
    return b


def retail_numbers(horizon: Horizon, buy_max_kw: float, sell_max_kw: float,
                   cdl_kw: np.ndarray, pil_kw: np.ndarray | None = None) -> Numbers:
    """A building's connection: its limits and its consumer demand limit per period."""
    return {"buy_max_kw": buy_max_kw, "sell_max_kw": sell_max_kw,
            "cdl_kw": np.asarray(cdl_kw, float)}


def export_limit_numbers(horizon: Horizon, sell_max_kw: float,
                         pil_kw: np.ndarray | None = None) -> Numbers:
    """The export limit S_t a building plans under, at first min(Smax, PIL_t) (Smax
    without a PIL); it lives on the agent's own block as the mutable parameter
    ``export_limit_kw``."""
    cap = np.full(horizon.periods, float(sell_max_kw))
    if pil_kw is not None:
        cap = np.minimum(cap, np.asarray(pil_kw, float)[:horizon.periods])
    return {"export_limit_kw": cap}


def add_retail_connection(top: pyo.Block, horizon: Horizon, numbers: Numbers,
                          parametric: bool = False) -> pyo.Block:
    """Retail purchase and feed-in of a building, with its demand and injection limits.

    buy ≤ Bmax·xb, sell ≤ S_t·xs with S_t = min(Smax, PIL_t) (Smax without a PIL),
    xb + xs ≤ 1; above_cdl_t ≥ buy_t − CDL_t, above_cdl_t ≥ 0 (no binary: the CDL
    penalty is convex, so the minimisation keeps above_cdl at its bound). S_t is a
    mutable parameter ``top.export_limit_kw`` (``export_limit_numbers``; a market names
    the limit to plan under).
    """
    T = range(horizon.periods)
    export = top.export_limit_kw
    top.grid = b = pyo.Block()
    v = numbers_of(b, numbers, parametric)
    b.buy_kw = pyo.Var(T, bounds=(0, v.buy_max_kw))
    b.sell_kw = pyo.Var(T, bounds=(0, v.sell_max_kw))
    b.above_cdl_kw = pyo.Var(T, bounds=(0, None))
    b.x_buy, b.x_sell = (pyo.Var(T, domain=pyo.Binary) for _ in range(2))
    b.buy_on = pyo.Constraint(T, rule=lambda b, t: b.buy_kw[t] <= v.buy_max_kw * b.x_buy[t])
    b.sell_on = pyo.Constraint(T, rule=lambda b, t: b.sell_kw[t] <= export[t] * b.x_sell[t])
    b.buy_or_sell = pyo.Constraint(T, rule=lambda b, t: b.x_buy[t] + b.x_sell[t] <= 1)
    b.above_cdl = pyo.Constraint(
        T, rule=lambda b, t: b.above_cdl_kw[t] >= b.buy_kw[t] - v.cdl_kw[t]
    )
    _register(top, [(b.x_buy, b.buy_kw), (b.x_sell, b.sell_kw)], [(b.x_buy, b.x_sell)])
    return b


def charger_numbers(horizon: Horizon, away: np.ndarray, buy_max_kw: float, p2v_max_kw: float,
                    sell_max_kw: float = 0.0) -> Numbers:
    """An EV charger's numbers: what it may buy and take by P2V in each period (nothing on
    a trip) and, for a V2G EV, what it may export in each period (the coordinator's P2V
    limit: ``p2v_limit_numbers``)."""
    plugged = plugged_mask(horizon, away)
    out = {"buy_max_kw": buy_max_kw, "buy_cap_kw": buy_max_kw * plugged,
           "p2v_cap_kw": p2v_max_kw * plugged}
    if sell_max_kw > 0:
        out["sell_max_kw"] = sell_max_kw
        out["sell_cap_kw"] = sell_max_kw * plugged
    return out


def plugged_mask(horizon: Horizon, away: np.ndarray) -> np.ndarray:
    """1.0 in the periods an EV is plugged in, 0.0 on a trip."""
    return np.array([0.0 if a else 1.0 for a in away[:horizon.periods]])


def add_ev_charger(top: pyo.Block, horizon: Horizon, numbers: Numbers,
                   p2p_in=lambda t: 0, parametric: bool = False) -> pyo.Block:
    """Charging from retail and P2V while plugged (Eqs 25, 28, 29).

    buy_t + p2v_t (+ p2p_t) = ch_t, buy_t ≤ Bmax·A_t, p2v_t ≤ L_t, p2v_t ≤ Pmax·A_t, with
    A_t = 0 on a trip; ``p2p_in(t)``: net peer-to-peer purchase where the EV trades P2P.
    The battery block must already exist on ``top``.

    With ``sell_max_kw`` among the numbers (V2G; the battery block then has ``dis_kw``,
    bounded to 0 on a trip) the EV also exports: buy_t + p2v_t (+ p2p_t) = ch_t − dis_t +
    sell_t, sell_t ≤ Smax·A_t·xs_t, buy_t ≤ Bmax·xb_t, p2v_t ≤ L_t·xp_t, xb + xs ≤ 1,
    xp + xs ≤ 1 (it never buys to resell in the same period).
    """
    T = range(horizon.periods)
    limit = top.p2v_limit_kw
    bat = top.battery
    top.grid = b = pyo.Block()
    v = numbers_of(b, numbers, parametric)
    b.buy_kw = pyo.Var(T, bounds=(0, v.buy_max_kw))
    b.p2v_kw = pyo.Var(T, bounds=lambda b, t: (0, v.p2v_cap_kw[t]))
    b.buy_plugged = pyo.Constraint(T, rule=lambda b, t: b.buy_kw[t] <= v.buy_cap_kw[t])
    b.p2v_plugged = pyo.Constraint(T, rule=lambda b, t: b.p2v_kw[t] <= limit[t])
    v2g = "sell_max_kw" in numbers
    if v2g:
        _add_ev_export(top, b, T, v, limit)

    def feeds(b, t):
        supply = b.buy_kw[t] + b.p2v_kw[t] + p2p_in(t)
        if v2g:
            return supply == bat.ch_kw[t] - bat.dis_kw[t] + b.sell_kw[t]
        return supply == bat.ch_kw[t]

    b.feeds = pyo.Constraint(T, rule=feeds)
    return b


def _add_ev_export(top: pyo.Block, b: pyo.Block, T: range, v: SimpleNamespace,
                   limit: pyo.Param) -> None:
    """A V2G EV's feed-in and purchase/sale exclusion (its battery discharges only while
    plugged: ``battery_numbers``' ``discharge_kw``)."""
    b.sell_kw = pyo.Var(T, bounds=(0, v.sell_max_kw))
    b.x_buy, b.x_sell, b.x_p2v = (pyo.Var(T, domain=pyo.Binary) for _ in range(3))
    b.buy_on = pyo.Constraint(T, rule=lambda b, t: b.buy_kw[t] <= v.buy_max_kw * b.x_buy[t])
    b.p2v_on = pyo.Constraint(T, rule=lambda b, t: b.p2v_kw[t] <= limit[t] * b.x_p2v[t])
    b.sell_on = pyo.Constraint(
        T, rule=lambda b, t: b.sell_kw[t] <= v.sell_cap_kw[t] * b.x_sell[t])
    b.buy_or_sell = pyo.Constraint(T, rule=lambda b, t: b.x_buy[t] + b.x_sell[t] <= 1)
    b.p2v_or_sell = pyo.Constraint(T, rule=lambda b, t: b.x_p2v[t] + b.x_sell[t] <= 1)
    _register(
        top,
        [(b.x_buy, b.buy_kw), (b.x_sell, b.sell_kw), (b.x_p2v, b.p2v_kw)],
        [(b.x_buy, b.x_sell), (b.x_p2v, b.x_sell)],
    )


def price_numbers(tariff, cdl_factor: float = 1.0) -> Numbers:
    """The prices an agent plans with at first: its tariff's (€/kWh per period)."""
    buy = np.asarray(tariff.buy_eur_per_kwh, float)
    return {"buy": buy, "sell": np.asarray(tariff.sell_eur_per_kwh, float),
            "above_cdl": (cdl_factor - 1.0) * buy}


def add_prices(top: pyo.Block, numbers: Numbers) -> pyo.Block:
    """The prices an agent plans with, mutable per period (€/kWh): ``buy``, ``sell`` and
    ``above_cdl`` (the extra price of import above a consumer demand limit, (κ − 1) × buy).
    A market that announces its own prices rewrites them (objective coefficients only)."""
    top.prices = b = pyo.Block()
    numbers_of(b, numbers, True)
    return b


def epigraph_numbers(lo_kw: float, hi_kw: float, a: float) -> Numbers:
    """The tangents of ½·a·x² on [lo, hi] (``add_epigraph``): slopes a·x_k and intercepts
    −½·a·x_k² at K + 1 evenly spaced points (K = ``EPIGRAPH_SEGMENTS``; one point where
    lo = hi)."""
    K = EPIGRAPH_SEGMENTS if hi_kw > lo_kw else 0
    points = [lo_kw + k * (hi_kw - lo_kw) / max(K, 1) for k in range(K + 1)]
    return {"slope": np.array([a * x for x in points]),
            "intercept": np.array([-(0.5 * a * x ** 2) for x in points]), "a": a}


def add_epigraph(top: pyo.Block, b: pyo.Block, name: str, x: pyo.Var, numbers: Numbers,
                 parametric: bool = False):
    """z_t ≥ ½·a·x_t² for x_t ∈ [lo, hi] as K + 1 tangents (``epigraph_numbers``, among the
    producer's ``numbers`` as ``<name>_slope`` ...) at x_k = lo + k·Δ, Δ = (hi − lo)/K (a
    MILP solver takes no quadratic cost): z_t ≥ a·x_k·x_t − ½·a·x_k². At its optimum z_t
    is the largest tangent: exact at the x_k and below ½·a·x_t² between them, by at most
    a·Δ²/8 (midway between two of them). Adds ``b.<name>`` (€/h per period) and registers
    (x, z, a) on ``top`` (``quadratic_terms``; a is a number of the epigraph's, so a
    parametric model has it as a parameter). Numbers without tangents (a = 0): z = 0."""
    T = sorted(x.keys())
    if f"{name}_slope" not in numbers:
        return {t: 0 for t in T}
    v = numbers_of(b, {k: n for k, n in numbers.items() if k.startswith(f"{name}_")},
                   parametric)
    slope, intercept = getattr(v, f"{name}_slope"), getattr(v, f"{name}_intercept")
    z = pyo.Var(T)
    b.add_component(name, z)
    b.add_component(f"{name}_tangent", pyo.Constraint(
        T, range(len(numbers[f"{name}_slope"])),
        rule=lambda b, t, k: z[t] >= slope[k] * x[t] + intercept[k]))
    _register(top, quadratic=[(x, z, getattr(v, f"{name}_a"))])
    return z


def _tangent_numbers(name: str, lo: float, hi: float, a: float) -> Numbers:
    """``epigraph_numbers`` named for the epigraph ``name`` (none for a = 0)."""
    return {f"{name}_{k}": n for k, n in epigraph_numbers(lo, hi, a).items()} if a > 0 else {}


def _own(numbers: Numbers) -> Numbers:
    """A producer's numbers without its epigraphs' (``add_epigraph`` takes those)."""
    return {k: x for k, x in numbers.items() if not k.startswith("quad")}


def generator_numbers(spec: GeneratorSpec) -> Numbers:
    """A generator's numbers: its range and cost coefficients, and its tangents (a > 0)."""
    return {"p_min_kw": spec.p_min_kw, "p_max_kw": spec.p_max_kw,
            "b_eur_per_kwh": spec.b_eur_per_kwh, "c_eur_per_h": spec.c_eur_per_h,
            **_tangent_numbers("quad_eur_per_h", spec.p_min_kw, spec.p_max_kw,
                               spec.a_eur_per_kw2h)}


def add_generator(top: pyo.Block, horizon: Horizon, numbers: Numbers,
                  parametric: bool = False) -> pyo.Block:
    """A generator's output p_t ∈ [p_min, p_max] (kW) and its cost
    ``cost_eur`` = Σ_t Δt (z_t + b·p_t + c), z_t ≥ ½·a·p_t² by tangents (``add_epigraph``;
    none for a = 0); ``numbers``: ``generator_numbers``."""
    T, h = range(horizon.periods), horizon.period_h
    top.generator = b = pyo.Block()
    v = numbers_of(b, _own(numbers), parametric)
    b.p_kw = pyo.Var(T, bounds=(v.p_min_kw, v.p_max_kw))
    z = add_epigraph(top, b, "quad_eur_per_h", b.p_kw, numbers, parametric)
    b.cost_eur = pyo.Expression(expr=sum(
        h * (z[t] + v.b_eur_per_kwh * b.p_kw[t] + v.c_eur_per_h) for t in T))
    return b


def chp_numbers(spec: ChpSpec) -> Numbers:
    """A CHP unit's numbers: its ranges, its polygon's half-planes cp·p + ch·h ≤ rhs, its
    cost coefficients and its tangents (a_p, a_h > 0)."""
    (p_lo, p_hi), (h_lo, h_hi) = spec.power_range_kw(), spec.heat_range_kw()
    edges = np.array(polygon_halfplanes(spec.vertices), float).reshape(-1, 3)
    return {"p_lo_kw": p_lo, "p_hi_kw": p_hi, "h_lo_kw": h_lo, "h_hi_kw": h_hi,
            "edge_p": edges[:, 0], "edge_h": edges[:, 1], "edge_rhs": edges[:, 2],
            "b_p": spec.b_p, "b_h": spec.b_h, "c": spec.c,
            **_tangent_numbers("quad_p_eur_per_h", p_lo, p_hi, spec.a_p),
            **_tangent_numbers("quad_h_eur_per_h", h_lo, h_hi, spec.a_h)}


def add_chp(top: pyo.Block, horizon: Horizon, numbers: Numbers,
            parametric: bool = False) -> pyo.Block:
    """A CHP unit's power p_t (kW_el) and heat h_t (kW_th) inside its polygon, one
    half-plane cp·p_t + ch·h_t ≤ rhs per edge (``polygon_halfplanes``; Eqs 12.24–12.26),
    and its cost ``cost_eur`` = Σ_t Δt (zp_t + b_p·p_t + zh_t + b_h·h_t + c) with
    zp_t ≥ ½·a_p·p_t², zh_t ≥ ½·a_h·h_t² by tangents (``add_epigraph``); ``numbers``:
    ``chp_numbers``."""
    T, dt = range(horizon.periods), horizon.period_h
    top.chp = b = pyo.Block()
    v = numbers_of(b, _own(numbers), parametric)
    b.p_kw = pyo.Var(T, bounds=(v.p_lo_kw, v.p_hi_kw))
    b.h_kw = pyo.Var(T, bounds=(v.h_lo_kw, v.h_hi_kw))
    b.polygon = pyo.Constraint(T, range(len(numbers["edge_rhs"])), rule=lambda b, t, e:
                               v.edge_p[e] * b.p_kw[t] + v.edge_h[e] * b.h_kw[t]
                               <= v.edge_rhs[e])
    zp = add_epigraph(top, b, "quad_p_eur_per_h", b.p_kw, numbers, parametric)
    zh = add_epigraph(top, b, "quad_h_eur_per_h", b.h_kw, numbers, parametric)
    b.cost_eur = pyo.Expression(expr=sum(
        dt * (zp[t] + v.b_p * b.p_kw[t] + zh[t] + v.b_h * b.h_kw[t] + v.c)
        for t in T))
    return b


def add_heat_balance(top: pyo.Block, horizon: Horizon, numbers: Numbers,
                     parametric: bool = False) -> pyo.Block:
    """The heat balance chp_h_t + heat_in_t = demand_t (kW_th; no CHP: chp_h_t = 0;
    ``numbers``: ``heat_demand_kw``). ``top.heat_in_kw`` is the net P2P heat purchase
    (− a sale), bounded to (0, 0): closed until a heat market opens it, so heat demand no
    CHP meets is infeasible until then. A CHP block, if any, must already exist on
    ``top``."""
    T = range(horizon.periods)
    chp = top.component("chp")
    v = numbers_of(top, numbers, parametric)
    top.heat_in_kw = pyo.Var(T, bounds=(0, 0))
    top.heat_balance = pyo.Constraint(T, rule=lambda top, t: (
        chp.h_kw[t] if chp is not None else 0) + top.heat_in_kw[t] == v.heat_demand_kw[t])
    return top.heat_balance
