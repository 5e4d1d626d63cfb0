"""An agent model that lets go of its Pyomo model (``agents.solver.ParameterMap``) holds the
same HiGHS problem after any sequence of parameter changes as the same model updated by
Pyomo's persistent interface (the second method), and so plans the same day."""

import highspy
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from lemgrid.agents.model import AgentModel
from tests.test_agents import ev, prosumer
from tests.test_building import building, lossless, pil_case


def _problem(model: AgentModel) -> dict[str, np.ndarray]:
    lp = model.solver.highs.getLp()
    a = lp.a_matrix_
    shape = (lp.num_row_, lp.num_col_)
    cls = sparse.csr_matrix if a.format_ == highspy.MatrixFormat.kRowwise else sparse.csc_matrix
    dense = cls((a.value_, a.index_, a.start_), shape=shape).toarray()
    return {"cost": np.asarray(lp.col_cost_), "offset": np.array([lp.offset_]), "a": dense,
            "row_lower": np.asarray(lp.row_lower_), "row_upper": np.asarray(lp.row_upper_),
            "col_lower": np.asarray(lp.col_lower_), "col_upper": np.asarray(lp.col_upper_)}


def _pair(data):
    return AgentModel(data, mip_rel_gap=0.0, keep_pyomo=True), AgentModel(data, mip_rel_gap=0.0)


def _cases():
    return {"prosumer": prosumer().data, "ev": ev().data,
            "building": building([0.3, 0.2, 0.4], [1, 1, 2], sell=0.1, pv=[0, 5, 0],
                                 battery=lossless(2.0), sell_max=4.0, cdl=1.5),
            "building_pil": pil_case(pil=2.0)}


values = st.lists(st.floats(0.0, 6.0, allow_nan=False), min_size=4, max_size=4)
changes = st.lists(st.tuples(st.sampled_from(["p2v", "prices", "export"]), values, values,
                             st.booleans()), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None)
@given(case=st.sampled_from(sorted(_cases())), steps=changes)
def test_released_model_matches_pyomo_updates(case, steps):
    data = _cases()[case]
    n = data.horizon.periods
    kept, released = _pair(data)
    assert kept.m is not None and released.m is None
    for what, a, b, flag in steps:
        for model in (kept, released):
            if what == "p2v" and model.kind != "building":
                model.set_p2v_limit(a[:n])
            elif what == "prices":
                model.set_prices(np.array(a[:n]) / 10, np.array(b[:n]) / 20, demand_limit=flag)
            elif what == "export":
                model.set_export_limit(a[:n])
        want, got = _problem(kept), _problem(released)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{case} {key}")
    assert released.solve().objective_eur == pytest.approx(kept.solve().objective_eur,
                                                           rel=1e-12, abs=1e-12)


def test_released_model_hand_computed_resolve():
    """test_agents' prosumer (1.42 €) with the P2V limit then set to 0: 1.45 € (the 1 kWh
    goes to feed-in at 0.05 € instead of P2V at 0.08 €), on the released model."""
    m = prosumer()
    assert m.m is None
    assert m.solve().objective_eur == pytest.approx(1.42, abs=1e-9)
    m.set_p2v_limit(0.0)
    assert m.solve().objective_eur == pytest.approx(1.45, abs=1e-9)


def test_a_variable_bound_set_by_a_parameter_is_held_by_the_map():
    """min x, x ≥ lo: the map sets the column's bound once Pyomo is gone (2, then 5). A
    binary's bound stays within its domain: y ≤ up with up = 3 is still y ≤ 1, so max y
    is 1 (min −y = −1)."""
    import pyomo.environ as pyo

    from lemgrid.agents.solver import PersistentMILP

    m = pyo.ConcreteModel()
    m.lo = pyo.Param([0], initialize=2.0, mutable=True)
    m.up = pyo.Param(initialize=0.0, mutable=True)
    m.x = pyo.Var([0], bounds=lambda m, t: (m.lo[t], None))
    m.y = pyo.Var(domain=pyo.Binary, bounds=(0, m.up))
    m.obj = pyo.Objective(expr=m.x[0] - m.y)
    solver = PersistentMILP(m)
    assert solver.release_model() is True
    solver.solve()
    assert solver.objective() == pytest.approx(2.0)
    solver.set_parameters(None, {"lo": [5.0], "up": [3.0]})
    solver.solve()
    assert solver.objective() == pytest.approx(5.0 - 1.0)


def test_a_model_the_map_cannot_hold_keeps_pyomo():
    """A row bound set by a product of two parameters is not affine in them: the solver
    keeps the Pyomo model and sets the parameters through it. min x, x ≥ a·b: 2·3 = 6,
    then 2·5 = 10 after the change."""
    import pyomo.environ as pyo

    from lemgrid.agents.solver import PersistentMILP

    m = pyo.ConcreteModel()
    m.a = pyo.Param(initialize=2.0, mutable=True)
    m.b = pyo.Param([0], initialize=3.0, mutable=True)
    m.x = pyo.Var()
    m.floor = pyo.Constraint(expr=m.x >= m.a * m.b[0])
    m.obj = pyo.Objective(expr=m.x)
    solver = PersistentMILP(m)
    assert solver.release_model() is False
    solver.solve()
    assert solver.objective() == pytest.approx(6.0)
    solver.set_parameters(m, {"b": [5.0]})
    solver.solve()
    assert solver.objective() == pytest.approx(10.0)
