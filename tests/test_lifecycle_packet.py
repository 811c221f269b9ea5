"""create, join-worker --count and destroy with the Packet provider: the real CLI against the fake
Metal API (a real HTTP server on loopback) whose devices become testbed nodes. A device "boots"
when the fake has it: the test installs the host key from the device's cloud-init userdata into
the node's sshd, as cloud-init would, and only then starts sshd (SSH is refused until then)."""

from __future__ import annotations

import json

import pytest
import yaml

from lifecycle_helpers import (BGP_ENV, Boot, DownloadServer, api_dir, cli_env, fake_metal_for, leaks, run_cli,
                               write_cluster)
from testbed.lab import BGP_PASSWORD

pytestmark = pytest.mark.testbed
TOKEN = "lifecycle-test-token-0123456789abcdef"
NAMES = ("cp-0", "w-0", "w-1", "w-2")  # w-2 only exists once join-worker --count 1 asks for it


@pytest.fixture
def packet(lab, new_node, tmp_path):
    nodes = {name: new_node(name=name, os_name="ubuntu-24.04", start_sshd=False) for name in NAMES}
    api = fake_metal_for(lab, nodes, TOKEN).start()
    boot = Boot(lab, api, nodes)
    boot.start()
    downloads = DownloadServer(lab, tmp_path / "www")
    yield api, nodes, downloads
    boot.stop.set()
    downloads.close()
    api.stop()


def live(api):
    with api.lock:
        return sorted(d["hostname"] for d in api.devices.values() if not d.get("deleted"))


def packet_cluster(lab, api, tmp_path, downloads):
    cluster = {"name": "pk", "provider": {"type": "packet", "project": api.project_id, "bgp_password_env": BGP_ENV,
                                          "operating_system": "ubuntu_24_04"},
               "nodes": [{"name": "cp-0", "role": "control-plane"}, {"name": "w-0", "role": "worker"},
                         {"name": "w-1", "role": "worker"}],
               "ssh": {"private_key": str(lab.client_key), "address_family": "ipv6", "connect_timeout": 60,
                       "command_timeout": 120}}
    path = write_cluster(tmp_path / "cluster.yaml", cluster)
    state = tmp_path / "state"
    env = cli_env({**downloads.env(tmp_path / "cache"), "METAL_AUTH_TOKEN": TOKEN, "METAL_API_URL": api.url})
    return path, state, env, ["--state-dir", str(state)]


def test_create_join_destroy_packet(lab, packet, tmp_path):
    api, nodes, downloads = packet
    path, state, env, args = packet_cluster(lab, api, tmp_path, downloads)

    first = run_cli(["create", str(path), *args], env)
    assert first.returncode == 0, first.stderr
    assert live(api) == ["cp-0", "w-0", "w-1"]
    assert sorted(p.name for p in (api_dir(lab, nodes["cp-0"]) / "nodes").iterdir()) == ["cp-0", "w-0", "w-1"]
    config = yaml.safe_load((state / "kubeconfig").read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"https://[{nodes['cp-0'].address}]:6443"
    with api.lock:  # the cluster's subnets are recorded where another cluster's run reads them
        tags = [t for d in api.devices.values() for t in d["tags"] if t.startswith("v6kube-subnet:")]
    assert len(tags) == 2 * 3 and BGP_PASSWORD not in first.stdout + first.stderr

    posts = len(api.recorded("POST"))
    again = run_cli(["create", str(path), *args], env)
    assert again.returncode == 0, again.stderr
    assert len(api.recorded("POST")) == posts  # nothing created twice
    assert again.stderr.count("done already (confirmed)") == 9

    # status: the provider's side of every session, and what its routers learned from each node
    services = json.loads((state / "state.json").read_text())["facts"]["subnets"]["services"]
    with api.lock:
        cp_id = next(i for i, d in api.devices.items() if d["hostname"] == "cp-0" and not d.get("deleted"))
    api.set_session_status(cp_id, "up,up", [services])
    result = run_cli(["status", str(path), "--output", "json", *args], env)
    doc = json.loads(result.stdout)
    assert result.returncode == 1  # no calico-node answers here: the node side is unknown
    for node in doc["nodes"]:
        provider = [x for x in node["sessions"] if x["side"] == "provider"]
        assert len(provider) == 1 and provider[0]["state"].startswith(("up", "unknown"))
        service = next(x for x in node["prefixes"] if x["kind"] == "cluster-ips")
        assert service["prefix"] == services
        assert service["seen"] is (node["name"] == "cp-0")
    assert any(r.startswith(f"w-0: {services} (cluster-ips) not announced to provider") for r in doc["degraded"])

    joined = run_cli(["join-worker", str(path), "--count", "1", *args], env)
    assert joined.returncode == 0, joined.stderr
    assert live(api) == ["cp-0", "w-0", "w-1", "w-2"]
    assert (api_dir(lab, nodes["cp-0"]) / "nodes" / "w-2").exists()
    posts = len(api.recorded("POST"))
    again = run_cli(["join-worker", str(path), "--count", "1", *args], env)  # the same N: nothing to add
    assert again.returncode == 0 and "nothing to add" in again.stderr
    assert live(api) == ["cp-0", "w-0", "w-1", "w-2"] and len(api.recorded("POST", r"/projects/[^/]+/devices")) == 4

    gone = run_cli(["destroy", str(path), "--yes", *args], env)
    assert gone.returncode == 0, gone.stderr
    assert live(api) == [] and not state.exists()


def test_create_survives_api_faults_and_replaces_a_failed_device(lab, packet, tmp_path):
    api, nodes, downloads = packet
    path, state, env, args = packet_cluster(lab, api, tmp_path, downloads)
    devices = r"/projects/[^/]+/devices"
    api.add_fault("POST", devices, status=500, after=True)  # acted on, but the client sees a 500
    api.add_fault("GET", devices, status=429, headers={"Retry-After": "1"})
    api.add_fault("GET", r"/projects/[^/]+/bgp-config", reset=True)
    api.fail_device("w-0", vanish=False)
    failed = run_cli(["create", str(path), *args], env)
    assert failed.returncode == 1 and "w-0" in failed.stderr and f"v6kube create {path}" in failed.stderr
    assert live(api) == ["cp-0", "w-0", "w-1"]  # the 500 on a POST that happened made no duplicate

    with api.lock:
        api.failing.clear()
    resumed = run_cli(["create", str(path), *args], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "ended failed at the provider; replacing it" in resumed.stderr
    assert live(api) == ["cp-0", "w-0", "w-1"]
    assert (api_dir(lab, nodes["cp-0"]) / "nodes" / "w-0").exists()


def test_no_command_leaks_a_secret_on_packet(lab, packet, tmp_path):
    """Every command with --debug against the fake API: the API token, the BGP password, join
    tokens and private host keys (the generated ones go to the API in the userdata) appear nowhere
    in what is printed or written (the kubeconfig aside, which holds its own credentials)."""
    api, nodes, downloads = packet
    path, state, env, args = packet_cluster(lab, api, tmp_path, downloads)
    # an API error that carries the token back: the message built from it must be masked
    api.add_fault("GET", r"/devices/[^/]+/bgp/neighbors", status=403,
                  body={"errors": [f"token {TOKEN} may not read the neighbours"]})
    printed = []
    for command in (["create"], ["create"], ["join-worker", "--count", "1"], ["status", "--output", "json"],
                    ["announce-services"], ["kubeconfig"]):
        result = run_cli([command[0], str(path), *command[1:], "--debug", *args], env)
        printed.append(result.stdout + result.stderr)
    assert "Traceback" in printed[0] and "phase 'bgp' failed" in printed[0] and "***" in printed[0]
    written = {p: p.read_text(errors="replace") for p in state.rglob("*") if p.is_file() and p.name != "kubeconfig"}
    assert any(p.suffix == ".log" for p in written)
    assert run_cli(["destroy", str(path), "--yes", "--debug", *args], env).returncode == 0
    for text in printed:
        assert leaks(text, TOKEN) == [], text[-2000:]
    for file, text in written.items():
        assert leaks(text, TOKEN) == [], file
