"""Agent models instantiated from their structure's template (agents.model) against the
same models built directly in Pyomo, the second method: for every agent of the shipped
scenarios the LP HiGHS holds is the same, entry for entry, before and after a market
changes its limits and prices; and the templates are few."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from lemgrid.agents.admm_peer import PeerModel
from lemgrid.agents.data import BatterySpec, FlexibleLoad, Horizon, ProsumerData, Tariff
from lemgrid.agents.days import day_slice
from lemgrid.agents.formulations import structure_key
from lemgrid.agents.model import AgentModel
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.schema import load_scenario

# every n-th agent of the large communities (each kind and equipment set still met)
EVERY = {"faia2021": 3, "antunes2024": 3}
PEERS_EVERY = {"faia2021": 15, "antunes2024": 5}
SCENARIOS = ("tiny", "faia2021", "tems2023", "antunes2024", "vahidinasab", "vahidinasab_heat",
             "fernandes2024_cigre")


def lp_arrays(model: AgentModel | PeerModel) -> dict[str, np.ndarray]:
    lp = model.solver.highs.getLp()
    a = lp.a_matrix_
    shape = (lp.num_row_, lp.num_col_)
    m = sparse.csc_matrix((a.value_, a.index_, a.start_), shape=shape) \
        if a.format_.name == "kColwise" else \
        sparse.csr_matrix((a.value_, a.index_, a.start_), shape=shape)
    return {"cost": np.asarray(lp.col_cost_), "col_lower": np.asarray(lp.col_lower_),
            "col_upper": np.asarray(lp.col_upper_), "row_lower": np.asarray(lp.row_lower_),
            "row_upper": np.asarray(lp.row_upper_), "offset": np.asarray([lp.offset_]),
            "matrix": m.toarray()}


def assert_same_lp(a: AgentModel | PeerModel, b: AgentModel | PeerModel, who: str) -> None:
    la, lb = lp_arrays(a), lp_arrays(b)
    for key in la:
        np.testing.assert_allclose(la[key], lb[key], rtol=1e-12, atol=1e-12,
                                   err_msg=f"{who}: {key}")


def day_data(name: str) -> list:
    s = load_scenario(f"scenarios/{name}.yaml")
    return [day_slice(d, 0) for d in build_community(s)]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_agent_of_a_shipped_scenario_gets_the_lp_a_direct_build_gives(scenario):
    """The template's LP equals the direct Pyomo build's for every agent, at its own
    numbers and after the market's changes (a P2V limit, prices, an export limit)."""
    rng = np.random.default_rng(7)
    for d in day_data(scenario)[::EVERY.get(scenario, 1)]:
        direct, tpl = AgentModel(d, build="pyomo"), AgentModel(d)
        assert_same_lp(direct, tpl, f"{scenario} {d.name}")
        n = d.horizon.periods
        buy, sell, export = rng.uniform(0.1, 0.3, n), rng.uniform(0.0, 0.1, n), \
            rng.uniform(0.0, 3.0, n)
        limit = rng.uniform(0.0, 5.0, n)
        for model in (direct, tpl):
            model.set_prices(buy, sell, demand_limit=False)
            model.set_export_limit(export)
            if model.kind != "building":
                model.set_p2v_limit(limit)
        assert_same_lp(direct, tpl, f"{scenario} {d.name} after the market's changes")


@pytest.mark.parametrize("scenario", ("faia2021", "antunes2024", "vahidinasab_heat"))
def test_every_peer_of_an_admm_market_gets_the_lp_a_direct_build_gives(scenario):
    """A peer's ADMM model (its own model with the P2P purchase and the net import, its
    binaries settled by the day planned without the market) from the peer template equals
    the direct build's, with the same retail bill and quadratic costs, before and after a
    round's terms."""
    rng = np.random.default_rng(11)
    for d in day_data(scenario)[::PEERS_EVERY.get(scenario, 1)]:
        heat = getattr(d, "has_heat", False)
        direct, tpl = PeerModel(d, 3, build="pyomo", heat=heat), PeerModel(d, 3, heat=heat)
        assert_same_lp(direct, tpl, f"{scenario} {d.name}")
        np.testing.assert_allclose(direct.convex_cost(), tpl.convex_cost(), rtol=1e-12)
        np.testing.assert_allclose(direct.quadratic_diag(), tpl.quadratic_diag(), rtol=1e-12)
        n = d.horizon.periods
        terms = (rng.uniform(0, 0.2, n), rng.uniform(-2, 2, n))
        for model in (direct, tpl):
            model.set_terms(100.0, terms, terms)
        assert_same_lp(direct, tpl, f"{scenario} {d.name} in a round")
        assert tpl.solve().objective_eur == pytest.approx(direct.solve().objective_eur,
                                                         abs=1e-6)


def test_agents_of_one_structure_share_one_template_with_their_own_numbers():
    """Two prosumers with different loads, PV, tariffs and batteries have one structure;
    each plans its own day: the template's objective equals the direct build's."""
    def prosumer(name, scale, battery):
        tariff = Tariff(np.array([0.1, 0.2, 0.3]) * scale, 0.05 * scale, 0.08, scale)
        return ProsumerData(name, Horizon(3, 1.0), tariff, np.array([2.0, 1.0, 3.0]) * scale,
                            np.array([0.0, 4.0, 0.0]) / scale, battery, buy_max_kw=5.0 * scale,
                            sell_max_kw=2.0, p2v_max_kw=5.0)

    a = prosumer("a", 1.0, BatterySpec(2.0, 0.0, 2.0, 2.0, 1.0, 1.0, 0.0, 0.0))
    b = prosumer("b", 1.7, BatterySpec(9.0, 1.0, 2.5, 2.0, 0.9, 0.92, 4.0, 4.0))
    assert structure_key(a) == structure_key(b)
    for d in (a, b):
        assert AgentModel(d).solve().objective_eur == pytest.approx(
            AgentModel(d, build="pyomo").solve().objective_eur, abs=1e-9)


def test_a_flexible_load_window_is_structure():
    """A building's flexible load window decides which columns its duration row sums:
    another window is another template."""
    d = next(d for d in day_data("tems2023") if d.flexible)
    f = d.flexible[0]
    moved = FlexibleLoad(**{**f.__dict__, "window_start": f.window_start + 1})
    other = type(d)(**{**d.__dict__, "flexible": (moved, *d.flexible[1:])})
    assert structure_key(d) != structure_key(other)
    assert_same_lp(AgentModel(other, build="pyomo"), AgentModel(other), "moved window")


def test_a_community_needs_few_templates():
    """faia2021's 90 agents (50 prosumers with batteries, 40 EVs) have 2 structures."""
    keys = {structure_key(d) for d in day_data("faia2021")}
    assert len(keys) == 2


def test_templates_written_by_the_runner_serve_another_process(tmp_path, monkeypatch):
    """The runner writes the community's templates once (write_templates); a process that
    reads them builds no template of its own, and its models equal the direct build's."""
    from lemgrid.agents import model

    datas = day_data("tiny")
    path = tmp_path / "templates.pkl"
    assert model.write_templates(datas, model.AGENT, path) == len(
        {structure_key(d) for d in datas})
    monkeypatch.setattr(model, "_TEMPLATES", {})

    def no_build(*args, **kwargs):
        raise AssertionError("a template was built although the runner's were read")

    monkeypatch.setattr(model.ModelTemplate, "__init__", no_build)
    model.read_templates(path)
    for d in datas:
        assert_same_lp(AgentModel(d, build="pyomo"), AgentModel(d), f"tiny {d.name}")


def test_a_released_model_solves_as_a_kept_one():
    """``release``: after each solve the model lets go of HiGHS (its workspace) and the
    next solve starts from a new instance at the kept basis, with the parameters set
    meanwhile. Every faia2021 agent (every 3rd) priced again under new P2V limits costs
    what the kept model (the second method) finds, to 1e-9 €, in every round."""
    s = load_scenario("scenarios/faia2021.yaml")
    datas = [day_slice(d, 0) for d in build_community(s)][::EVERY["faia2021"]]
    rng = np.random.default_rng(7)
    for d in datas:
        kept, released = AgentModel(d), AgentModel(d, release=True)
        for round_ in range(3):
            if round_ and d.__class__.__name__ != "BuildingData":
                limit = rng.uniform(0.0, 4.0, d.horizon.periods)
                kept.set_p2v_limit(limit)
                released.set_p2v_limit(limit)
            a, b = kept.solve(), released.solve()
            assert released.solver.highs is None and kept.solver.highs is not None
            assert b.objective_eur == pytest.approx(a.objective_eur, abs=1e-9), (d.name, round_)


def test_the_launcher_reads_the_templates_once_written(tmp_path, monkeypatch):
    """The agent launcher waits for the runner's templates file and reads it before it
    forks; a simulator forked from it then finds the file read (``read_templates`` does
    not open it again: here it is gone by then). No file within the wait: False, and the
    simulators read it themselves."""
    import threading

    from lemgrid.agents import launcher, model

    datas = day_data("tiny")
    path = tmp_path / "templates.pkl"
    monkeypatch.setattr(model, "_TEMPLATES", {})
    monkeypatch.setattr(model, "_READ", {})
    writer = threading.Timer(0.05, model.write_templates, (datas, model.AGENT, path))
    writer.start()
    assert launcher.read_when_written(path, wait_s=10.0)
    writer.join()
    count = len({structure_key(d) for d in datas})
    assert len(model._TEMPLATES) == count
    path.unlink()
    assert model.read_templates(path) == count  # read already: not opened again
    assert not launcher.read_when_written(tmp_path / "never.pkl", wait_s=0.05)
