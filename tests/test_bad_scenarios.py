"""The bad-scenario corpus (``tests/bad_scenarios/``): every file, and every bad ``--set``,
gives exit 2 and one line naming the file (or the --set argument), the field and what is
allowed; never a traceback, never a results folder."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lemgrid.scenarios.cli import main
from lemgrid.scenarios.schema import MAX_FILE_BYTES, ScenarioError, load_scenario, shipped_scenarios

from .conftest import SCENARIOS

CORPUS = Path(__file__).resolve().parent / "bad_scenarios"
FILES = sorted(CORPUS.glob("[0-9][0-9]*_*.yaml"))
BATTERIES = "tesla_powerwall2, lg_resu16h_prime, lg_resu6_5, byd_hvm_13_8"

# case -> fragments of its one error line (after "<file>: ")
EXPECT = {
    "01_yaml_unclosed_flow": ["not valid YAML at line 5, column 8", "expected ',' or '}'",
                              "while parsing a flow mapping from line 4, column 9"],
    "02_yaml_bad_indent": ["not valid YAML at line 3, column 15",
                           "mapping values are not allowed here"],
    "03_yaml_tab_indent": ["not valid YAML at line 12, column 1", "'\\t'",
                           "allowed: indenting with spaces, not tabs"],
    "04_invalid_utf8": ["line 1, column 8: byte 0xff is not UTF-8; allowed: UTF-8 text"],
    "05_latin1_comment": ["line 1, column 6: byte 0xe9 is not UTF-8; allowed: UTF-8 text"],
    "06_utf16_file": ["byte 0xff is not UTF-8 (the file looks like UTF-16); allowed: UTF-8"],
    "07_bom_then_unknown_key": ["colour: unknown key; allowed: name, description, seed"],
    "08_nul_byte": ["not valid YAML at line 1, column 9: character U+0000 is not allowed",
                    "allowed: printable text"],
    "09_empty_file": ["top level: a scenario must be a mapping", "got an empty file",
                      "allowed: name, description, seed"],
    "10_capitalised_unknown_key": [("Horizon: unknown key; allowed: name, description, seed, "
                                   "horizon")],
    "11_top_level_list": ["top level: a scenario must be a mapping", "got a list",
                          "allowed: name"],
    "12_top_level_scalar": ["top level: a scenario must be a mapping", "got the value 'tiny'"],
    "13_duplicate_top_key": ["seed: key given twice (lines 2 and 3)",
                             "allowed: each key once in a mapping"],
    "14_duplicate_nested_key": ["market.p2v: key given twice (line 4)",
                                "allowed: each key once"],
    "15_alias_bomb": ["description: YAML aliases expand the file by",
                      "allowed: at most 1,000,000 values added by aliases"],
    "16_recursive_alias": ["description.0: a YAML alias refers to a node that contains it",
                           "allowed: aliases of finished nodes"],
    "17_deep_nesting": ["not valid YAML at line 3", "more than 64 levels of nesting",
                        "allowed: at most 64"],
    "18_two_documents": ["not valid YAML at line 23, column 1", "but found another document",
                         "expected a single document"],
    "19_python_tag": ["not valid YAML at line 1, column 7", "python/object/apply:os.system",
                      "allowed: plain YAML, no tags"],
    "20_crlf_unknown_key": ["horizon.hours: unknown key; allowed: periods, period_minutes, days"],
    "21_unknown_key_top": ["colour: unknown key; allowed: name, description, seed, horizon"],
    "22_unknown_key_market": [("market.tolerance: unknown key; allowed: p2v, tolerance_kw, "
                              "mechanism, mode")],
    "23_unknown_key_time_of_use": [("tariffs.time_of_use.peak: unknown key; allowed: "
                                   "off_peak_eur_per_kwh, peak_eur_per_kwh, peak_start")],
    "24_unknown_key_dynamic": [("tariffs.dynamic.spread: unknown key; allowed: "
                               "buy_mean_eur_per_kwh, sell_ratio, sell_ratio_spread")],
    "25_unknown_key_template": [("templates.0.batteries: unknown key; allowed: kind, count, "
                                "name_prefix, battery")],
    "26_unknown_key_battery_counts": ["templates.0.battery.extra: unknown key; allowed: counts"],
    "27_unknown_key_trips": [("templates.1.trips.speed: unknown key; allowed: "
                             "away_periods_total, peak_count")],
    "28_unknown_key_grid": ["grid.netwrk: unknown key; allowed: network, ampacity_ka"],
    "29_unknown_key_runtime": [("runtime.workers: unknown key; allowed: kind, "
                               "agents_per_process")],
    "30_unknown_key_forecast_error": [("forecast_error.temperature: unknown key; allowed: load, "
                                      "pv, wind")],
    "31_unknown_key_explicit_agent": [("agents.0.colour: unknown key; allowed: kind, name, "
                                      "model, away, trip_kwh")],
    "32_pv_on_an_ev": ["templates.1.pv: unknown key; allowed: kind, count, name_prefix, model"],
    "33_wind_on_a_prosumer": ["templates.0.wind_kw: unknown key; allowed: kind, count",
                              "load, pv"],
    "34_horizon_not_a_mapping": [("horizon: 'daily' is not a mapping; allowed: a mapping with "
                                 "keys periods, period_minutes, days")],
    "35_periods_text": ["horizon.periods: Input should be a valid integer",
                        "(got 'ninety-six')"],
    "36_p2v_list": ["market.p2v: Input should be a valid boolean (got [True])"],
    "37_feed_in_text": ["tariffs.feed_in_eur_per_kwh: Input should be a valid number",
                        "(got 'cheap')"],
    "38_templates_not_a_list": [("templates: {'kind': 'prosumer', 'count': 3} is not a list; "
                                "allowed: a list")],
    "39_template_not_a_mapping": [("templates.0: 'prosumer' is not a mapping; allowed: a "
                                  "mapping with kind: prosumer, ev, building")],
    "40_template_kind_missing": [("templates.0: missing key 'kind'; allowed kinds: prosumer, "
                                 "ev, building")],
    "41_template_kind_unknown": [("templates.0.kind: 'windfarm' is not a kind; allowed: "
                                 "prosumer, ev, building")],
    "42_battery_list": [("templates.0.battery: ['tesla_powerwall2'] is none of the allowed "
                        f"forms; allowed: a key ({BATTERIES}), {{choice: {{KEY: weight, ...}}}}"
                        " or {counts: {KEY: number of agents, ...}}")],
    "43_battery_counts_typo": ["templates.0.battery: {'count':", "none of the allowed forms",
                               "{counts: {KEY: number of agents, ...}}"],
    "44_unknown_battery": [(f"templates.0: unknown battery 'tesla_powerwall3'; allowed: "
                           f"{BATTERIES}")],
    "45_kva_unquoted": [("templates.0.contracted_kva: 6.9 is a number, not text; allowed: text "
                        "(put it in quotes)")],
    "46_time_unquoted": [("tariffs.time_of_use.peak_start: YAML reads the unquoted time 08:15 "
                         "as the number 495; allowed: a time in quotes, \"08:15\"")],
    "47_time_malformed": [("templates.1.trips.first_away: '6:15' is not of the right form; "
                          "allowed: a time HH:MM from 00:00 to 23:59")],
    "48_flexible_not_a_list": [("templates.0.flexible: 'washing_machine' is not a list; "
                               "allowed: a list")],
    "49_flexible_spec_incomplete": ["templates.0.flexible.0.duration_h: Field required",
                                    "required keys here: name, rating_kw, duration_h, window"],
    "50_forecast_error_text": ["forecast_error.load: Input should be a valid number",
                               "(got 'ten percent')"],
    "51_grid_voltage_text": ["grid.v_min_pu: Input should be a valid number", "(got 'low')"],
    "52_runtime_kind_unknown": [("runtime.kind: Input should be 'distributed' or 'inprocess' "
                                "(got 'cloud')")],
    "53_runtime_not_a_mapping": [("runtime: 'inprocess' is not a mapping; allowed: a mapping "
                                 "with keys kind, agents_per_process")],
    "54_solver_limit_negative": [("solver.time_limit_s: Input should be greater than 0 "
                                 "(got -60)")],
    "55_name_a_number": ["name: 2021 is a number, not text; allowed: text (put it in quotes)"],
    "56_count_zero": ["templates.0.count: Input should be greater than 0 (got 0)"],
    "57_count_negative": ["templates.1.count: Input should be greater than 0 (got -2)"],
    "58_count_fraction": [("templates.0.count: Input should be a valid integer, got a number "
                          "with a fractional part (got 2.5)")],
    "59_counts_do_not_add_up": ["templates.0.battery.counts: add up to 6, must equal count 3"],
    "60_days_zero": ["horizon.days: Input should be greater than or equal to 1 (got 0)"],
    "61_explicit_array_short": [("agents.0.away: covers 48 values, must cover horizon.days = 1 "
                                "× horizon.periods = 96 (96 values)")],
    "62_explicit_names_twice": [("agents.1.name: 'evx' is used twice; allowed: a name of its "
                                "own")],
    "63_template_names_clash": [("templates: agent names used twice: h1, h2; allowed: a "
                                "distinct name_prefix per template")],
    "64_explicit_name_of_a_template_agent": ["templates: agent names used twice: p2; allowed:"],
    "65_agents_per_process_zero": [("runtime.agents_per_process: Input should be greater than "
                                   "or equal to 1 (got 0)")],
    "66_huge_count": ["templates: 100000000002 agents × 1 days × 96 periods",
                      "allowed: at most 50,000,000"],
    "67_huge_float_is_inf": [("market.tolerance_kw: Input should be a finite number "
                             "(got '1e309')")],
    "68_nan": [("tariffs.time_of_use.peak_eur_per_kwh: Input should be a finite number "
               "(got nan)")],
    "69_period_minutes_not_dividing_a_day": [("horizon: periods × period_minutes must be 1440 "
                                             "(one day), got 205 × 7")],
    "70_peak_start_off_the_grid": [("tariffs.time_of_use.peak_start: 08:10 is not the start of "
                                   "a 15-minute period; allowed: times on the horizon's "
                                   "15-minute grid")],
    "71_soc_above_one": [("templates.0.battery_initial_soc: Input should be less than or equal "
                         "to 1 (got 1.5)")],
    "72_soc_uniform_reversed": [("templates.1.initial_soc: uniform: [0.8, 0.4] has its low "
                                "above its high; allowed: [low, high] with low ≤ high")],
    "73_soc_uniform_above_one": [("templates.0.battery_initial_soc: uniform [0.5, 1.5] is out "
                                 "of range for a state of charge; allowed: values from 0 to 1")],
    "74_ev_soc_below_its_floor": [("templates.1.initial_soc: 0.05 is out of range (an EV is "
                                  "never below 10 % of its battery); allowed: values from 0.1 "
                                  "to 1")],
    "75_flexible_window_too_short": [("templates.0.flexible.0: oven runs 3 h but its window "
                                     "18:00–20:00 is 2 h")],
    "76_flexible_window_backwards": [("templates.0.flexible.0.window: 20:00–18:00 must end "
                                     "after it starts")],
    "77_cdl_below_the_load": [("templates.0.cdl_kw: 0.2 kW is below h1's non-flexible load "
                              "alone ("), "raise it above the load's peak"],
    "78_negative_pv": ["templates.0.pv_kw: -2 is out of range; allowed: values ≥ 0"],
    "79_negative_wind_uniform": [("templates.0.wind_kw: uniform [-1, 1] is out of range; "
                                 "allowed: values ≥ 0")],
    "80_negative_feed_in": [("tariffs.feed_in_eur_per_kwh: Input should be greater than or "
                            "equal to 0 (got -0.045)")],
    "81_voltage_band_inverted": [("grid: v_min_pu 1.05 is not below v_max_pu 0.95; allowed: "
                                 "v_min_pu < v_max_pu")],
    "82_dynamic_sell_ratio_above_one": [("tariffs.dynamic: sell_ratio ± sell_ratio_spread = "
                                        "0.85–1.05 leaves (0, 1); allowed:")],
    "83_peak_count_above_count": [("templates.1.trips.peak_count: 5 EVs away at the peaks but "
                                  "the template has 2; allowed: 1 to 2")],
    "84_away_periods_do_not_fit": ["templates.1.trips.away_periods_total: 9999 EV-periods",
                                   "allowed: 4 to 140 EV-periods"],
    "85_peak_outside_trip_window": [("templates.1.trips: peak_times 05:00 outside the trip "
                                    "window; allowed: times from 06:15 to 23:30")],
    "86_pv_total_above_installed": [("templates.0.pv: PV energy too large for the installed "
                                    "kW: lower the PV total/yield")],
    "87_unknown_mechanism": [("market.mechanism: unknown mechanism 'auction'; allowed: "
                             "p2v_rules, amc, gdrmc, p2g")],
    "88_mechanism_cannot_serve_buildings": [("market.mechanism: p2v_rules does not serve "
                                            "building agents"), ("mechanisms for this "
                                            "community: amc, gdrmc, p2g")],
    "89_centralized_gdrmc": ["market.mode: gdrmc has no centralized mode (use decentralized); mechanisms with one: p2v_rules",
                             "(use decentralized)"],
    "90_unknown_network": [("grid.network: Input should be 'case33bw', 'feeder11', "
                           "'cigre_lv' or 'village_1' (got 'ieee13')")],
    "91_kva_not_in_tariffs": [("templates.1.contracted_kva: '7.00' has no entry in "
                              "tariffs.fixed_eur_per_day; allowed: 6.90, 10.35")],
    "92_tariff_key_not_kva": [("tariffs.fixed_eur_per_day: key 'large' is not a contracted "
                              "power; allowed: kVA as text")],
    "93_bus_of_an_unknown_agent": [("grid.buses.h9: no agent of that name; allowed: agent "
                                   "names, e.g. h1, h2")],
    "94_bus_outside_the_network": [("grid.buses.h1: feeder11 has no bus 300; allowed: buses "
                                   "0–10")],
    "95_name_escapes_results": [("name: '../../etc' cannot name the results folder "
                                "results/<name>; allowed: a name without '/'")],
    "96_cosimulator_link_unknown_key": [("cosimulators.0.links.0.every: unknown key; allowed: "
                                        "entity, each, to, from, attrs, unit, scale")],
    "97_kva_keys_unquoted": [("tariffs.fixed_eur_per_day.10.35: key 10.35 is a number, not "
                              "text; allowed: text keys (put it in quotes)")],
    "98_cosimulator_key_a_number": [("cosimulators.0.entities: parameter 1 is not a name; "
                                     "allowed: parameter names as text")],
    "99_explicit_values_not_numbers": ["agents.0.trip_kwh.0: Input should be a valid number",
                                       "(got 'none'); the same for 95 more item(s): 1, 2, 3"],
    "100_placement_bus_outside_the_network": [("templates.0.placement.load_buses.1: cigre_lv "
                                              "has no bus 99; allowed: buses 0–43")],
    "101_profile_column_missing": ["templates.0.load: ", ("profile_23_hours.csv has no column "
                                   "'Cluster_0'; allowed: 'Hour', 'kW'")],
    "102_profile_too_short": ["templates.0.load: ", ("profile_23_hours.csv has 23 rows of "
                              "values; allowed: 24, one per hour from 00:00")],
    "103_community_scale_negative": [("community.scale: Input should be greater than or equal "
                                     "to 0 (got -1)")],
    "104_no_agents": [("templates: the scenario has no agents (no templates and no explicit "
                       "agents); allowed: at least one template or explicit agent")],
    "105_ampacity_line_outside_the_network": [("grid.ampacity_ka.99: case33bw has no line 99; "
                                               "allowed: lines 0–36")],
    "106_ampacity_on_a_network_that_keeps_its_own": [
        ("grid.ampacity_ka: cigre_lv keeps its own line ratings (its builder takes no "
         "ampacity_ka); allowed: null, or a network that takes it: case33bw, feeder11")],
    "107_cosimulator_link_line_outside_the_network": [
        ("cosimulators.0.links.1.from: co-simulator Recorder: feeder11 has no line 10; "
         "allowed: lines 0–9")],
    "108_cosimulator_module_missing": [
        ("cosimulators.0.python: co-simulator Monitor: no module named "
         "'lemgrid.scenarios.cosim.voltage_monitor'; allowed: module:Class, a module this Python "
         "can import")],
    "109_cosimulator_class_missing": [
        ("cosimulators.0.python: co-simulator Monitor: module lemgrid.scenarios.cosim.monitor has no "
         "'VoltageMonitr'; allowed: a class it defines: VoltageMonitor")],
    "110_cosimulator_cmd_module_missing": [
        ("cosimulators.0.cmd: co-simulator Profiles: no module named "
         "'lemgrid.scenarios.cosim.csv_profiles'; allowed: a module this Python can import")],
    "111_cosimulator_file_missing": [
        "cosimulators.0.entities.1.path: co-simulator Profiles: no file ",
        ("scenarios/data/fernandes2024/cluster_medians_pv.csv; allowed: an existing file (a "
         "relative path is taken from the scenario file's folder), or {out}/NAME for a file "
         "it writes in the results folder")],
    "112_cosimulator_link_to_no_agent": [
        ("cosimulators.0.links.0.to: co-simulator Profiles: agent:p999 names no agent of the "
         "scenario; allowed: agent:NAME with an agent's name, e.g. p1, p2, p3")],
    "115_cosimulator_link_unit_of_another_quantity": [
        "cosimulators.0.links.0: attrs.P_out: Wh is energy, kW is power: they do not convert"],
    "116_cosimulator_link_unit_unknown": [
        "cosimulators.0.links.0: unit: 'watts' is not a unit lemgrid knows; allowed: W, kW, MW"],
    "117_cosimulator_link_bracket_unit_without_conversion": [
        "cosimulators.0.links.0: attrs.P[MW]: MW is power, kWh is energy: they do not convert"],
    "118_cosimulator_link_template_missing": [
        ("cosimulators.0.links.0.to: co-simulator Loads: template:ev names no template of the "
         "scenario; allowed: template:N with N from 0 to 0 or a name_prefix (p)")],
    "119_cosimulator_link_list_without_each": [
        "cosimulators.0.links.0: to: a list or template takes each (one entity per target)"],
    "120_cosimulator_link_to_itself": [
        ("cosimulators.0.links.0.to: co-simulator Loads: cosim:Loads/0 names no other "
         "co-simulator; allowed: cosim:NAME/ENTITY with NAME one of Panels")],
    "121_standard_profile_without_a_date": [
        ("templates.0.load: profile h25 is drawn for dates; allowed: with horizon.start "
         "(YYYY-MM-DD)")],
    "122_pvwatts_without_site_and_weather": [
        ("templates.0.pv: a pvwatts array needs site, weather; allowed: a scenario with "
         "horizon.start, site and weather")],
    "123_tmy_file_missing": [
        "weather.file: no file ", ("no_such_tmy.csv; allowed: an existing TMY3 CSV or EPW "
                                   "file (relative to the scenario's folder) or one pvlib "
                                   "ships: 703165TY.csv, 723170TYA.CSV")],
    "124_standard_profile_unknown": [
        "templates.0.load.profile: Input should be 'h25', 'g25', ", "(got 'h99')"],
    "113_network_loads_pv_on_a_bus_without_load": [
        ("templates.0: pv_kw names bus 0, which has no load in network case33bw; allowed: 1, "
         "2, 3,")],
    "114_ampacity_zero": [("grid.ampacity_ka: line 8: 0 is not a thermal limit; allowed: kA > 0 "
                           "for every line, {line index: kA > 0, ...} or null")],
}

# (id, shipped base scenario, --set arguments, fragments of the one error line)
SETS = [
    ("no_equals", "tiny", ["market.p2v"], ["--set 'market.p2v': expected key.path=value"]),
    ("no_key", "tiny", ["=true"], ["--set '=true': expected key.path=value"]),
    ("empty_part", "tiny", ["market..p2v=true"], ["expected key.path=value"]),
    ("unknown_field", "tiny", ["market.tolerance=0.1"],
     ["market.tolerance: unknown key; allowed: p2v, tolerance_kw, mechanism, mode"]),
    ("index_out_of_range", "tiny", ["templates.7.count=3"],
     [("--set templates.7.count: no such field to set, templates is a list of 2; allowed: "
      "indexes 0–1")]),
    ("index_not_a_number", "tiny", ["templates.first.count=3"],
     ["--set templates.first.count: no such field to set", "allowed: indexes 0–1"]),
    ("into_a_scalar", "tiny", ["name.first=x"],
     ["--set name.first: no such field to set, name is 'tiny'"]),
    ("wrong_type", "tiny", ["seed=lucky"], ["seed: Input should be a valid integer",
                                            "(got 'lucky')"]),
    ("value_not_yaml", "tiny", ["market.mechanism=[p2v_rules"],
     ["--set market.mechanism: not valid YAML at line 1, column 11"]),
    ("value_not_printable", "tiny", ["name=ti\udcffny"],
     ["--set name: not valid YAML at line 1, column 3: character U+DCFF is not allowed"]),
    ("value_duplicate_key", "tiny", ["market={p2v: true, p2v: false}"],
     ["--set market: p2v: key given twice (line 1); allowed: each key once"]),
    ("value_recursive_alias", "tiny", ["description=&a [*a]"],
     ["--set description: 0: a YAML alias refers to a node that contains it"]),
    ("infinite", "tiny", ["market.tolerance_kw=.inf"],
     ["market.tolerance_kw: Input should be a finite number (got inf)"]),
    ("breaks_the_horizon", "tiny", ["horizon.period_minutes=7"],
     ["horizon: periods × period_minutes must be 1440 (one day), got 96 × 7"]),
    ("huge_days", "tiny", ["horizon.days=1000000000"],
     ["horizon.days: 5 agents × 1000000000 days", "allowed: at most 50,000,000"]),
    ("ev_below_its_floor", "tiny", ["templates.1.initial_soc=0.05"],
     ["templates.1.initial_soc: 0.05 is out of range", "allowed: values from 0.1 to 1"]),
    ("mechanism_for_buildings", "tiny_locality", ["market.mechanism=p2v_rules"],
     ["market.mechanism: p2v_rules does not serve building agents"]),
    ("cdl_below_the_load", "tiny_locality", ["templates.1.cdl_kw=0.5"],
     ["templates.1.cdl_kw: 0.5 kW is below c1's non-flexible load alone"]),
    ("runtime_a_word", "tiny", ["runtime.kind=inprocess", "runtime=fast"],
     ["runtime: 'fast' is not a mapping; allowed: a mapping with keys kind"]),
    ("choice_weights_all_zero", "tiny", ["templates.0.battery={choice: {tesla_powerwall2: 0}}"],
     ["templates.0.battery: choice: every weight is 0; allowed: weights ≥ 0, at least one > 0"]),
    ("undefined_alias", "tiny", ["description=*nope"],
     ["--set description: not valid YAML at line 1, column 1: found undefined alias 'nope'"]),
    ("window_not_a_list", "tiny_locality",
     ["templates.0.flexible=[{name: oven, rating_kw: 2, duration_h: 1, window: 18:00-20:00}]"],
     ["templates.0.flexible.0.window: '18:00-20:00' is not a list; allowed: a list of two"]),
    ("scale_negative", "fernandes2024_cigre", ["community.scale=-2"],
     ["community.scale: Input should be greater than or equal to 0 (got -2)"]),
    ("centralized_gdrmc", "tiny_locality", ["market.mode=centralized"],
     ["market.mode: gdrmc has no centralized mode (use decentralized); mechanisms with one: p2v_rules"]),
]


@pytest.fixture
def no_run(monkeypatch):
    """Fail loudly if a bad scenario ever got as far as running its days."""
    from lemgrid.scenarios.run import world

    def reached(*args, **kwargs):
        raise AssertionError("a bad scenario reached the run")

    monkeypatch.setattr(world, "_days", reached)


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert "Traceback" not in captured.err and len(lines) == 1, captured.err
    return lines[0]


def test_the_corpus_is_complete():
    assert len(FILES) >= 35
    assert sorted(p.stem for p in FILES) == sorted(EXPECT)


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_a_bad_file_is_one_line_and_exit_2(path, command, tmp_path, capsys, no_run):
    out = tmp_path / "out"
    extra = ["--quiet", "--out", str(out)] if command == "run" else []
    start = time.perf_counter()
    assert main([command, str(path), *extra]) == 2
    assert time.perf_counter() - start < 5
    line = one_line(capsys)
    assert line.startswith(f"{path}: ")
    for fragment in EXPECT[path.stem]:
        assert fragment in line, (fragment, line)
    assert not out.exists()


@pytest.mark.parametrize("base, overrides, fragments", [s[1:] for s in SETS],
                         ids=[s[0] for s in SETS])
def test_a_bad_set_is_one_line_and_exit_2(base, overrides, fragments, tmp_path, capsys,
                                          no_run):
    out = tmp_path / "out"
    sets = [x for item in overrides for x in ("--set", item)]
    assert main(["run", base, "--quiet", "--out", str(out), *sets]) == 2
    line = one_line(capsys)
    assert line.startswith(f"{SCENARIOS / base}.yaml: ")
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not out.exists()


def test_curve_keys_that_do_not_exist(tmp_path, capsys, no_run):
    out = tmp_path / "out"
    assert main(["run", "tiny", "--quiet", "--out", str(out), "--set",
                 f"runtime.curve_keys={tmp_path / 'keys'}"]) == 2
    assert one_line(capsys).endswith(f"runtime.curve_keys: no folder {tmp_path / 'keys'}; "
                                     f"allowed: a folder made by `lemgrid keys "
                                     f"{tmp_path / 'keys'}`")
    assert not out.exists()


def test_unreadable_paths(tmp_path, capsys):
    shipped = ", ".join(shipped_scenarios())
    for path, why in ((tmp_path / "none.yaml", "No such file or directory"),
                      (tmp_path, "Is a directory")):
        assert main(["validate", str(path)]) == 2
        assert one_line(capsys) == (f"{path}: cannot read ({why}); allowed: a scenario file "
                                    f"(YAML) or a shipped scenario: {shipped}")


def test_a_huge_file_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk, nothing parsed
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.lines == [(f"{path}: larger than 32 MiB; allowed: a scenario file of at "
                                "most 32 MiB")]


def test_the_alias_bomb_is_refused_at_once():
    start = time.perf_counter()
    with pytest.raises(ScenarioError, match="alias bomb"):
        load_scenario(CORPUS / "15_alias_bomb.yaml")
    assert time.perf_counter() - start < 1


def test_messages_are_one_printable_line(tmp_path):
    path = tmp_path / "escape.yaml"
    path.write_text('name: tiny\nseed: 1\n"bad\\nkey\\e[31m": 1\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.lines == [(f"{path}: bad\\nkey\\x1b[31m: unknown key; allowed: name, "
                                "description, seed, horizon, site, weather, tariffs, market, "
                                "solver, grid, runtime, forecast_error, community, templates, "
                                "agents, cosimulators")]


def test_many_problems_are_capped(tmp_path, capsys):
    path = tmp_path / "many.yaml"
    path.write_text("name: many\nseed: 1\n" + "".join(f"key{i}: 1\n" for i in range(500)))
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 20 and lines[0].startswith(f"{path}: key0: unknown key; allowed:")
    assert lines[-1] == f"{path}: and 481 more problems (not shown)"


@pytest.mark.parametrize("name", shipped_scenarios())
def test_shipped_scenarios_stay_valid(name, capsys):
    assert main(["validate", name]) == 0
    assert capsys.readouterr().out.startswith(f"{name}: valid (")


def _lemgrid() -> list[str]:
    script = Path(sys.executable).with_name("lemgrid")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lemgrid.scenarios.cli"]


def test_a_real_lemgrid_run_prints_no_traceback(tmp_path):
    """A handful through the installed command, all at once: exit 2, one line, no results."""
    cases = {
        "invalid UTF-8": ([str(CORPUS / "04_invalid_utf8.yaml")], "byte 0xff is not UTF-8"),
        "alias bomb": ([str(CORPUS / "15_alias_bomb.yaml")], "alias bomb"),
        "deep nesting": ([str(CORPUS / "17_deep_nesting.yaml")], "levels of nesting"),
        "CDL below the load": ([str(CORPUS / "77_cdl_below_the_load.yaml")],
                               "templates.0.cdl_kw: 0.2 kW is below"),
        "bytes in --set": (["tiny", "--set", os.fsdecode(b"name=ti\xffny")],
                           "--set name: not valid YAML"),
        "no such file": ([str(tmp_path / "none.yaml")], "cannot read"),
    }
    procs = {}
    for name, (args, _) in cases.items():
        out = tmp_path / name.replace(" ", "_")
        procs[name] = (out, subprocess.Popen(
            [*_lemgrid(), "run", *args, "--quiet", "--out", str(out)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace"))
    for name, (out, proc) in procs.items():
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (name, stderr)
        assert "Traceback" not in stderr and len(stderr.splitlines()) == 1, (name, stderr)
        assert cases[name][1] in stderr, (name, stderr)
        assert not out.exists(), name
