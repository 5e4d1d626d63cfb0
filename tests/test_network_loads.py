"""The network cases' own loads per bus, kept in a table so a scenario is checked without
loading pandapower (grid.network_loads), against pandapower's networks built now (the
second method: grid.networks.published_loads sums each built net's loads per bus)."""

from pathlib import Path

from lemgrid.grid import network_loads
from lemgrid.grid.networks import NETWORKS, published_loads


def test_the_table_holds_what_pandapower_builds():
    assert set(network_loads.PUBLISHED_LOADS) == set(NETWORKS)
    for name in NETWORKS:
        assert network_loads.PUBLISHED_LOADS[name] == published_loads(name), name
    # and the module is what its generator writes (python -m lemgrid.grid.network_loads)
    assert network_loads.table_source() == Path(network_loads.__file__).read_text()


def test_case33bw_has_its_32_published_loads():
    """Baran & Wu's case: 32 load buses (1–32), 3715 kW and 2300 kvar in all."""
    loads = network_loads.PUBLISHED_LOADS["case33bw"]
    assert [b for b, _, _ in loads] == list(range(1, 33))
    assert round(sum(p for _, p, _ in loads), 6) == 3715.0
    assert round(sum(q for _, _, q in loads), 6) == 2300.0
