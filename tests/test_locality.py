"""The locality market of the 2023 locality market paper (AMC, GDRMC, P2G;
docs/mechanisms/locality.md) on toy quotes worked out by hand.

Grid prices λb = 0.2 and λs = 0.05 €/kWh throughout, so m = (λb + λs) / 2 = 0.125."""

import numpy as np
import pytest

from lemgrid.coordinator.mechanisms.amc import amc_prices
from lemgrid.coordinator.mechanisms.base import MarketData
from lemgrid.coordinator.mechanisms.gdrmc import gdrmc_prices
from lemgrid.coordinator.protocol import OfferBody, RegisterBody
from lemgrid.scenarios import mechanisms

BUY, SELL = np.array([0.2]), np.array([0.05])


def prices(rule, D, G):
    im, ex = rule(BUY, SELL, np.array([D]), np.array([G]))
    return float(im[0]), float(ex[0])


def test_amc_importer_and_exporter_locality():
    """D = 2, G = 1: exporters get m = 0.125, importers (1·0.125 + 1·0.2)/2 = 0.1625.
    D = 1, G = 4: importers pay m, exporters get (1·0.125 + 3·0.05)/4 = 0.06875."""
    assert prices(amc_prices, 2, 1) == pytest.approx((0.1625, 0.125), abs=1e-15)
    assert prices(amc_prices, 1, 4) == pytest.approx((0.125, 0.06875), abs=1e-15)


def test_gdrmc_prices_follow_the_ratio():
    """GDR = 0.5: π_ex = 0.2·0.05 / (0.15·0.5 + 0.05) = 0.08, π_im = 0.08·0.5 + 0.2·0.5 =
    0.14. GDR = 0: both λb. GDR ≥ 1: both λs."""
    assert prices(gdrmc_prices, 2, 1) == pytest.approx((0.14, 0.08), abs=1e-15)
    assert prices(gdrmc_prices, 1, 0) == pytest.approx((0.2, 0.2), abs=1e-15)
    assert prices(gdrmc_prices, 1, 4) == pytest.approx((0.05, 0.05), abs=1e-15)


@pytest.mark.parametrize("rule", [amc_prices, gdrmc_prices])
@pytest.mark.parametrize("D, G", [(2, 1), (5, 0.5), (1, 4), (0, 3), (3, 3)])
def test_prices_balance_the_operator_against_the_grid(rule, D, G):
    """Importers' payments minus exporters' revenue equal what the grid charges for the
    locality's net: λb (D − G) when importing, −λs (G − D) when exporting."""
    im, ex = prices(rule, D, G)
    grid = 0.2 * (D - G) if D > G else -0.05 * (G - D)
    assert im * D - ex * G == pytest.approx(grid, abs=1e-12)


def market(name, quotes, cdl=None, pil_kw=None, **params):
    """Run one day of mechanism ``name`` on one-period quotes (period_h = 1)."""
    mech = mechanisms.get(name).core
    p = mech.params_type(**params).with_data(MarketData((0.2,), (0.05,)))
    roster = {n: RegisterBody(kind="building", periods=1, period_h=1.0, limits_kw={
        "export": [9.0], "cdl": [cdl[i] if cdl else 9.0], "pil": [pil_kw[i] if pil_kw else 9.0]})
        for i, n in enumerate(quotes)}
    signals, state = mech.init(roster, p, 0)
    _, state, done = mech.step({n: OfferBody(quantities_kw={"net": [q]})
                                for n, q in quotes.items()}, state, p)
    assert done
    return mech, p, signals, state, mech.clear(state, p)


def test_demand_limit_charges_the_excess_at_kappa():
    """D = 3, G = 1, locality CDL = 0.5 + 0.5 + 0 = 1 kW: net import 2 exceeds it by 1, so
    importers share D' = 2 (GDR' = 0.5: π_ex = 0.08, π_im' = 0.14) and pay 2.5·0.2 on the
    last kWh: π_im = (0.14·2 + 0.5·1) / 3 = 0.26. The LEMO pays the grid 0.2·1 + 0.5·1 =
    0.7 = 0.26·3 − 0.08·1."""
    *_, clearing = market("gdrmc", {"a": 2.0, "b": 1.0, "c": -1.0}, cdl=[0.5, 0.5, 0.0])
    assert clearing["a"].prices_eur_per_kwh["import"] == pytest.approx([0.26], abs=1e-15)
    assert clearing["c"].prices_eur_per_kwh["export"] == pytest.approx([0.08], abs=1e-15)


def test_injection_limit_leaves_the_excess_unpaid():
    """D = 1, G = 4, locality PIL = 1: the grid takes 1 of the 3 kW surplus, so exporters
    are paid for G' = 2: π_ex = 0.05·2/4 = 0.025 (GDRMC), importers pay λs = 0.05."""
    *_, clearing = market("gdrmc", {"a": 1.0, "b": -4.0}, pil_kw=[0.0, 1.0])
    assert clearing["b"].prices_eur_per_kwh["export"] == pytest.approx([0.025], abs=1e-15)
    *_, clearing = market("gdrmc", {"a": 1.0, "b": -4.0}, pil_kw=[0.0, 1.0],
                          pil=False)
    assert clearing["b"].prices_eur_per_kwh["export"] == pytest.approx([0.05], abs=1e-15)


def test_settlement_traded_deviation_and_violation():
    """GDRMC with quotes a: 2, b: −1, c: 0 (D = 2, G = 1): π_im = 0.14, π_ex = 0.08. a realises 1.5 kW (quoted 2): traded 0.28, deviation 0.21 − 0.28 = −0.07,
    violation 0.2·0.5·0.14 = 0.014. b realises −0.6 (quoted −1): traded −0.08, deviation
    −0.048 + 0.08 = 0.032, violation 0.2·0.4·0.08 = 0.0064. c (quoted 0) exports 0.5:
    an exporter by its realised power, deviation −0.04, violation 0.2·0.5·0.08 = 0.008."""
    mech, p, _, state, _ = market("gdrmc", {"a": 2.0, "b": -1.0, "c": 0.0})
    bills = mech.settle(state, p, {"a": np.array([1.5]), "b": np.array([-0.6]),
                                   "c": np.array([-0.5])})
    got = {n: (b.traded_eur[0], b.deviation_eur[0], b.violation_eur[0], b.position_kw[0])
           for n, b in bills.items()}
    assert got["a"] == pytest.approx((0.28, -0.07, 0.014, 1.5), abs=1e-15)
    assert got["b"] == pytest.approx((-0.08, 0.032, 0.0064, -0.6), abs=1e-15)
    assert got["c"] == pytest.approx((0.0, -0.04, 0.008, -0.5), abs=1e-15)


def test_a_missing_meter_counts_as_the_quote():
    mech, p, _, state, _ = market("amc", {"a": 2.0, "b": -1.0})
    bills = mech.settle(state, p, {"a": np.array([np.nan])})
    assert bills["a"].deviation_eur == [0.0] and bills["a"].position_kw == [2.0]


def test_p2g_plans_under_the_pil_and_takes_nothing():
    """P2G sends each participant its own PIL as export limit (the connection's without
    PILs), clears no position and bills nothing: everything is retail."""
    mech, p, signals, state, clearing = market("p2g", {"a": 2.0, "b": -1.0}, pil_kw=[3.0, 1.5])
    assert signals["b"].terms["export"].limit_kw == [1.5]
    assert clearing["b"].position_kw == [0.0]
    bill = mech.settle(state, p, {"b": np.array([-1.0])})["b"]
    assert bill.traded_eur == [0.0] and bill.violation_eur == [0.0]
    _, _, signals, _, _ = market("p2g", {"a": 2.0, "b": -1.0}, pil_kw=[3.0, 1.5],
                                 pil=False)
    assert signals["b"].terms["export"].limit_kw == [9.0]


@pytest.mark.parametrize("name", ["amc", "gdrmc"])
def test_locality_markets_keep_individual_pils(name):
    """A PIL limits the participant's own connection: it plans under it (1.5 kW) in the
    locality market too; without PILs, under its connection's export limit (9 kW)."""
    signals = market(name, {"a": 2.0, "b": -1.0}, pil_kw=[3.0, 1.5])[2]
    assert signals["b"].terms["export"].limit_kw == [1.5]
    signals = market(name, {"a": 2.0, "b": -1.0}, pil_kw=[3.0, 1.5], pil=False)[2]
    assert signals["b"].terms["export"].limit_kw == [9.0]


def test_gdrmc_prices_with_a_feed_in_price_of_zero():
    """λb 0.2, λs 0 (vahidinasab's retail: no feed-in price). GDR = 0 (D = 1, G = 0): the
    formula is 0/0; its value at GDR = 0 is λb for both prices. GDR = 0.5: π_ex = 0.2·0 /
    (0.2·0.5) = 0, π_im = 0·0.5 + 0.2·0.5 = 0.1."""
    buy, sell = np.array([0.2, 0.2]), np.array([0.0, 0.0])
    im, ex = gdrmc_prices(buy, sell, np.array([1.0, 2.0]), np.array([0.0, 1.0]))
    assert im.tolist() == pytest.approx([0.2, 0.1], abs=1e-15)
    assert ex.tolist() == pytest.approx([0.2, 0.0], abs=1e-15)
