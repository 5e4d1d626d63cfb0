"""docker-compose.yml played without Docker: every service in its own network namespace
(its own host with its own address and loopback, the compose service names resolved
through a per-namespace hosts file), joined by a bridge; each runs its compose command,
health checks gate the runner as ``depends_on: service_healthy`` does. The market result
must equal the in-process runtime's on the same scenario.

Needs root and iproute2 (``ip netns``); skipped where the machine does not allow it.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from lemgrid.scenarios.cli import main

from .conftest import SCENARIOS
from .test_compose import COMPOSE, dotenv, interpolate

SUBNET = "10.231.{}.{}"  # 10.231.<net>.<host>/24
HEALTHY_S = 60.0  # every service healthy within this
RUN_S = 240.0  # the runner finishes within this
SETTINGS = "--set runtime.agents_per_process=2"  # tiny: 3 process groups over 2 shards


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _netns_allowed() -> bool:
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    name = f"lgprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", name)
    except (subprocess.CalledProcessError, OSError):
        return False
    _ip("netns", "del", name)
    return True


pytestmark = pytest.mark.skipif(not _netns_allowed(), reason="network namespaces not allowed")


class Hosts:
    """One namespace per container (a service's replicas: ``NAME#i``), veth-linked to a
    bridge in a hub namespace; the service name resolves to all its replicas."""

    def __init__(self, names: list[str]):
        tag = uuid.uuid4().hex[:5]
        self.hub, self.ns = f"lg{tag}hub", {n: f"lg{tag}{i}" for i, n in enumerate(names)}
        net = int(tag, 16) % 250 + 1
        self.ip = {n: SUBNET.format(net, i + 2) for i, n in enumerate(names)}
        try:
            self._build(tag)
        except BaseException:
            self.close()
            raise

    def _build(self, tag: str) -> None:
        _ip("netns", "add", self.hub)
        self._in(self.hub, "link", "add", "br0", "type", "bridge")
        self._in(self.hub, "link", "set", "br0", "up")
        hosts = "127.0.0.1 localhost\n" + "".join(f"{a} {n.split('#')[0]}\n"
                                                   for n, a in self.ip.items())
        for i, (name, ns) in enumerate(self.ns.items()):
            _ip("netns", "add", ns)
            Path(f"/etc/netns/{ns}").mkdir(parents=True, exist_ok=True)
            Path(f"/etc/netns/{ns}/hosts").write_text(hosts)
            _ip("link", "add", f"lg{tag}v{i}", "type", "veth", "peer", "name", f"lg{tag}p{i}")
            _ip("link", "set", f"lg{tag}v{i}", "netns", ns)
            _ip("link", "set", f"lg{tag}p{i}", "netns", self.hub)
            self._in(self.hub, "link", "set", f"lg{tag}p{i}", "master", "br0", "up")
            self._in(ns, "link", "set", "lo", "up")
            self._in(ns, "addr", "add", f"{self.ip[name]}/24", "dev", f"lg{tag}v{i}")
            self._in(ns, "link", "set", f"lg{tag}v{i}", "up")

    @staticmethod
    def _in(ns: str, *args: str) -> None:
        _ip("-n", ns, *args)

    def popen(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns[name], *argv], **kwargs)

    def close(self) -> None:
        for ns in [*self.ns.values(), self.hub]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


def _services(results: Path) -> dict:
    env = dotenv() | {"SCENARIO": "tiny", "LEMGRID_SET": SETTINGS}
    text = interpolate(COMPOSE.read_text(), env).replace("/results", str(results))
    return yaml.safe_load(text)["services"]


def _lemgrid(command: str) -> list[str]:
    return [sys.executable, "-m", "lemgrid.scenarios.cli", *shlex.split(command)]


def _wait_healthy(hosts: Hosts, name: str, test: list[str], proc) -> None:
    deadline = time.monotonic() + HEALTHY_S
    argv = [sys.executable if a == "python" else a for a in test[1:]]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}: {proc.communicate()[1]}")
        if hosts.popen(name, argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL).wait(timeout=10) == 0:
            return
        time.sleep(0.2)
    pytest.fail(f"{name} not healthy within {HEALTHY_S:g} s")


def _containers(services: dict) -> dict[str, str]:
    """Container → its service: ``NAME#i`` for each of a service's deploy.replicas."""
    out = {}
    for name, svc in services.items():
        replicas = svc.get("deploy", {}).get("replicas")
        out |= ({f"{name}#{i}": name for i in range(replicas)} if replicas else {name: name})
    return out


def test_compose_services_on_separate_hosts(tmp_path):
    results = tmp_path / "results"
    services = _services(results)
    containers = _containers(services)
    assert sum(s == "agents" for s in containers.values()) == 2  # .env's AGENT_HOSTS
    hosts = Hosts(list(containers))
    procs = {}
    try:
        for name, service in containers.items():
            if service != "runner":
                procs[name] = hosts.popen(name, _lemgrid(services[service]["command"]),
                                          text=True, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE)
        for name, dep in services["runner"]["depends_on"].items():
            if dep["condition"] == "service_healthy":
                _wait_healthy(hosts, name, services[name]["healthcheck"]["test"], procs[name])
        runner = hosts.popen("runner", _lemgrid(services["runner"]["command"]), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = runner.communicate(timeout=RUN_S)
        assert runner.returncode == 0, err
        codes = {n: p.wait(timeout=60) for n, p in procs.items()}
    finally:
        for p in procs.values():
            p.kill()
            p.communicate()
        hosts.close()
    assert codes == dict.fromkeys(procs, 0)
    got = json.loads((results / "tiny" / "summary.json").read_text())
    ref = tmp_path / "ref"
    assert main(["run", str(SCENARIOS / "tiny.yaml"), "--out", str(ref), "--quiet",
                 "--runtime", "inprocess"]) == 0
    want = json.loads((ref / "summary.json").read_text())
    assert got["processes"]["agents"] == 3 and got["failed_agents"] == {}
    assert got["costs_eur"]["total"] == pytest.approx(want["costs_eur"]["total"], rel=1e-12)
    assert got["market"]["rounds"] == want["market"]["rounds"]
    peers = {json.loads(line)["peer"].split("/")[-1] for line in  # host-…/p1: p1
             (results / "tiny" / "messages.jsonl").read_text().splitlines()}
    assert {"p1", "p2", "p3", "ev1", "ev2"} <= peers
