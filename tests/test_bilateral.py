"""The bilateral market of Vahidinasab et al. (coordinator/mechanisms/bilateral.py,
docs/mechanisms/bilateral.md) on
scenarios/vahidinasab.yaml: 11 consumers and 8 producers on the 11-bus feeder, one period.

Second methods: the centralized QP of the same peers (scenarios/run/central_bilateral.py,
HiGHS) for the market's optimum, the path penalties recomputed from the feeder
(grid/paths.py), the producer totals of the chapter's Table 12.1 (which the scenario's
costs are built to give at the grid's price), and the AC power flow of the grid simulator
for losses and congestion."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lemgrid.coordinator.mechanisms.bilateral import (
    HEAT,
    POWER,
    BilateralParams,
    BilateralState,
    Book,
    clear_bilateral,
    cleared_trades,
    net_trades,
    settle_bilateral,
)
from lemgrid.grid.networks import load_network
from lemgrid.grid.paths import feeder_paths, path_penalties
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.run import central_bilateral
from lemgrid.scenarios.run.central_bilateral import solve_central_bilateral
from lemgrid.scenarios.run.inprocess import make_agents
from lemgrid.scenarios.run.market import mechanism_setup
from lemgrid.scenarios.run.network import place_agents
from lemgrid.scenarios.run.world import run_scenario
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS, run_session

VAH = SCENARIOS / "vahidinasab.yaml"
TABLE_12_1 = {"G12": 790.0, "G13": 811.0, "G14": 851.0, "G15": 750.0}  # kW, basic P2P
L6, L9 = 5, 8  # pandapower line indices of the chapter's congested lines


def _run(tmp_path, name, *sets):
    s = load_scenario(VAH, ["runtime.kind=inprocess", *sets])
    summary = run_scenario(s, tmp_path / name)
    summary["out"] = tmp_path / name
    agents = pd.read_parquet(tmp_path / name / "agents.parquet").set_index("agent")
    lines = pd.read_parquet(tmp_path / name / "grid_line.parquet").set_index("line")
    return summary, agents, lines


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vahidinasab")
    return {name: _run(tmp, name, *sets) for name, sets in (
        ("pool", ["market.pool=true"]), ("basic", []), ("alpha5", ["market.loss_price=0.005"]),
        ("alpha35", ["market.loss_price=0.035"]), ("beta5", ["market.congestion_price=0.005"]))}


def test_basic_case_gives_table_12_1_producer_totals(runs):
    """At the grid's price 0.10 €/kWh each of G12-G15 produces where a·P + b = 0.10, the
    published totals; G16-G19 offer at the grid's price and sell (next to) nothing; the
    main grid supplies the rest, 5552 − 3202 = 2350 kW."""
    summary, agents, lines = runs["basic"]
    assert summary["market"]["converged"]
    for name, kw in TABLE_12_1.items():
        assert agents.loc[name, "gen_kw"] == pytest.approx(kw, abs=0.1)
    idle = agents.loc[["G16", "G17", "G18", "G19"], "gen_kw"]
    assert (idle < 1.0).all()  # at the tolerance of a producer whose cost equals the price
    assert 5552 - agents["gen_kw"].sum() == pytest.approx(2350, abs=2.5)
    over = set(lines.index[lines["loading_pct"] > 100])
    assert over == {L6, L9}  # the chapter's L6 and L9
    # G12's running cost over the day's one 24 h period: 24·(½·a·g² + b·g), a and b of the
    # scenario, g its output; a consumer pays the grid's price for all of its energy (the
    # pair prices converge to it): C1 420 kW × 24 h × 0.10 €/kWh
    g = agents.loc["G12", "gen_kw"]
    assert agents.loc["G12", "fuel_eur"] == pytest.approx(
        24 * (0.5 * 7.5949367e-05 * g * g + 0.040 * g), rel=1e-9)
    assert agents.loc["C1", "cost_eur"] == pytest.approx(420 * 24 * 0.10, rel=1e-5)
    assert agents.loc["C1", "buy_kw"] + agents.loc["C1", "market_kw"] == pytest.approx(420)


def test_losses_fall_from_the_pool_to_the_loss_penalties(runs):
    """Table 12.2's ordering (pool > basic P2P > α = 5 ≥ α = 35), our AC losses: the pool
    buys everything from the main grid at bus 0, the penalties move purchases to nearby
    producers."""
    losses = {k: runs[k][0]["grid"]["losses_kwh"] / 24 for k in ("pool", "basic", "alpha5",
                                                                 "alpha35")}
    assert losses["pool"] > losses["basic"] > losses["alpha5"] >= losses["alpha35"]
    pool = runs["pool"][1]
    assert pool["gen_kw"].sum() == pytest.approx(0.0, abs=1e-6)  # the grid the only producer


def test_compare_plots_the_losses_against_alpha(runs, tmp_path):
    """``lemgrid compare --against market.loss_price`` over the α sweep: the points are
    each run's α (its config) and AC losses (its summary), and the figure is written."""
    from lemgrid.scenarios.cli import main
    from lemgrid.scenarios.results.compare import compare_table, sweep_points

    folders = [runs[k][0]["out"] for k in ("basic", "alpha5", "alpha35")]
    csv = tmp_path / "sweep.csv"
    assert main(["compare", *map(str, folders), "--csv", str(csv),
                 "--against", "market.loss_price"]) == 0
    assert (tmp_path / "sweep_network_losses_kwh.png").stat().st_size > 0
    points = sweep_points(folders, compare_table(folders), "market.loss_price",
                          "network_losses_kwh")
    assert points["x"].tolist() == [0.0, 0.005, 0.035]
    assert points["y"].tolist() == pytest.approx(
        [runs[k][0]["grid"]["losses_kwh"] for k in ("basic", "alpha5", "alpha35")], rel=1e-12)


def test_congestion_checks_clear_l6_and_l9(runs):
    """β = 5e-3 €/kWh: the first AC check finds L6 and L9 above 100 %, the market clears
    again with θ on the paths through them, the second check finds none."""
    summary, _agents, lines = runs["beta5"]
    assert summary["market"]["congestion_checks"] == 2
    assert summary["market"]["congested_after_checks"] == []
    assert (lines["loading_pct"] <= 100).all()
    checks = pd.read_parquet(summary["out"] / "bilateral_iterations.parquet").dropna(
        subset=["congestion_check"])
    first = json.loads(checks["congested"].iloc[0])["0"]
    assert [label.split(" at ")[0] for label in first] == [f"line {L6}", f"line {L9}"]
    assert checks["losses_kw"].iloc[0] == pytest.approx(runs["basic"][0]["grid"]["losses_kwh"]
                                                         / 24, rel=1e-3)
    report = (summary["out"] / "report.md").read_text()
    assert "## Bilateral market: congestion checks" in report
    assert (summary["out"] / "figures" / "trades_power.png").is_file()


def _market(sets):
    return _market_at(VAH, sets)


def _market_at(path, sets=()):
    s = load_scenario(path, ["runtime.kind=inprocess", *sets])
    community = build_community(s)
    agents = make_agents(s, community, {}, "commodity_consensus")
    session = run_session(agents, *mechanism_setup(s))
    return s, community, agents, session.state


def test_admm_equals_the_centralized_qp_with_loss_penalties():
    """α = 5e-3 €/kWh/Ω. The penalties the operator sent equal α·R recomputed from the
    feeder; the market's welfare (own costs + each side's penalty on every trade + the
    retail paths' penalties) is the centralized QP's to 1e-4 relative."""
    s, community, agents, state = _market(["market.loss_price=0.005"])
    assert state.converged
    buses = place_agents(s, community)
    net = load_network("feeder11")
    book = state.books[POWER]
    pairs = [(buses[state.peers[n]], buses[state.peers[m]]) for n, m in book.pairs]
    pen, retail = path_penalties(feeder_paths(net), pairs, [buses[p] for p in state.peers], 0,
                                 np.array([0.005]), np.array([0.0]), [set()])
    np.testing.assert_allclose(book.penalty, pen, rtol=1e-12)
    np.testing.assert_allclose(state.retail_penalty, retail, rtol=1e-12)
    central = solve_central_bilateral([agents[p].day_data for p in state.peers],
                                      {POWER: book.pairs}, {POWER: book.penalty},
                                      state.retail_penalty)
    assert _welfare(agents, state) == pytest.approx(central.welfare_eur, rel=1e-4)
    # a QP above ACTIVE_SET_MAX_COLUMNS goes to interior point (Clarabel) at once: the
    # same optimum by a second method
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(central_bilateral, "ACTIVE_SET_MAX_COLUMNS", 0)
        by_ipm = solve_central_bilateral([agents[p].day_data for p in state.peers],
                                         {POWER: book.pairs}, {POWER: book.penalty},
                                         state.retail_penalty)
    assert by_ipm.welfare_eur == pytest.approx(central.welfare_eur, rel=1e-6)
    for i, p in enumerate(state.peers):
        assert agents[p].model.net_kw()[0] == pytest.approx(central.net_kw[p][0], abs=1.0)


def _welfare(agents, state) -> float:
    """The market's welfare: the peers' own costs at their last plans, each side's path
    penalty on every agreed power trade and the retail paths' penalties (€)."""
    dt = state.period_h
    book = state.books[POWER]
    paid = 2 * dt * float(np.sum(book.penalty * np.abs(book.a)))
    for i, p in enumerate(state.peers):
        flows = agents[p].plan.flows_kw
        zero = np.zeros(state.periods)
        paid += dt * float(np.sum(state.retail_penalty[i]
                                  * (flows.get("buy_kw", zero) + flows.get("sell_kw", zero))))
    return sum(agents[p].model.own_cost_eur() for p in state.peers) + paid


HOURLY_TINY = [  # tiny.yaml's day in 24 hours: its peak and EV trips to the hour
    "horizon.periods=24", "horizon.period_minutes=60", 'tariffs.time_of_use.peak_start="08:00"',
    'tariffs.time_of_use.peak_end="22:00"', 'templates.1.trips.first_away="06:00"',
    'templates.1.trips.last_away="23:00"', 'templates.1.trips.peak_times=["08:00", "19:00"]',
    "templates.1.trips.mean_away_periods=4.875", "templates.1.trips.away_periods_total=null"]


def test_prosumers_and_evs_trade_bilaterally_with_loss_penalties():
    """Any community: tiny.yaml's 3 prosumers and 2 EVs (its day in 24 hours, to keep the
    test short: 13 s against 65 s) on the 11-bus feeder with α = 5e-4 €/kWh/Ω converge,
    and their welfare is the centralized QP's to 2e-4 (a second method: one HiGHS QP of
    every peer's model and every pair). At the tolerance 1e-5, 263 rounds, the market is
    2.5e-5 below it (2.09562 € against 2.09568 €); at the default 1e-4, 220 rounds, 3.7e-4
    above (the 96 quarter-hours' day was 1.2e-4 below at 1e-4)."""
    _, _, agents, state = _market_at(SCENARIOS / "tiny.yaml", [
        *HOURLY_TINY, "market.mechanism=bilateral", "market.loss_price=0.0005",
        "market.residual_tolerance=1e-5"])
    assert state.converged
    book = state.books[POWER]
    assert float(np.abs(book.a).sum()) * state.period_h > 1.0  # kWh traded
    central = solve_central_bilateral([agents[p].day_data for p in state.peers],
                                      {POWER: book.pairs}, {POWER: book.penalty},
                                      state.retail_penalty)
    assert _welfare(agents, state) == pytest.approx(central.welfare_eur, rel=2e-4)


def test_path_penalties_need_a_radial_feeder(capsys):
    from lemgrid.scenarios.cli import main
    code = main(["validate", str(VAH), "--set", "grid.network=cigre_lv", "--set",
                 "market.loss_price=0.005", "--set", "grid.buses={}", "--set",
                 "grid.ampacity_ka=null"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [(f"{VAH}: market.loss_price: path penalties need a radial "
                                 "feeder; network cigre_lv has transformers; the "
                                 "branch-flow model covers single-voltage radial feeders")]


HEAT_SCENARIO = """
name: heat_tiny
seed: 1
horizon: {periods: 1, period_minutes: 1440, days: 1}
market: {mechanism: bilateral, residual_tolerance: 1.0e-6}
tariffs:
  time_of_use: {off_peak_eur_per_kwh: 0.10, peak_eur_per_kwh: 0.10, peak_start: "00:00",
                peak_end: "00:00"}
  feed_in_eur_per_kwh: 0.0
grid: {network: feeder11, buses: {C1: 3, C2: 8, H1: 5}}
agents:
  - {kind: building, name: C1, load_kw: [300], heat_demand_kw: [200]}
  - {kind: building, name: C2, load_kw: [100], heat_demand_kw: [100]}
  - {kind: building, name: H1, load_kw: [0], chp: {vertices_kw: [[0, 0], [400, 0], [300, 400],
     [0, 350]], a_p_eur_per_kw2h: 1.0e-4, b_p_eur_per_kwh: 0.03, a_h_eur_per_kw2h: 1.0e-4,
     b_h_eur_per_kwh: 0.01}}
"""


def test_heat_and_power_from_a_chp_unit_by_hand(tmp_path):
    """Two buildings need 300 kW_th of heat, which only H1's CHP unit makes: h = 300. Its
    power's marginal cost 1e-4·p + 0.03 stays below the grid's 0.10 up to p = 700, but the
    polygon's edge from (400, 0) to (300, 400) caps p at 400 − h/4 = 325 kW. The main grid
    supplies the other 400 − 325 = 75 kW. Welfare over the 24 h period: 75·0.10·24 = 180 €
    plus 24·(½·1e-4·325² + 0.03·325 + ½·1e-4·300² + 0.01·300) = 540.75 €: 720.75 €. The
    market (power and heat trades, ADMM) reaches it to 1e-4, as does the centralized QP."""
    path = tmp_path / "heat_tiny.yaml"
    path.write_text(HEAT_SCENARIO)
    _, _, agents, state = _market_at(path)
    assert state.converged
    heat = state.books["heat"]
    assert sorted(np.abs(heat.a).ravel()) == pytest.approx([100.0, 200.0], abs=0.05)
    chp = agents["H1"].plan.flows_kw
    assert chp["chp_kw"][0] == pytest.approx(325.0, abs=0.05)
    assert chp["chp_heat_kw"][0] == pytest.approx(300.0, abs=0.05)
    own = sum(agents[p].model.own_cost_eur() for p in state.peers)
    assert own == pytest.approx(720.75, rel=1e-4)
    central = solve_central_bilateral([agents[p].day_data for p in state.peers],
                                      {k: b.pairs for k, b in state.books.items()},
                                      {k: b.penalty for k, b in state.books.items()},
                                      state.retail_penalty)
    assert central.welfare_eur == pytest.approx(720.75, rel=1e-9)
    # no penalty tells the pairs apart: one balance row per period and connected group of
    # peers stands for the pairs' columns; with the pairs' columns (split) the same optimum
    assert not central.trades_kw
    split = solve_central_bilateral([agents[p].day_data for p in state.peers],
                                    {k: b.pairs for k, b in state.books.items()},
                                    {k: b.penalty for k, b in state.books.items()},
                                    state.retail_penalty, split=True)
    assert split.welfare_eur == pytest.approx(720.75, rel=1e-9)
    assert sorted(np.abs(split.trades_kw["heat"]).ravel()) == pytest.approx([100.0, 200.0],
                                                                            abs=1e-6)


def test_heat_variant_meets_table_12_4_heat_demands():
    """vahidinasab_heat.yaml: the consumers' heat demands are the column sums of the
    chapter's Table 12.4 (Σ 2187 kW_th), met only by CHP12-CHP15; every consumer buys its
    demand, the CHP units sell 2187 kW_th between them, and the market's welfare equals the
    centralized QP's to 1e-4."""
    _, _, agents, state = _market_at(SCENARIOS / "vahidinasab_heat.yaml")
    assert state.converged
    demand = {"C1": 210, "C2": 200, "C3": 170, "C4": 150, "C5": 159, "C6": 190, "C7": 110,
              "C8": 240, "C9": 149, "C10": 299, "C11": 310}
    for name, kw in demand.items():
        assert agents[name].plan.flows_kw["heat_in_kw"][0] == pytest.approx(kw, abs=0.05)
    made = sum(agents[g].plan.flows_kw["chp_heat_kw"][0] for g in ("G12", "G13", "G14", "G15"))
    assert made == pytest.approx(2187, abs=0.1)
    own = sum(agents[p].model.own_cost_eur() for p in state.peers)
    central = solve_central_bilateral([agents[p].day_data for p in state.peers],
                                      {k: b.pairs for k, b in state.books.items()},
                                      {k: b.penalty for k, b in state.books.items()},
                                      state.retail_penalty)
    assert own == pytest.approx(central.welfare_eur, rel=1e-4)
    for key, a in cleared_trades(state).items():  # netted: nobody buys and sells (heat too)
        pairs = state.books[key].pairs
        assert not _buying_and_selling(pairs, a), key


def test_each_run_states_its_gap_to_the_centralized_optimum(runs):
    """Every run's summary has the market's welfare at its last round and the centralized
    QP's on the same pairs and loss penalties (``central_bilateral_days``); converged at
    the default tolerance (scaled residuals ≤ 1e-4), they agree to 1e-4 relative. With
    congestion penalties (β) the checks' θ are the market's own: no counterpart."""
    for name in ("pool", "basic", "alpha5", "alpha35"):
        market = runs[name][0]["market"]
        assert market["converged"]
        assert market["objective_eur"] == pytest.approx(market["centralized_eur"], rel=1e-4)
        assert abs(market["gap_to_centralized_pct"]) <= 1e-2
    assert runs["beta5"][0]["market"]["centralized_eur"] is None


def test_the_recorded_welfare_is_the_markets_own():
    """α = 5e-3: the welfare the coordinator's last round recorded (planned own costs +
    ``penalties_eur``, retail energy as |net import − P2P purchase|) equals ``_welfare``
    (retail energy from each peer's planned buy and sell, the agreed trades' penalties)."""
    _s, _c, agents, state = _market(["market.loss_price=0.005"])
    last = [r for r in state.records if "penalties_eur" in r.scalars][-1]
    own = sum(agents[p].model.own_cost_eur() for p in state.peers)
    assert own + last.scalars["penalties_eur"] == pytest.approx(_welfare(agents, state),
                                                                rel=1e-9)


def test_over_relaxation_reaches_the_same_optimum():
    """``market.relaxation`` 1.8 (Boyd et al. 2011, §3.4.3) on the α = 5e-3 day: it
    converges (411 rounds against plain ADMM's 492 when measured) to the centralized QP's
    welfare to 1e-4, as plain ADMM does."""
    _s, _c, agents, state = _market(["market.loss_price=0.005", "market.relaxation=1.8"])
    assert state.converged
    book = state.books[POWER]
    central = solve_central_bilateral([agents[p].day_data for p in state.peers],
                                      {POWER: book.pairs}, {POWER: book.penalty},
                                      state.retail_penalty)
    assert _welfare(agents, state) == pytest.approx(central.welfare_eur, rel=1e-4)


def _buying_and_selling(pairs: np.ndarray, a: np.ndarray, min_kw: float = 1e-6) -> set:
    """(peer, period) where a peer buys from one pair and sells to another (kW > min_kw)."""
    found = set()
    for t in range(a.shape[1]):
        buys = {*pairs[a[:, t] > min_kw, 0], *pairs[a[:, t] < -min_kw, 1]}
        sells = {*pairs[a[:, t] > min_kw, 1], *pairs[a[:, t] < -min_kw, 0]}
        found |= {(int(p), t) for p in buys & sells}
    return found


def _state(peers: list[str], trades: dict[tuple[str, str], float],
           prices: dict[tuple[str, str], float]) -> BilateralState:
    """One period of one hour with every pair of ``peers`` and the agreed trades
    {(seller, buyer): kW} at the pair prices (€/kWh; both sides' prices equal)."""
    n, m = np.triu_indices(len(peers), 1)
    book = Book.empty(POWER, np.stack([n, m], axis=1), len(peers), 1)
    for k, (i, j) in enumerate(book.pairs):
        pi, pj = peers[i], peers[j]
        book.a[k] = trades.get((pj, pi), 0.0) - trades.get((pi, pj), 0.0)
        book.price_n[k] = book.price_m[k] = prices.get((pi, pj), prices.get((pj, pi), 0.10))
    heat = Book.empty(HEAT, np.zeros((0, 2), int), len(peers), 1)
    return BilateralState(1, 1.0, peers, None, {POWER: book, HEAT: heat},
                          np.zeros((len(peers), 1)), 100.0, converged=True)


def test_circulation_and_pass_through_netted_by_hand():
    """G sells, A and B buy, P passes on. Agreed (seller → buyer, kW): G→A 80, G→B 20,
    A→B 30, B→P 10, P→A 10. Positions: G −100, A 80 + 10 − 30 = 60, B 20 + 30 − 10 = 40,
    P 0: A both buys and sells (30 of G's power passes through it to B), and A→B→P→A
    carries a circulation of 10.

    Netted by hand: the market's own pairs from the net seller to the net buyers first,
    largest first: G→A keeps min(80, 100, 60) = 60, G→B keeps min(20, 40, 40) = 20; G's
    last 20 kW walk G→A (20 left) → A (no demand left) → A→B (30) → B (20 left): G→B
    gets 20 more. What is left, A→B 10, B→P 10, P→A 10, is the circulation: dropped.
    Cleared: G→A 60, G→B 40, every position as agreed.

    Bills at the pair prices (G–A 0.10, G–B 0.12, A–B 0.11 €/kWh, others 0.10; one hour):
    G −(60·0.10 + 40·0.12) = −10.80 €, A 6.00 €, B 4.80 €, P 0; the agreed trades would
    have billed G −10.40, A 5.70, B 4.70 (bills follow the trades the clearing reports)."""
    prices = {("G", "A"): 0.10, ("G", "B"): 0.12, ("A", "B"): 0.11}
    state = _state(["G", "A", "B", "P"], {("G", "A"): 80.0, ("G", "B"): 20.0,
                                          ("A", "B"): 30.0, ("B", "P"): 10.0,
                                          ("P", "A"): 10.0}, prices)
    clearings = clear_bilateral(state, BilateralParams())
    by = {p: {o: kw[0] for o, kw in (c.by_counterparty_kw or {}).get(POWER, {}).items()}
          for p, c in clearings.items()}  # only the counterparties traded with are named
    assert by["G"] == pytest.approx({"A": -60.0, "B": -40.0}, abs=1e-12)
    assert by["A"] == pytest.approx({"G": 60.0}, abs=1e-12)
    assert by["B"] == pytest.approx({"G": 40.0}, abs=1e-12)
    assert by["P"] == {}
    assert {o: p[0] for o, p in clearings["G"].by_counterparty_price[POWER].items()} == \
        pytest.approx({"A": 0.10, "B": 0.12}, abs=1e-12)
    held = {p: c.position_kw[0] for p, c in clearings.items()}
    assert held == pytest.approx({"G": -100.0, "A": 60.0, "B": 40.0, "P": 0.0}, abs=1e-12)
    bills = {p: b.traded_eur[0] for p, b in settle_bilateral(state, BilateralParams(),
                                                             None).items()}
    assert bills == pytest.approx({"G": -10.80, "A": 6.00, "B": 4.80, "P": 0.0}, abs=1e-12)
    assert {p: c.prices_eur_per_kwh[POWER][0] for p, c in clearings.items()} == pytest.approx(
        {"G": 0.108, "A": 0.10, "B": 0.12, "P": 0.0}, abs=1e-12)  # bill / position


def test_a_walk_cancels_the_cycle_it_meets_by_hand():
    """Peers G, A, B, D (all pairs). Agreed: G→A 22, A→B 22, B→G 12, B→D 10: G sells
    10 net, D buys 10, A and B pass on, G→A→B→G circulates 12. No arc joins G and D, so
    nothing stands as agreed; G's walk takes its arcs largest first: G→A → A→B → B→G (12,
    larger than B→D's 10) meets G again: the cycle is cancelled by its smallest arc, 12
    (G→A 10, A→B 10 left), and the walk goes on G→A → A→B → B→D to D: one trade, G→D 10
    kW, on the pair (G, D) that traded nothing."""
    pairs = np.stack(np.triu_indices(4, 1), axis=1)  # (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    # a_k: n's purchase from m. G=0 buys 12 from B, sells 22 to A; A sells 22 to B;
    # B sells 10 to D
    a = np.array([[-22.0], [12.0], [0.0], [-22.0], [0.0], [-10.0]])
    np.testing.assert_allclose(net_trades(pairs, a), [[0.0], [0.0], [-10.0], [0.0], [0.0],
                                                       [0.0]], atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(peers=st.integers(2, 40), share=st.floats(0.2, 1.0), seed=st.integers(0, 2**32 - 1),
       rounded=st.booleans())
def test_netted_trades_keep_positions_and_go_from_net_sellers_to_net_buyers(
        peers, share, seed, rounded):
    """Random trades on a random share of all pairs (rounded to 0.1 kW in some draws:
    ties between arcs): in every period the netting kept, each peer's position is its
    agreed one (to ``NET_MIN_KW`` per placement), every trade runs from a net seller of
    the period to a net buyer, and so the traded volume is the net buyers' demand
    (Σ max(held, 0), worked out from the agreed trades alone). With all pairs present no
    period can fail to net."""
    rng = np.random.default_rng(seed)
    pairs = np.stack(np.triu_indices(peers, 1), axis=1)
    pairs = pairs[rng.random(len(pairs)) < share] if share < 1.0 else pairs
    if not len(pairs):
        return
    a = rng.normal(0.0, 5.0, (len(pairs), 4)) * (rng.random((len(pairs), 4)) < 0.8)
    a = np.round(a, 1) if rounded else a
    netted = net_trades(pairs, a)
    for t in range(a.shape[1]):
        held = (np.bincount(pairs[:, 0], a[:, t], minlength=peers)
                - np.bincount(pairs[:, 1], a[:, t], minlength=peers))
        now = (np.bincount(pairs[:, 0], netted[:, t], minlength=peers)
               - np.bincount(pairs[:, 1], netted[:, t], minlength=peers))
        np.testing.assert_allclose(now, held, atol=1e-6)
        if np.array_equal(netted[:, t], a[:, t]) and share < 1.0:
            continue  # kept as agreed: a seller and a buyer that are no pair
        traded = np.abs(netted[:, t]) > 1e-9
        buyer = np.where(netted[:, t] > 0, pairs[:, 0], pairs[:, 1])[traded]
        seller = np.where(netted[:, t] > 0, pairs[:, 1], pairs[:, 0])[traded]
        assert (held[buyer] > 0).all() and (held[seller] < 0).all()
        assert np.abs(netted[:, t]).sum() == pytest.approx(np.maximum(held, 0).sum(),
                                                           abs=1e-6)


# before the netting (same runs, same code otherwise): the community's cost (€) and the
# P2P energy of trades.parquet (kWh) over the day; 11 (basic), 10, 4, 4 agents bought and
# sold in the day's one period
BEFORE = {"basic": (11305.147217924, 94980.956), "alpha5": (11350.394588580, 87105.560),
          "alpha35": (12208.560595090, 118511.859), "beta5": (11328.151330820, 86866.402)}


def test_no_agent_buys_and_sells_and_positions_and_costs_stand(runs):
    """Every run's trades.parquet: no agent is a buyer and a seller in one period and
    commodity; each agent's bought − sold is its cleared position (``market_kw``), and the
    P2P energy is the positions' (``market.traded_kwh``: the net buyers' purchases; basic
    case 76,848.66 kWh = 3202.03 kW over 24 h where 94,980.96 kWh were reported before:
    755.5 kW circulated). The community's cost is the run's before the netting (BEFORE, from
    peers whose QPs HiGHS solved: to 1e-7 relative since OSQP solves them, 1.2 m€ of
    12,208 €)."""
    for name, (cost_eur, gross_kwh) in BEFORE.items():
        summary, agents, _ = runs[name]
        trades = pd.read_parquet(summary["out"] / "trades.parquet")
        for _, g in trades.groupby(["day", "period", "commodity"]):
            assert not set(g["seller"]) & set(g["buyer"]), name
        bought = trades.groupby("buyer")["kw"].sum()
        sold = trades.groupby("seller")["kw"].sum()
        net = bought.reindex(agents.index, fill_value=0.0) - sold.reindex(agents.index,
                                                                           fill_value=0.0)
        np.testing.assert_allclose(net, agents["market_kw"], atol=2e-5)
        assert summary["costs_eur"]["total"] == pytest.approx(cost_eur, rel=1e-7)
        market = summary["market"]
        assert market["traded_kwh_power"] == pytest.approx(market["traded_kwh"], abs=1e-3)
        assert market["traded_kwh_power"] < gross_kwh - 100
    assert runs["basic"][0]["market"]["traded_kwh_power"] == pytest.approx(76848.66, rel=1e-6)


def test_admm_centralized_model_keeps_the_producers_quadratic_costs():
    """Two centralized models of Vahidinasab et al.'s community trading freely (no network, no
    path penalty), built independently, must agree: the ADMM market's counterpart (every
    peer's convex problem in one cvxpy/Clarabel model, ``solve_central``) and the bilateral
    market's (one HiGHS QP over the pairs, ``solve_central_bilateral``): 11,305.14 € both.
    Without the generators' ½·a·g² the first was 6,248.64 €, 44.7 % below (and the ADMM
    market on the 11-bus feeder read 77 % above its counterpart)."""
    from lemgrid.scenarios.run.central_p2p import solve_central

    s = load_scenario(VAH, ["runtime.kind=inprocess"])
    data = build_community(s)
    n = len(data)
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    bilateral = solve_central_bilateral(data, {POWER: pairs},
                                        {POWER: np.zeros((len(pairs), 1))}, np.zeros((n, 1)))
    admm = solve_central(data, None)
    assert admm.objective_eur == pytest.approx(bilateral.welfare_eur, rel=1e-5)


@pytest.mark.parametrize("path", [VAH, SCENARIOS / "vahidinasab_heat.yaml"])
def test_the_counterpart_offers_the_pairs_the_market_offered(path):
    """The centralized counterpart's pairs (``market_pairs``: the coordinator's rule on the
    limits each peer registers) are the market's own books', power and heat: the
    clearings name only the counterparties traded with, so the counterpart cannot read
    the pairs from them."""
    s, _community, agents, state = _market_at(path)
    pairs = central_bilateral.market_pairs(s, [agents[p].day_data for p in state.peers])
    offered = {key: book.pairs for key, book in state.books.items()
               if key == POWER or len(book.pairs)}
    assert pairs.keys() == offered.keys()
    for key, book_pairs in offered.items():
        np.testing.assert_array_equal(pairs[key], book_pairs)
    assert central_bilateral.market_pairs(s.model_copy(update={"market": s.market.model_copy(
        update={"pool": True})}), [agents[p].day_data for p in state.peers]) == {}


def test_a_counterpart_too_large_is_not_computed_and_the_day_says_why(tmp_path, monkeypatch):
    """Above ``MAX_PAIR_PERIODS`` (here 1) the run's results skip the centralized QP: no
    figure, and the day's note gives the size (vahidinasab's pairs over its one period)."""
    monkeypatch.setattr(central_bilateral, "MAX_PAIR_PERIODS", 1)
    summary, _agents, _lines = _run(tmp_path, "bounded")
    assert summary["market"]["centralized_eur"] is None
    (note,) = [n for n in summary["notes"] if "centralized counterpart" in n]
    assert "pair-periods (at most 1:" in note

