"""The ADMM market over the real wire with scripted answers (scenarios.bench.admm_wire):
a coordinator process runs every round to the bound, and the signals grow with the
peers, not with the pairs (a peer's trades travel aggregated)."""

from lemgrid.coordinator.records import read_days
from lemgrid.scenarios.bench.admm_wire import run_wire


def test_scripted_peers_run_every_round_and_settle(tmp_path):
    r = run_wire(12, 25, tmp_path)
    assert (r.rounds, r.errors) == (25, 0)
    assert len(r.interval_ms) == len(r.swarm_ms) == 24
    assert all(v > 0 for v in r.interval_ms)
    (day,) = read_days(tmp_path / "rounds")
    assert len(day["rounds"]) == 25
    assert len(day["settlements"]) == 13 and day["failed"] == {}  # 12 peers, the operator


def test_signals_grow_with_the_peers_not_the_pairs(tmp_path):
    """Half the peers may sell, all may buy: 12 peers have 6·11 − 15 = 51 pairs, 24 have
    12·23 − 66 = 210 (four times as many); the signals' bytes only double."""
    small = run_wire(12, 5, tmp_path / "12")
    large = run_wire(24, 5, tmp_path / "24")
    ratio = large.medians()["signal_kb_per_round"] / small.medians()["signal_kb_per_round"]
    assert 1.8 < ratio < 2.2
