"""Paths on a radial feeder and the bilateral market's path penalties (grid/paths.py),
worked by hand on the 11-bus feeder (grid/networks.py: 1 km segments, trunk 0-1-2-3-4-5
r = 0.1828 Ω/km, laterals 3-6-7-8 and 2-9-10 r = 0.5426 Ω/km; line k is the chapter's
L(k+1))."""

import numpy as np
import pandapower as pp
import pytest

from lemgrid.grid.networks import load_network
from lemgrid.grid.paths import feeder_paths, path_penalties

TRUNK, LATERAL = 0.1828, 0.5426


@pytest.fixture(scope="module")
def paths():
    return feeder_paths(load_network("feeder11"), "feeder11")


def test_path_lines_and_resistance_by_hand(paths):
    """Bus 8 to bus 4: 8-7 (L8), 7-6 (L7), 6-3 (L6), 3-4 (L4): three lateral km and one
    trunk km; bus 10 to bus 5 crosses L10, L9, L3, L4, L5."""
    assert paths.lines(8, 4) == (3, 5, 6, 7)
    assert paths.resistance_ohm(8, 4) == pytest.approx(3 * LATERAL + TRUNK, abs=1e-12)
    assert paths.lines(10, 5) == (2, 3, 4, 8, 9)
    assert paths.resistance_ohm(10, 5) == pytest.approx(2 * LATERAL + 3 * TRUNK, abs=1e-12)
    assert paths.lines(8, 7) == (7,) and paths.lines(6, 6) == ()
    assert paths.resistance_ohm(4, 8) == paths.resistance_ohm(8, 4)
    with pytest.raises(ValueError, match="no in-service bus 42"):
        paths.lines(42, 1)


def test_penalties_loss_and_congestion_by_hand(paths):
    """α = 0.005 €/kWh per Ω, β = 0.01 €/kWh, two periods, line 5 (L6) congested in the
    second. Pair bus 8 ↔ 4: 0.005·1.8106 = 0.009053, + 0.01 in period 2 (it crosses L6);
    pair 8 ↔ 7: 0.005·0.5426 = 0.002713 both periods (L8 only). Retail of bus 7 (path
    7-6-3-2-1-0: 2 lateral + 3 trunk km): 0.005·1.6336 = 0.008168, + 0.01 in period 2."""
    pairs, retail = path_penalties(paths, [(8, 4), (8, 7)], [7], 0, np.array([0.005, 0.005]),
                                   np.array([0.01, 0.01]), [set(), {5}])
    np.testing.assert_allclose(pairs, [[0.009053, 0.019053], [0.002713, 0.002713]], atol=1e-12)
    np.testing.assert_allclose(retail, [[0.008168, 0.018168]], atol=1e-12)


def test_a_meshed_feeder_is_refused():
    """Closing a loop (bus 5 to bus 10) makes the paths ambiguous."""
    net = load_network("feeder11")
    pp.create_line_from_parameters(net, 5, 10, length_km=1.0, r_ohm_per_km=0.2,
                                   x_ohm_per_km=0.3, c_nf_per_km=0.0, max_i_ka=0.3)
    with pytest.raises(ValueError, match="loop|radial|mesh"):
        feeder_paths(net, "looped")


def test_a_network_with_transformers_is_refused():
    with pytest.raises(ValueError, match="cigre_lv has transformers"):
        feeder_paths(load_network("cigre_lv"), "cigre_lv")
