"""The ADMM market's report (the poster's Figs 5–7): residuals per round, where the
community's consumption came from (V2G visible), the EVs' state of charge; on small tables
made by hand, and on tiny.yaml run in-process with a made-up ``admm_iterations.parquet``
(the report's ADMM section appears with the file and only with it)."""

import base64
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.patches import StepPatch

from lemgrid.scenarios.results import figures
from lemgrid.scenarios.results.admm import ADMM_TITLE
from lemgrid.scenarios.results.report import write_report
from lemgrid.scenarios.run.world import run_scenario
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS

PERIOD_H = 0.5


def embedded_pngs(page: str) -> dict[str, bytes]:
    found = re.findall(r'<figure id="(\w+)"><img [^>]*src="data:image/png;base64,([^"]+)"',
                       page)
    return {name: base64.b64decode(data) for name, data in found}


def section(page: str, title: str) -> str:
    return page.split(f"<h2>{title}</h2>", 1)[1].split("<h2>", 1)[0]


def iterations(days: int = 1, rounds: int = 4) -> pd.DataFrame:
    rows = [{"day": d, "round": r, "primal_residual": 10.0 ** -(r + d),
             "dual_residual": 0.5 * 10.0 ** -(r + d), "rho": 100.0 * 2 ** (r // 2),
             "objective_eur": 50.0 - r}
            for d in range(days) for r in range(1, rounds + 1)]
    return pd.DataFrame(rows)


def agent_rows(*rows) -> pd.DataFrame:
    """Rows (agent, kind, period, load, pv, ch, dis, p2p) of one day; net_kw from the
    energy balance, buy_kw and sell_kw its positive and negative parts."""
    table = pd.DataFrame(rows, columns=["agent", "kind", "period", "load_kw", "pv_kw",
                                        "ch_kw", "dis_kw", "p2p_kw"])
    net = table["load_kw"] + table["ch_kw"] - table["pv_kw"] - table["dis_kw"]
    return table.assign(day=0, net_kw=net, buy_kw=net.clip(lower=0),
                        sell_kw=(-net).clip(lower=0), wind_kw=0.0, flex_kw=0.0)


@pytest.fixture
def community() -> pd.DataFrame:
    """Period 0 (evening): p1's battery and the EV's V2G discharge, the rest imported, the
    EV sells 1 kW to p2. Period 1 (noon): p1's PV supplies everyone, charges its battery
    and exports 1 kW. Period 2 (dusk): p1's battery charges 2 kW, from its last 1 kW of PV
    and 1 kW of the import."""
    return agent_rows(
        ("p1", "prosumer", 0, 2.0, 0.0, 0.0, 1.0, 0.0),
        ("p2", "prosumer", 0, 3.0, 0.0, 0.0, 0.0, 1.0),
        ("e1", "ev", 0, 0.0, 0.0, 0.0, 2.0, -1.0),
        ("p1", "prosumer", 1, 1.0, 6.0, 2.0, 0.0, 0.0),
        ("p2", "prosumer", 1, 1.0, 0.0, 0.0, 0.0, 0.0),
        ("e1", "ev", 1, 0.0, 0.0, 1.0, 0.0, 0.0),
        ("p1", "prosumer", 2, 1.0, 1.0, 2.0, 0.0, 0.0),
        ("p2", "prosumer", 2, 1.0, 0.0, 0.0, 0.0, 0.0),
        ("e1", "ev", 2, 0.0, 0.0, 0.0, 0.0, 0.0))


# ---- Fig. 5: residuals ---------------------------------------------------------------------

def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def test_residual_lines_are_the_tables_residuals_per_day():
    table = iterations(days=2)
    fig = figures.admm_residuals(table, tolerance=1e-4)
    ax, rho = fig.axes
    assert ax.get_yscale() == "log" and rho.get_yscale() == "log"
    lines = lines_by_label(ax)
    for day in (0, 1):
        rows = table[table["day"] == day]
        for kind in ("primal", "dual"):
            line = lines[f"{kind}, day {day + 1}"]
            np.testing.assert_array_equal(line.get_xdata(), rows["round"])
            np.testing.assert_allclose(line.get_ydata(), rows[f"{kind}_residual"])
    assert lines["tolerance 0.0001"].get_ydata()[0] == 1e-4
    rho_lines = rho.get_lines()
    assert len(rho_lines) == 2
    np.testing.assert_allclose(rho_lines[0].get_ydata(), table[table["day"] == 0]["rho"])


def test_many_days_draw_the_first_day_and_say_so():
    table = iterations(days=figures.MANY_DAYS + 1)
    fig = figures.admm_residuals(table)
    ax = fig.axes[0]
    assert "day 1 of 5" in ax.get_title()
    lines = lines_by_label(ax)
    assert set(lines) == {"primal", "dual"}
    np.testing.assert_allclose(lines["primal"].get_ydata(),
                               table[table["day"] == 0]["primal_residual"])


def test_a_zero_residual_is_a_gap_on_the_log_axis():
    table = iterations()
    table.loc[2, "dual_residual"] = 0.0
    dual = lines_by_label(figures.admm_residuals(table).axes[0])["dual"].get_ydata()
    assert np.isnan(dual[2]) and np.isfinite(np.delete(dual, 2)).all()


# ---- Fig. 6: supply mix --------------------------------------------------------------------

def test_consumption_sources_are_the_hand_sums(community):
    mix = figures.consumption_sources(community)
    expected = pd.DataFrame({
        "consumption_kw": [5.0, 3.0, 2.0], "import_kw": [2.0, 0.0, 3.0],
        "export_kw": [0.0, 1.0, 0.0], "generation_kw": [0.0, 6.0, 1.0],
        "ev_discharge_kw": [2.0, 0.0, 0.0], "battery_discharge_kw": [1.0, 0.0, 0.0],
        "battery_charge_kw": [0.0, 2.0, 2.0],
        # export and battery charging come out of PV first, then the import (dusk)
        "from_generation_kw": [0.0, 3.0, 0.0], "from_import_kw": [2.0, 0.0, 2.0],
        "from_ev_kw": [2.0, 0.0, 0.0], "from_battery_kw": [1.0, 0.0, 0.0]},
        index=pd.Index([0, 1, 2], name="period"))
    pd.testing.assert_frame_equal(mix[expected.columns], expected)
    used = mix[["from_generation_kw", "from_import_kw", "from_ev_kw", "from_battery_kw"]]
    np.testing.assert_allclose(used.sum(axis=1), mix["consumption_kw"])


def test_ev_discharge_share_by_hand(community):
    share = figures.ev_discharge_share(community, PERIOD_H)
    assert share["ev_discharge_kwh"] == pytest.approx(2.0 * PERIOD_H)
    assert share["import_kwh"] == pytest.approx((2.0 + 3.0) * PERIOD_H)
    assert share["share_pct"] == pytest.approx(100 * 1.0 / 2.5)
    assert share["retail_kwh"] == pytest.approx((1 + 3 + 1 + 1 + 2 + 1) * PERIOD_H)


def test_supply_mix_bars_are_the_sources(community):
    ax = figures.supply_mix(community, PERIOD_H).axes[0]
    bars = {c.get_label(): c for c in ax.containers}
    heights = {label: [p.get_height() for p in c] for label, c in bars.items()}
    assert heights == {"import from the grid": [2.0, 0.0, 2.0], "local PV": [0.0, 3.0, 0.0],
                       "EV discharge (V2G)": [2.0, 0.0, 0.0],
                       "battery discharge": [1.0, 0.0, 0.0],
                       "export (negative)": [0.0, -1.0, 0.0],
                       "battery charging (negative)": [0.0, -2.0, -2.0]}
    assert [p.get_x() for p in bars["local PV"]] == [0.0, 0.5, 1.0]  # hours
    top = bars["battery discharge"]
    assert [p.get_y() + p.get_height() for p in top] == [5.0, 3.0, 2.0]  # the consumption
    steps = {p.get_label(): p.get_data().values for p in ax.patches
             if isinstance(p, StepPatch)}
    np.testing.assert_allclose(steps["consumption (loads + EV charging)"], [5.0, 3.0, 2.0])
    np.testing.assert_allclose(steps["loads (without EV charging)"], [5.0, 2.0, 2.0])
    np.testing.assert_allclose(steps["P2P bought inside"], [1.0, 0.0, 0.0])


def test_supply_mix_of_a_multi_day_run_draws_day_one(community):
    later = community.assign(day=1, load_kw=community["load_kw"] * 10)
    two_days = pd.concat([community, later], ignore_index=True)
    ax = figures.supply_mix(two_days, PERIOD_H).axes[0]
    assert ax.get_title() == "Community supply mix, day 1 of 2"
    pd.testing.assert_frame_equal(figures.consumption_sources(two_days),
                                  figures.consumption_sources(community))


# ---- Fig. 7: EV state of charge, daily energy ----------------------------------------------

def soc_table(evs: int) -> pd.DataFrame:
    rows = [{"day": 0, "period": t, "agent": f"ev{i}", "kind": "ev",
             "soc_kwh": 20.0 + i * i + (t if t < 2 else 4 - t)}
            for i in range(evs) for t in range(4)]
    rows += [{"day": 0, "period": t, "agent": "p1", "kind": "prosumer", "soc_kwh": 5.0 + t}
             for t in range(4)]
    return figures.with_step(pd.DataFrame(rows), periods=4)


@pytest.mark.parametrize("evs", [2, figures.FEW_AGENTS + 2])
def test_every_ev_is_a_line_beside_the_mean(evs):
    table = soc_table(evs)
    fig = figures.state_of_charge(table, PERIOD_H)
    ev_ax = next(ax for ax in fig.axes if ax.get_title() == "State of charge: ev")
    lines = ev_ax.get_lines()
    assert len(lines) == evs + 1
    soc = table[table["kind"] == "ev"].pivot(index="period", columns="agent",
                                             values="soc_kwh")
    for line, agent in zip(lines[:-1], soc.columns, strict=True):
        np.testing.assert_allclose(line.get_ydata(), soc[agent])
        np.testing.assert_allclose(line.get_xdata(), [0.5, 1.0, 1.5, 2.0])  # period ends
    assert lines[-1].get_label() == "mean"
    np.testing.assert_allclose(lines[-1].get_ydata(), soc.mean(axis=1))


def test_daily_energy_shows_ev_discharge(community):
    ax = figures.daily_energy(community, PERIOD_H).axes[0]
    lines = lines_by_label(ax)
    assert lines["EV discharge (V2G)"].get_ydata()[0] == pytest.approx(2.0 * PERIOD_H)
    assert lines["EV charging"].get_ydata()[0] == pytest.approx(1.0 * PERIOD_H)


# ---- the report --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    run_scenario(load_scenario(SCENARIOS / "tiny.yaml", ["runtime.kind=inprocess"]), out)
    return out


def test_tiny_report_builds_without_an_admm_section(tiny):
    page = write_report(tiny).read_text()
    assert f"<h2>{ADMM_TITLE}</h2>" not in page
    pngs = embedded_pngs(page)
    assert "admm_residuals" not in pngs and {"supply_mix", "state_of_charge"} <= set(pngs)
    agents = pd.read_parquet(tiny / "agents.parquet")
    share = figures.ev_discharge_share(agents, 0.25)
    assert share["ev_discharge_kwh"] == 0.0  # tiny's EVs do not discharge
    assert f"EVs discharged 0.0 kWh on the day shown, {share['share_pct']:.2f} %" in page


def as_run_of(out, mechanism: str) -> None:
    """Make a results folder's resolved config name another mechanism."""
    config = yaml.safe_load((out / "config.yaml").read_text())
    config["market"] = {"mechanism": mechanism}
    (out / "config.yaml").write_text(yaml.safe_dump(config))


def test_report_has_the_admm_section_in_an_admm_run_only(tiny, tmp_path):
    out = shutil.copytree(tiny, tmp_path / "admm")
    as_run_of(out, "admm")
    table = iterations(rounds=5)
    table.to_parquet(out / "admm_iterations.parquet")
    pd.DataFrame({"day": [0, 0], "period": [3, 4], "seller": ["p1", "p1"],
                  "buyer": ["ev1", "ev2"], "commodity": ["p2p", "p2p"],
                  "kw": [2.0, 1.0]}).to_parquet(out / "trades.parquet")
    page = write_report(out).read_text()
    assert {"admm_residuals", "supply_mix", "state_of_charge"} <= set(embedded_pngs(page))
    admm = section(page, ADMM_TITLE)
    assert 'id="admm_residuals"' in admm  # the figure is in the section
    row = re.findall(r"<tr>((?:<td>[^<]*</td>)+)</tr>", admm)
    last = table.iloc[-1]
    assert re.findall(r"<td>([^<]*)</td>", row[0]) == [
        "1", "5", f"{last['primal_residual']:.3g}", f"{last['dual_residual']:.3g}",
        f"{last['rho']:.4g}", f"{last['objective_eur']:.4f}", "2", "0.75"]  # 3 kW × ¼ h
    assert (f"Day 1: 5 rounds, final primal residual {last['primal_residual']:.3g}, "
            f"dual {last['dual_residual']:.3g}") in admm
    assert (out / "figures" / "admm_residuals.png").is_file()
    assert "No P2V offer rounds: the ADMM market" not in page  # tiny has P2V rounds

    (out / "admm_iterations.parquet").unlink()  # an ADMM run without its table: said so
    page = write_report(out).read_text()
    assert "No ADMM rounds." in section(page, ADMM_TITLE)
    assert not (out / "figures" / "admm_residuals.png").exists()

    as_run_of(out, "p2v_rules")  # another mechanism's run: no ADMM section at all
    page = write_report(out).read_text()
    assert ADMM_TITLE not in page and "admm_residuals" not in page
    assert ADMM_TITLE not in (out / "report.md").read_text()
