"""Scenario validation: strict keys, one line per problem naming file and field."""

import json
from pathlib import Path

import pytest
import yaml

from lemgrid.grid.networks import load_network
from lemgrid.scenarios.cli import main
from lemgrid.scenarios.schema import SCHEMA_PATH, ScenarioError, _spans, json_schema, load_scenario

from .conftest import SCENARIOS


def write(tmp_path, mutate):
    raw = yaml.safe_load((SCENARIOS / "tiny.yaml").read_text())
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def errors(path, overrides=()):
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, list(overrides))
    return info.value.lines


def test_checked_in_json_schema_is_current():
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema()


@pytest.mark.parametrize("name", ["tiny", "faia2021"])
def test_shipped_scenarios_validate(name):
    assert main(["validate", str(SCENARIOS / f"{name}.yaml")]) == 0


def test_unknown_key_names_field_and_allowed_keys(tmp_path):
    path = write(tmp_path, lambda r: r["market"].update(tolerance=0.1))
    assert errors(path) == [(f"{path}: market.tolerance: unknown key; allowed: p2v, tolerance_kw, "
                             "mechanism, mode, max_rounds, network_check, cdl_factor, pil, "
                             "network_model, network_margin_pu")]


def test_another_mechanisms_parameter_names_the_mechanisms_that_have_it(tmp_path):
    """A parameter of another mechanism is no longer silently accepted: p2v_rules has no
    loss price (bilateral has), no price discovery (amc and gdrmc have)."""
    path = write(tmp_path, lambda r: r["market"].update(loss_price=0.005, price_rounds=3))
    own = ("allowed: p2v, tolerance_kw, mechanism, mode, max_rounds, network_check, "
           "cdl_factor, pil, network_model, network_margin_pu")
    assert errors(path) == [
        f"{path}: market.loss_price: not a parameter of p2v_rules (it is one of bilateral); "
        + own,
        f"{path}: market.price_rounds: not a parameter of p2v_rules (it is one of amc, "
        "gdrmc); " + own]


def test_every_problem_gets_a_line(tmp_path):
    def mutate(r):
        r["templates"][0]["count"] = 0
        r["templates"][1]["initial_soc"] = 1.5
        r["market"]["mechanism"] = "auction"
    lines = errors(write(tmp_path, mutate))
    assert len(lines) == 3
    assert any("templates.0.count: Input should be greater than 0" in x for x in lines)
    assert any("market.mechanism: unknown mechanism 'auction'; allowed: p2v_rules, amc, gdrmc, "
               "p2g" in x for x in lines)
    assert any("templates.1.initial_soc: Input should be less than or equal to 1" in x
               for x in lines)


def test_unknown_equipment_lists_the_catalog(tmp_path):
    def mutate(r):
        r["templates"][1]["model"] = "tesla_cybertruck"
        r["templates"][0]["contracted_kva"] = "99"
    lines = errors(write(tmp_path, mutate))
    assert lines[0].startswith(f"{tmp_path / 'bad.yaml'}: templates.0.contracted_kva: '99' has "
                               "no entry in tariffs.fixed_eur_per_day; allowed: 6.90, 10.35")
    assert "templates.1: unknown EV model 'tesla_cybertruck'; allowed: tesla_model3_sr_plus" \
        in lines[1]


def test_counts_must_add_up(tmp_path):
    path = write(tmp_path, lambda r: r["templates"][0]["battery"]["counts"].update(
        tesla_powerwall2=5))
    assert errors(path) == [(f"{path}: templates.0.battery.counts: add up to 7, "
                            "must equal count 3")]


def test_horizon_must_be_one_day(tmp_path):
    path = write(tmp_path, lambda r: r["horizon"].update(periods=48))
    assert errors(path) == [(f"{path}: horizon: periods × period_minutes must be 1440 (one day), "
                            "got 48 × 15")]


def test_bad_override_and_yaml(tmp_path):
    assert errors(SCENARIOS / "tiny.yaml", ["market.p2v"])[0].endswith(
        "--set 'market.p2v': expected key.path=value")
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    assert errors(bad)[0].startswith(f"{bad}: not valid YAML")


def test_cli_exit_code_2_and_one_line_per_problem(tmp_path, capsys):
    path = write(tmp_path, lambda r: r.update(colour="blue", seed=-1))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith(f"{path}: ") for line in err)
    assert main(["run", str(path), "--quiet", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_set_turns_p2v_off():
    assert load_scenario(SCENARIOS / "tiny.yaml", ["market.p2v=false"]).market.p2v is False


def test_a_scenario_without_agents_is_refused(tmp_path):
    """No templates and no agents, or only a network_loads template on feeder11 (built in
    grid/networks.py with no loads of its own): nothing to run a market with."""
    empty = write(tmp_path, lambda r: r.pop("templates"))
    assert errors(empty) == [(f"{empty}: templates: the scenario has no agents (no templates "
                              "and no explicit agents); allowed: at least one template or "
                              "explicit agent")]
    loadless = write(tmp_path, lambda r: r.update(
        grid={"network": "feeder11"}, templates=[{"kind": "network_loads", "shape": [1] * 24}]))
    assert errors(loadless) == [(f"{loadless}: templates: the scenario has no agents "
                                 "(network_loads on feeder11 make none: the network has no "
                                 "loads of its own); allowed: at least one agent, from a "
                                 "network with loads, another template or an explicit agent")]


def test_every_network_reference_is_checked_against_the_network(tmp_path):
    """feeder11 has buses 0–10 and lines 0–9 (FEEDER11_LINES, ten lines L1–L10): every
    index outside them is named with its field, each on its line."""
    def mutate(r):
        r["grid"] = {"network": "feeder11", "ampacity_ka": {9: 0.1, 10: 0.1},
                     "buses": {"p1": 10, "p2": 11}}
        r["cosimulators"] = [{"name": "Watch", "python": "lemgrid.scenarios.cosim.monitor:VoltageMonitor",
                              "model": "Monitor", "entities": [{"path": "{out}/v.csv"}],
                              "links": [{"from": "bus:11", "attrs": {"vm_pu": "vm_pu"}},
                                        {"from": "line:9", "attrs": {"loading_pct": "x"}},
                                        {"from": "line:12", "attrs": {"loading_pct": "x"}}]}]
    path = write(tmp_path, mutate)
    assert errors(path) == [
        f"{path}: grid.ampacity_ka.10: feeder11 has no line 10; allowed: lines 0–9",
        f"{path}: grid.buses.p2: feeder11 has no bus 11; allowed: buses 0–10",
        (f"{path}: cosimulators.0.links.0.from: co-simulator Watch: feeder11 has no bus 11; "
         "allowed: buses 0–10"),
        (f"{path}: cosimulators.0.links.2.from: co-simulator Watch: feeder11 has no line 12; "
         "allowed: lines 0–9")]


def test_one_network_build_per_validation(monkeypatch):
    """mosaik_ecosystem names buses and lines of feeder11 four times (grid.buses and three
    links), here with an ampacity line too: the network is built once; tiny names none and
    builds none."""
    from lemgrid.grid import networks
    from lemgrid.scenarios.schema import checks as schema

    built = []
    monkeypatch.setattr(networks, "load_network", lambda name: built.append(name)
                        or load_network(name))
    schema._plain_network.cache_clear()
    try:
        load_scenario(SCENARIOS / "mosaik_ecosystem.yaml", ["grid.ampacity_ka={9: 0.1}"])
        assert built == ["feeder11"]
        built.clear()
        load_scenario(SCENARIOS / "tiny.yaml")
        assert built == []
    finally:
        schema._plain_network.cache_clear()


def test_index_spans():
    """Runs of consecutive indices, worked out by hand."""
    assert _spans([8, 0, 1, 2, 5, 7]) == "0–2, 5, 7–8"
    assert _spans(range(44)) == "0–43"
    assert _spans([]) == "none"


def test_switching_the_mechanism_leaves_the_old_ones_parameters_behind():
    """antunes2024 is an ADMM market (network, rho0, residual_tolerance, max_rounds 500).
    Switched to the P2V market: those are left behind, its round limit too (the P2V
    market's own default, 5, applies), while the fields every market has stay and what
    the command line sets is kept and checked against the new mechanism."""
    s = load_scenario(SCENARIOS / "antunes2024.yaml", ["market.mechanism=p2v_rules"])
    assert s.market.mechanism == "p2v_rules" and s.market.max_rounds is None
    assert s.market.rounds == 5 and s.market.network_model == "socp"
    s = load_scenario(SCENARIOS / "antunes2024.yaml",
                      ["market.mechanism=p2v_rules", "market.max_rounds=3"])
    assert s.market.rounds == 3
    with pytest.raises(ScenarioError, match="market.rho0: not a parameter of p2v_rules"):
        load_scenario(SCENARIOS / "antunes2024.yaml",
                      ["market.mechanism=p2v_rules", "market.rho0=50"])


@pytest.mark.parametrize("argv", [["--help"], ["validate", "scenarios/tiny.yaml"]])
def test_the_command_line_answers_without_the_heavy_libraries(argv):
    """``lemgrid --help`` and ``lemgrid validate`` of a scenario without library profiles
    import neither pandas (0.3 s), pandapower (1.4 s), Pyomo nor mosaik: what kept them
    at 2.3-2.8 s (measured in docs/benchmarks.md#the-command-line)."""
    import subprocess
    import sys

    code = ("import sys\nfrom lemgrid.scenarios.cli import main\n"
            f"sys.argv = ['lemgrid', *{argv!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pandas', 'pandapower', 'pyomo', 'mosaik') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
