"""Agent models on tiny hand-computed cases (Δt = 1 h so kW and kWh coincide)."""

import numpy as np
import pytest

from lemgrid.agents.data import BatterySpec, EVData, Horizon, ProsumerData, Tariff
from lemgrid.agents.model import AgentModel
from lemgrid.agents.solver import AgentInfeasible


def prosumer(limit=(0.0, 1.0, 0.0)):
    """3 periods: load 2, 1, 3 kW; PV 0, 4, 0 kW; retail 0.1, 0.2, 0.3 €/kWh; feed-in 0.05;
    P2V 0.08; fixed 1 €; battery 2 kWh, ±2 kW, lossless, empty at start and end."""
    tariff = Tariff(np.array([0.1, 0.2, 0.3]), 0.05, 0.08, 1.0)
    battery = BatterySpec(2.0, 0.0, 2.0, 2.0, 1.0, 1.0, 0.0, 0.0)
    d = ProsumerData("p1", Horizon(3, 1.0), tariff, np.array([2.0, 1.0, 3.0]),
                     np.array([0.0, 4.0, 0.0]), battery, buy_max_kw=5.0, sell_max_kw=2.0,
                     p2v_max_kw=5.0)
    m = AgentModel(d, mip_rel_gap=0.0)
    m.set_p2v_limit(np.array(limit))
    return m


def test_prosumer_hand_computed():
    """Period 0: buy 2 (0.2 €). Period 1: surplus 3 kWh = charge 2 (worth 0.3 €/kWh in
    period 2) + P2V 1 at its limit (−0.08 €). Period 2: discharge 2, buy 1 (0.3 €).
    Charging from retail in period 0 instead would cost 0.2 € more and earn only
    0.05 €/kWh feed-in for the displaced PV. Cost = 0.2 − 0.08 + 0.3 + 1 = 1.42 €."""
    s = prosumer().solve()
    assert s.objective_eur == pytest.approx(1.42, abs=1e-9)
    assert s.flows_kw["p2v_kw"] == pytest.approx([0, 1, 0], abs=1e-9)
    assert s.flows_kw["ch_kw"] == pytest.approx([0, 2, 0], abs=1e-9)
    assert s.flows_kw["buy_kw"] == pytest.approx([2, 0, 1], abs=1e-9)


def test_prosumer_resolve_after_limit_change():
    """Same day with the P2V limit 0: the 1 kWh goes to feed-in at 0.05 €:
    1.42 + 0.08 − 0.05 = 1.45 €. The model is re-solved, not rebuilt."""
    m = prosumer()
    m.solve()
    m.set_p2v_limit(0.0)
    assert m.solve().objective_eur == pytest.approx(1.45, abs=1e-9)
    assert m.solve(lp_first=False).objective_eur == pytest.approx(1.45, abs=1e-9)


def test_binaries_forbid_buying_to_resell():
    """1 period, nothing to sell or consume, retail 0.05 < P2V 0.08 €/kWh, buy ≤ 4, P2V ≤ 2.
    The LP relaxation (xb = xp = 1/2 … 2/3) would buy 4/3 kWh and resell it for
    0.04 € profit; the MILP forbids buy and P2V together (Eq. 7): optimum 0 €."""
    d = ProsumerData("p2", Horizon(1, 1.0), Tariff(np.array([0.05]), 0.0, 0.08, 0.0),
                     np.zeros(1), np.zeros(1), None, buy_max_kw=4.0, sell_max_kw=0.0,
                     p2v_max_kw=2.0)
    s = AgentModel(d, mip_rel_gap=0.0).solve()
    assert s.objective_eur == pytest.approx(0.0, abs=1e-9)
    assert s.method == "milp"


def ev(trip_kwh=4.0, e0=2.0):
    """4 periods: retail 0.1, 0.3, 0.3, 0.2 €/kWh; P2V 0.08 €/kWh with limits 0, 1, 0, 2 kW;
    fixed 0.5 €; battery 10 kWh, min 1 kWh, charger 3 kW, η 0.9; starts and must end with
    2 kWh; on the road in period 2, using ``trip_kwh``."""
    tariff = Tariff(np.array([0.1, 0.3, 0.3, 0.2]), 0.0, 0.08, 0.5)
    battery = BatterySpec(10.0, 1.0, 3.0, 0.0, 0.9, 1.0, e0, 2.0)
    away = np.array([False, False, True, False])
    d = EVData("ev07", Horizon(4, 1.0), tariff, away, np.where(away, trip_kwh, 0.0), battery,
               buy_max_kw=5.0, p2v_max_kw=3.0)
    m = AgentModel(d, mip_rel_gap=0.0)
    m.set_p2v_limit(np.array([0.0, 1.0, 0.0, 2.0]))
    return m


def test_ev_hand_computed():
    """The trip needs E ≥ 1 + 4 = 5 kWh before period 2: 3 kWh more. P2V 1 kW in period 1
    stores 0.9 kWh for 0.08 €; the other 2.1 kWh come from retail in period 0:
    2.1/0.9 kW × 0.1 = 7/30 €. Ending at 2 kWh from 1 kWh needs 1/0.9 kW in period 3,
    all P2V: 4/45 €. Cost = 0.5 + 7/30 + 2/25 + 4/45 = 0.5 + 181/450 €."""
    s = ev().solve()
    assert s.objective_eur == pytest.approx(0.5 + 181 / 450, abs=1e-9)
    assert s.flows_kw["buy_kw"] == pytest.approx([2.1 / 0.9, 0, 0, 0], abs=1e-9)
    assert s.flows_kw["p2v_kw"] == pytest.approx([0, 1, 0, 1 / 0.9], abs=1e-9)
    assert s.soc_kwh == pytest.approx([2 + 2.1, 5, 1, 2], abs=1e-9)


def test_infeasible_ev_names_agent_and_reason():
    """A 12 kWh trip needs 13 kWh on board (with the 1 kWh floor); two periods of 3 kW at
    η 0.9 add at most 5.4 kWh to the 2 kWh: 7.4 kWh."""
    with pytest.raises(AgentInfeasible,
                       match=r"EV ev07: trips need 13\.0 kWh, battery can hold at most "
                             r"7\.4 kWh before 02:00"):
        ev(trip_kwh=12.0).solve()


def test_infeasible_prosumer_names_period():
    d = ProsumerData("p9", Horizon(2, 0.5), Tariff(np.array([0.1, 0.1]), 0.0, 0.0, 0.0),
                     np.array([1.0, 9.0]), np.zeros(2), None, buy_max_kw=6.9,
                     sell_max_kw=3.45, p2v_max_kw=0.0)
    with pytest.raises(AgentInfeasible, match=r"prosumer p9: load 9\.0 kW at 00:30 exceeds"):
        AgentModel(d).solve()
