"""Networks for the grid simulator: pure functions that each return a fresh pandapower net
(``load_network`` a copy of the one it built first).

case33bw and feeder11 get documented line thermal limits (`max_i_ka`) so that
`loading_pct` and the line-violation counts of `grid.powerflow` mean something; cigre_lv
keeps pandapower's uniform 1.0 kA and village_1 pandapower's cable ratings.
"""

import copy
import functools
import inspect
from collections.abc import Callable

import pandapower as pp
import pandapower.networks as pn

# case33bw (Baran & Wu 1989, 12.66 kV). The published case has no thermal limits and
# pandapower sets max_i_ka = 99999 on every line. RECON (our assumption, not from the
# papers): the main trunk from the substation to the first split (lines 0-4, buses 0->5)
# is rated like a 4/0-266.8 kcmil ACSR overhead conductor (~0.35-0.46 kA summer rating),
# taken as 0.40 kA; all laterals and the five tie lines like a 1/0 ACSR conductor
# (~0.24 kA), derated to 0.20 kA. At the published peak load (3.715 MW) this gives
# ~53 % loading on the head line and at most ~33 % on any lateral.
CASE33BW_TRUNK_LINES = [0, 1, 2, 3, 4]
CASE33BW_TRUNK_KA = 0.40
CASE33BW_LATERAL_KA = 0.20

# feeder11: 11 kV overhead radial feeder (RECON, see feeder11's docstring).
FEEDER11_VN_KV = 11.0
FEEDER11_LINES = [  # (from_bus, to_bus, kind); line k is the chapter's L(k+1)
    (0, 1, "trunk"), (1, 2, "trunk"), (2, 3, "trunk"), (3, 4, "trunk"), (4, 5, "trunk"),
    (3, 6, "lateral"), (6, 7, "lateral"), (7, 8, "lateral"),
    (2, 9, "lateral"), (9, 10, "lateral"),
]
FEEDER11_CONDUCTORS = {  # ACSR typical data: r at 20 degC, x at ~1 m spacing, summer rating
    "trunk": {"r_ohm_per_km": 0.1828, "x_ohm_per_km": 0.33, "max_i_ka": 0.35},  # "Wolf" 150 mm2
    "lateral": {"r_ohm_per_km": 0.5426, "x_ohm_per_km": 0.37, "max_i_ka": 0.19},  # "Rabbit" 50 mm2
}
FEEDER11_LENGTH_KM = 1.0


@functools.cache
def _published(name: str) -> pp.pandapowerNet:
    """pandapower's own case, built once (~0.4 s each); callers get deep copies."""
    return {"case33bw": pn.case33bw, "cigre_lv": pn.create_cigre_network_lv,
            "village_1": _village_1}[name]()


def _village_1() -> pp.pandapowerNet:
    return pn.create_synthetic_voltage_control_lv_network(network_class="village_1")


def _set_ampacity(net: pp.pandapowerNet, ampacity_ka: float | dict[int, float]) -> None:
    """Set `max_i_ka` on every line (one value) or on the lines named in a dict."""
    if isinstance(ampacity_ka, dict):  # keys may arrive as text (JSON)
        ampacity_ka = {int(line): i_ka for line, i_ka in ampacity_ka.items()}
        unknown = sorted(set(ampacity_ka) - set(net.line.index))
        if unknown:
            raise ValueError(f"ampacity_ka names lines {unknown} that the network does not have")
        for line, i_ka in ampacity_ka.items():
            net.line.at[line, "max_i_ka"] = float(i_ka)
    else:
        net.line["max_i_ka"] = float(ampacity_ka)
    if (net.line["max_i_ka"] <= 0).any():
        raise ValueError("every line ampacity (max_i_ka) must be positive")


def case33bw(ampacity_ka: float | dict[int, float] | None = None) -> pp.pandapowerNet:
    """The 33-bus Baran-Wu feeder (12.66 kV) from pandapower, with line thermal limits.

    33 buses, 37 lines: 32 in service and 5 out-of-service tie lines (32-36), no switches;
    its own 32 loads (3.715 MW peak) are kept. `ampacity_ka` is one value for every line or
    a per-line-index dict applied on top of the default: trunk lines 0-4 at 0.40 kA,
    every other line at 0.20 kA (RECON from typical ACSR ratings, see the module constants).
    """
    net = copy.deepcopy(_published("case33bw"))
    net.line["max_i_ka"] = CASE33BW_LATERAL_KA
    net.line.loc[CASE33BW_TRUNK_LINES, "max_i_ka"] = CASE33BW_TRUNK_KA
    if ampacity_ka is not None:
        _set_ampacity(net, ampacity_ka)
    return net


def feeder11(ampacity_ka: float | dict[int, float] | None = None) -> pp.pandapowerNet:
    """The 11-bus radial feeder of the P2P-among-active-buildings chapter, built here.

    The chapter (Vahidinasab et al., Fig. 12.10; docs/mechanisms/bilateral.md) publishes no
    line data; it says the feeder is radial with 11 buses, lines L1-L10, consumers C1-C11
    and producers G12-G20 (G20 the main grid), that L6 and L9 congest, that C9-G12/G13
    transactions cross L6 and that C9-G17 crosses L8 only. RECON consistent with that: 11 kV
    (the consumer totals sum to 5.55 MW, far beyond a 0.4 kV feeder), ext_grid (G20) at
    bus 0, no line shunts, every segment 1 km:

    - trunk 0-1-2-3-4-5 (L1-L5): ACSR "Wolf" 150 mm2, r 0.1828, x 0.33 ohm/km, 0.35 kA;
    - lateral A 3-6-7-8 (L6-L8) and lateral B 2-9-10 (L9-L10): ACSR "Rabbit" 50 mm2,
      r 0.5426, x 0.37 ohm/km, 0.19 kA.

    With C(k) at bus k-1 all supplied by the main grid at unity power factor (the pool
    case), losses are ~117 kW (chapter: 110.76 kW), v_min ~0.968 pu, head loading ~79 %.
    Suggested placement following the chapter: C9 at bus 8, G17 at bus 7, G12/G13 at
    buses 4-5, C10/C11 on lateral B. `ampacity_ka` overrides `max_i_ka` as in `case33bw`.
    """
    net = pp.create_empty_network(name="feeder11")
    for bus in range(11):
        pp.create_bus(net, vn_kv=FEEDER11_VN_KV, name=f"bus {bus}")
    pp.create_ext_grid(net, bus=0, vm_pu=1.0, name="main grid (G20)")
    for number, (from_bus, to_bus, kind) in enumerate(FEEDER11_LINES, start=1):
        pp.create_line_from_parameters(
            net, from_bus, to_bus, length_km=FEEDER11_LENGTH_KM, c_nf_per_km=0.0,
            name=f"L{number}", **FEEDER11_CONDUCTORS[kind])
    if ampacity_ka is not None:
        _set_ampacity(net, ampacity_ka)
    return net


def cigre_lv() -> pp.pandapowerNet:
    """The CIGRE European LV benchmark (0.4 kV, 44 buses) as pandapower builds it.

    pandapower gives every line max_i_ka = 1.0, so its line loadings are low by design.
    """
    return copy.deepcopy(_published("cigre_lv"))


def village_1(keep_sgens: bool = False) -> pp.pandapowerNet:
    """The synthetic LV network 'village_1' of Lindner et al. (Symposium Energieinnovation,
    TU Graz 2014) as pandapower builds it, the 80-bus network of Vieira Fernandes, Christin,
    Kar (SmartGridComm 2024; docs/mechanisms/clearance.md).

    pandapower gives: 80 buses (bus 0 at 20 kV, with the ext_grid; 79 at 0.4 kV), one
    20/0.4 kV transformer of sn_mva = 0.25 (vk 4 %), 78 cables and no switches: four
    feeders from bus 1 of NAYY 4x150 SE (max_i_ka = 0.27, 39 lines) with one NAYY 4x50 SE
    house connection (max_i_ka = 0.142, 39 lines) off each feeder bus; 47 loads
    (0.2621 MW: 5.1 kW households, 7.9 kW special loads) and 13 PV static generators
    (0.2037 MW). The loads are dropped or kept by ``grid.keep_network_loads`` like every
    network's; the static generators are dropped unless `keep_sgens` (the grid simulator
    keeps a network's generators, and the communities placed on it bring their own PV).
    """
    net = copy.deepcopy(_published("village_1"))
    if not keep_sgens:
        net.sgen.drop(net.sgen.index, inplace=True)
    return net


NETWORKS: dict[str, Callable[..., pp.pandapowerNet]] = {
    "case33bw": case33bw,
    "feeder11": feeder11,
    "cigre_lv": cigre_lv,
    "village_1": village_1,
}


@functools.cache
def published_loads(name: str) -> tuple[tuple[int, float, float], ...]:
    """The network case's own loads summed per bus: (bus, p_kw, q_kvar), in bus order."""
    net = _published(name) if name in ("case33bw", "cigre_lv", "village_1") else NETWORKS[name]()
    loads = net.load[net.load.in_service]
    p = (1000 * loads.p_mw * loads.scaling).groupby(loads.bus).sum()
    q = (1000 * loads.q_mvar * loads.scaling).groupby(loads.bus).sum()
    return tuple((int(b), float(p[b]), float(q[b])) for b in sorted(p.index))


def load_network(name: str, **options) -> pp.pandapowerNet:
    """Build the network registered under `name`, passing `options` to its builder."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; allowed: {', '.join(sorted(NETWORKS))}")
    builder = NETWORKS[name]
    try:
        inspect.signature(builder).bind(**options)
    except TypeError as err:
        raise ValueError(f"bad options {sorted(options)} for network {name!r}: {err}") from None
    key = (name, repr(sorted(options.items())))
    if key not in _BUILT:
        _BUILT[key] = builder(**options)
    return copy.deepcopy(_BUILT[key])


# Each network built once per process and copied for every caller: building one takes
# pandapower 0.26-0.51 s (its empty net alone is some sixty data frames), a copy 0.01 s;
# a run asks for its network several times (placing agents, rating transformers, the
# power flows, the report).
_BUILT: dict[tuple[str, str], pp.pandapowerNet] = {}
