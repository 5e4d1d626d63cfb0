"""A period's AC power flow solved on arrays: Newton-Raphson on the admittance matrices
pandapower built for the net, the results computed from the voltages as pandapower
computes them, without its result tables.

pandapower's recycled power flow solves a 33-bus period in about 1 ms and then spends
2.5 ms writing some sixty result columns into its data frames (``.loc`` by column), of
which `GridModel` reads eight. Between two periods only the agents' loads change, so
``ArrayPowerFlow`` keeps what pandapower built on its last full run (``Ybus``, ``Yf``,
``Yt``, the bus types, the lookups from the net's buses and branches to its internal
case) and per period

- forms the bus injections from the loads (constant power: pandapower's for a load
  whose ``const_z``/``const_i`` shares are 0), the rest of the net's injections as they
  were on that run;
- solves the polar Newton-Raphson equations (the same mismatch, the same convergence
  test ``‖F‖∞ < tolerance_mva`` and iteration limit as pandapower's ``newtonpf``), from
  the last period's voltages;
- computes branch flows ``S_f = V_f · conj(Y_f V)``, ``S_t = V_t · conj(Y_t V)`` (MVA),
  the currents ``|S| / (√3 · |V| · V_base)``, line loading against
  ``max_i_ka · df · parallel``, transformer loading by rated current, losses, the slack's
  power and each bus's net consumption, as pandapower's result functions do.

A net with an element this does not model (generators, shunts, wards, three-winding
transformers, impedances, DC lines, storage, …; see ``SUPPORTED``), several external
grids or voltage-dependent loads is left to pandapower (``after`` gives None). The
tests compare both on every shipped network, period by period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pandapower.pypower.idx_brch import F_BUS, T_BUS
from pandapower.pypower.idx_bus import BASE_KV, PD, QD

# Element tables the array power flow models; a net with rows in any other element
# table runs pandapower's power flow throughout.
SUPPORTED = frozenset({"bus", "line", "trafo", "load", "sgen", "ext_grid", "switch"})
NOT_EQUIPMENT = frozenset({"poly_cost", "pwl_cost", "bus_geodata", "line_geodata",
                           "measurement"})
SQRT3 = np.sqrt(3.0)
MAX_BUSES = 500  # the Jacobian is dense; a larger net runs pandapower's power flow


@dataclass(frozen=True)
class ArrayResult:
    """One converged period, in the net's bus, line and transformer order."""

    vm_pu: np.ndarray
    va_degree: np.ndarray
    bus_p_mw: np.ndarray
    loading_pct: np.ndarray
    i_ka: np.ndarray
    trafo_p_lv_mw: np.ndarray
    trafo_loading_pct: np.ndarray
    losses_mw: float
    p_slack_mw: float


def _element_tables(net) -> set[str]:
    """The net's tables with rows that describe equipment (not results, costs, plots)."""
    return {name for name, table in net.items()
            if isinstance(table, pd.DataFrame) and len(table)
            and not name.startswith(("res_", "_")) and name not in NOT_EQUIPMENT}


class ArrayPowerFlow:
    """Newton-Raphson on the internal case pandapower left in ``net`` after a converged
    full run; ``run`` solves a period for the net's loads' powers."""

    @classmethod
    def after(cls, net, tolerance_mva: float) -> ArrayPowerFlow | None:
        """Built from the net pandapower has just solved (``net._ppc``), or None when the
        net has what the array power flow does not model (module docstring)."""
        if _element_tables(net) - SUPPORTED or len(net.ext_grid) != 1:
            return None
        loads = net.load
        if loads.filter(like="const_").to_numpy(float).any():
            return None
        try:
            internal = net._ppc["internal"]
            if len(internal["pv"]) or len(internal["ref"]) != 1 \
                    or not net.bus.in_service.all() or internal["bus"].shape[0] > MAX_BUSES:
                return None
            return cls(net, internal, tolerance_mva)
        except (KeyError, AttributeError, IndexError, TypeError):
            return None  # a pandapower whose internal case looks otherwise: its own flow

    def __init__(self, net, internal: dict, tolerance_mva: float):
        self.tol = tolerance_mva
        self.max_it = int(net._options["max_iteration"]) if str(
            net._options["max_iteration"]).isdigit() else 10
        self.base_mva = float(internal["baseMVA"])
        self.Y = np.asarray(sp.csr_matrix(internal["Ybus"]).todense())  # dense: ≤ MAX_BUSES
        self.Yf, self.Yt = sp.csr_matrix(internal["Yf"]), sp.csr_matrix(internal["Yt"])
        self.pq = np.asarray(internal["pq"], np.int64)  # every bus but the slack (``after``)
        bus, branch = internal["bus"], internal["branch"]
        self.n_bus = bus.shape[0]
        self.base_kv = bus[:, BASE_KV].real
        self.f = branch[:, F_BUS].real.astype(np.int64)
        self.t = branch[:, T_BUS].real.astype(np.int64)
        lookup = net._pd2ppc_lookups["bus"]
        self.bus_at = lookup[net.bus.index.to_numpy()]
        self.load_at = lookup[net.load.bus.to_numpy()]
        self.load_scale = (net.load.scaling * net.load.in_service).to_numpy(float)
        # What the net's other elements draw at each internal bus (MW, Mvar): the run's
        # PD, QD less its loads'.
        self.pd_rest = bus[:, PD].real - self._per_bus(net.load.p_mw.to_numpy(float))
        self.qd_rest = bus[:, QD].real - self._per_bus(net.load.q_mvar.to_numpy(float))
        # A bus's res_bus.p_mw: its own loads, less its static generators, less the
        # external grid's power at its bus.
        self.bus_rest_mw = np.bincount(
            self._row_of(net.bus.index, net.sgen.bus),
            weights=(-net.sgen.p_mw * net.sgen.scaling * net.sgen.in_service).to_numpy(float),
            minlength=len(net.bus))
        self.load_row = self._row_of(net.bus.index, net.load.bus)
        self.ext_row = int(self._row_of(net.bus.index, net.ext_grid.bus)[0])
        self.gen_bus = int(internal["ref"][0])
        # Branch rows: in-service branches of the case, in its order, are the rows of Yf.
        in_service = np.asarray(internal.get("branch_is", np.ones(branch.shape[0], bool)))
        row = np.cumsum(in_service) - 1
        branches = net._pd2ppc_lookups["branch"]
        self.lines = self._branch_rows(branches.get("line"), in_service, row)
        self.trafos = self._branch_rows(branches.get("trafo"), in_service, row)
        line, trafo = net.line, net.trafo
        self.i_max_ka = (line.max_i_ka * line.df * line.parallel).to_numpy(float)
        self.trafo_vn = np.column_stack([trafo.vn_hv_kv.to_numpy(float),
                                         trafo.vn_lv_kv.to_numpy(float)])
        self.trafo_sn = trafo.sn_mva.to_numpy(float)
        self.trafo_share = (trafo.parallel * trafo.df).to_numpy(float)
        self.V = np.asarray(internal["V"], complex).copy()

    @staticmethod
    def _row_of(index, buses) -> np.ndarray:
        return index.get_indexer(np.asarray(buses))

    @staticmethod
    def _branch_rows(span, in_service: np.ndarray, row: np.ndarray):
        """(in service, row of Yf or -1) per element of a branch table."""
        if span is None:
            return np.zeros(0, bool), np.zeros(0, np.int64)
        on = in_service[span[0]:span[1]]
        return on, np.where(on, row[span[0]:span[1]], -1)

    def _per_bus(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.load_at, weights=values * self.load_scale,
                           minlength=self.n_bus)

    def run(self, p_mw: np.ndarray, q_mvar: np.ndarray) -> ArrayResult | None:
        """The period whose loads (in net.load order) draw ``p_mw``, ``q_mvar``; None
        if Newton-Raphson does not converge within pandapower's iteration limit."""
        pd = self.pd_rest + self._per_bus(p_mw)
        qd = self.qd_rest + self._per_bus(q_mvar)
        s_bus = -(pd + 1j * qd) / self.base_mva
        solved = self._newton(s_bus)
        if solved is None:
            return None
        return self._results(*solved, pd, p_mw)

    def _newton(self, s_bus: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The voltages and the injections they give (pu), or None."""
        V = self.V.copy()
        va, vm = np.angle(V), np.abs(V)
        pq, n = self.pq, len(self.pq)
        for iteration in range(self.max_it + 1):
            s_calc = V * np.conj(self.Y @ V)
            mis = s_calc - s_bus
            F = np.concatenate([mis[pq].real, mis[pq].imag])
            if np.linalg.norm(F, np.inf) < self.tol:
                self.V = V
                return V, s_calc
            if iteration == self.max_it:
                return None
            d_vm, d_va = self._derivatives(V)
            J = np.block([[d_va[np.ix_(pq, pq)].real, d_vm[np.ix_(pq, pq)].real],
                          [d_va[np.ix_(pq, pq)].imag, d_vm[np.ix_(pq, pq)].imag]])
            dx = -np.linalg.solve(J, F)
            va[pq] += dx[:n]
            vm[pq] += dx[n:]
            V = vm * np.exp(1j * va)
        return None

    def _derivatives(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """∂S/∂|V| and ∂S/∂θ, dense (MATPOWER's dSbus_dV, polar)."""
        i_bus = self.Y @ V
        v_norm = V / np.abs(V)
        d_vm = V[:, None] * np.conj(self.Y * v_norm[None, :])
        d_vm[np.diag_indices_from(d_vm)] += np.conj(i_bus) * v_norm
        d_va = -1j * V[:, None] * np.conj(self.Y * V[None, :])
        d_va[np.diag_indices_from(d_va)] += 1j * V * np.conj(i_bus)
        return d_vm, d_va

    def _results(self, V: np.ndarray, s_calc: np.ndarray, pd: np.ndarray,
                 p_mw: np.ndarray) -> ArrayResult:
        s_f = V[self.f] * np.conj(self.Yf @ V) * self.base_mva
        s_t = V[self.t] * np.conj(self.Yt @ V) * self.base_mva
        vm = np.abs(V)
        i_f = np.abs(s_f) / (vm[self.f] * self.base_kv[self.f]) / SQRT3
        i_t = np.abs(s_t) / (vm[self.t] * self.base_kv[self.t]) / SQRT3
        i_ft = np.column_stack([i_f, i_t])
        lines_on, line_rows = self.lines
        line_i = np.zeros((len(line_rows), 2))
        line_i[lines_on] = i_ft[line_rows[lines_on]]
        i_ka = line_i.max(axis=1)
        loading = np.full_like(i_ka, np.inf)
        np.divide(i_ka, self.i_max_ka, where=self.i_max_ka != 0, out=loading)
        trafos_on, trafo_rows = self.trafos
        trafo_i = np.zeros((len(trafo_rows), 2))
        trafo_i[trafos_on] = i_ft[trafo_rows[trafos_on]]
        p_lv = np.zeros(len(trafo_rows))
        p_lv[trafos_on] = s_t[trafo_rows[trafos_on]].real
        trafo_loading = (trafo_i * self.trafo_vn * SQRT3 / self.trafo_sn[:, None] * 100.0
                         ).max(axis=1) / self.trafo_share
        loss = (s_f + s_t).real
        losses = float(loss[line_rows[lines_on]].sum() + loss[trafo_rows[trafos_on]].sum())
        p_slack = float(s_calc[self.gen_bus].real * self.base_mva + pd[self.gen_bus])
        bus_p = self.bus_rest_mw + np.bincount(self.load_row, weights=p_mw * self.load_scale,
                                               minlength=len(self.bus_at))
        bus_p[self.ext_row] -= p_slack
        return ArrayResult(
            vm_pu=vm[self.bus_at], va_degree=np.degrees(np.angle(V))[self.bus_at],
            bus_p_mw=bus_p, loading_pct=loading * 100.0, i_ka=i_ka,
            trafo_p_lv_mw=p_lv, trafo_loading_pct=trafo_loading, losses_mw=losses,
            p_slack_mw=p_slack)
