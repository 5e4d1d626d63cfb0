"""docker-compose.yml: valid Compose (``docker-compose config`` where installed, else the
Compose Specification's JSON schema), and every service's command is a valid ``lemgrid``
command whose topology fits the others: the runner points at the coordinator, grid and
the agent hosts' service, replicated AGENT_HOSTS times."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lemgrid.scenarios.cli import _parser
from lemgrid.scenarios.schema import load_scenario, resolve_scenario

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("data") / "compose_spec.json"
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def dotenv() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / ".env").read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution."""
    return VARIABLE.sub(lambda m: env.get(m[1]) or (m[2] or ""), text)


@pytest.fixture(scope="module")
def services():
    return yaml.safe_load(interpolate(COMPOSE.read_text(), dotenv()))["services"]


def test_compose_file_is_valid():
    if shutil.which("docker-compose"):
        done = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"],
                              check=False, cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
    import json

    from jsonschema import Draft201909Validator, ValidationError
    validator = Draft201909Validator(json.loads(SCHEMA.read_text()))
    # as Compose does: variables interpolated (from .env), then the schema
    raw = yaml.safe_load(interpolate(COMPOSE.read_text(), dotenv()))
    validator.validate(raw)
    raw["services"]["grid"]["healthcheck"]["retries"] = "many"  # the schema does check
    with pytest.raises(ValidationError):
        validator.validate(raw)


def args_of(service: dict):
    return _parser().parse_args(shlex.split(service["command"]))


def test_every_service_runs_a_valid_lemgrid_command(services):
    commands = {name: args_of(svc).command for name, svc in services.items()}
    assert commands == {"coordinator": "coordinator", "agents": "serve-agents",
                        "grid": "grid", "runner": "run"}
    for svc in services.values():
        assert "healthcheck" in svc or svc is services["runner"]
        assert any(v.endswith(":/results") for v in svc["volumes"])


def test_runner_points_at_the_services_and_shards_cover_the_community(services):
    """The runner's resolved scenario names coordinator, grid and agent hosts as defined;
    the shards are 0/n .. n-1/n of the same scenario with the same settings."""
    run = args_of(services["runner"])
    s = load_scenario(resolve_scenario(run.scenario), run.overrides)
    assert s.name == dotenv()["SCENARIO"]
    coord = args_of(services["coordinator"])
    port = coord.endpoint.rsplit(":", 1)[1]
    assert s.runtime.coordinator == f"tcp://coordinator:{port}"
    assert s.runtime.grid_host == f"grid:{args_of(services['grid']).port}"
    agents = services["agents"]
    a = args_of(agents)
    assert a.host == "0.0.0.0" and a.scenario == run.scenario
    replicas = int(dotenv()["AGENT_HOSTS"])
    assert agents["deploy"]["replicas"] == replicas  # AGENT_HOSTS containers, each a shard
    assert a.shard == f"agents/{replicas}"  # NAME/n: its position among the replicas
    assert s.runtime.agent_service == f"agents:{a.port}"
    assert s.runtime.agent_service_replicas == replicas and s.runtime.agent_hosts == []
    assert coord.scenario == run.scenario and coord.out == run.out
    timeout = [o for o in coord.overrides if o.startswith("runtime.registration_timeout_s")]
    assert timeout and timeout[0] in run.overrides


def test_the_agent_hosts_scale_without_editing_the_file():
    """AGENT_HOSTS=5 gives five replicas of the agents service, each told it is one of five,
    and a runner expecting five."""
    env = dotenv() | {"AGENT_HOSTS": "5"}
    services = yaml.safe_load(interpolate(COMPOSE.read_text(), env))["services"]
    assert services["agents"]["deploy"]["replicas"] == 5
    assert args_of(services["agents"]).shard == "agents/5"
    run = args_of(services["runner"])
    s = load_scenario(resolve_scenario(run.scenario), run.overrides)
    assert s.runtime.agent_service_replicas == 5


def test_a_replica_finds_its_shard_by_its_address():
    """A replica's shard is the position of the address it can bind among the service's;
    a name that resolves to too few or too many is one line."""
    from lemgrid.scenarios.run.topology import own_position, parse_shard, replica_addresses

    assert own_position(["10.255.255.1", "127.0.0.1"]) == 1  # only loopback is ours
    assert replica_addresses("127.0.0.1", 1) == ["127.0.0.1"]  # a name given as an address
    assert parse_shard("127.0.0.1/1") == (0, 1)
    with pytest.raises(ValueError, match="127.0.0.1 resolves to 1 of 2 replicas' addresses "
                       "after 2 tries"):
        parse_shard("127.0.0.1/2", 2, 0.01)
    with pytest.raises(ValueError, match="none of 10.255.255.1 is an address of this host"):
        own_position(["10.255.255.1"])


def test_agent_service_or_agent_hosts_not_both():
    from lemgrid.scenarios.schema import ScenarioError

    with pytest.raises(ScenarioError, match="give it or runtime.agent_hosts, not both"):
        load_scenario(resolve_scenario("tiny"), ["runtime.agent_service=agents:5600",
                                                 "runtime.agent_hosts=[a:1]"])


def test_an_agent_service_that_never_resolves_is_one_line(tmp_path, capsys):
    from lemgrid.scenarios.cli import main

    code = main(["run", "tiny", "--out", str(tmp_path / "o"), "--quiet",
                 "--set", "runtime.agent_service=nosuchservice.invalid:5600",
                 "--set", "runtime.connect_retries=2", "--set", "runtime.connect_retry_s=0.01"])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: runtime.agent_service: nosuchservice.invalid resolves to 0 of 1 replicas' "
        "addresses after 2 tries, 0.01 s apart")
