"""status and announce-services end to end on the testbed: after `create`, each node runs a BGP
speaker (BIRD) configured from the Calico objects v6kube applied, the way calico-node would; the
calicoctl stand-in reports each node's sessions from that BIRD (CalicoNodeStatus). status must
say healthy, then name a session that a wrong password breaks; announce-services changes what is
announced, refuses a budget overflow before applying anything, and makes a service Local."""

from __future__ import annotations

import json
from ipaddress import IPv6Network

import pytest
import yaml

from lifecycle_helpers import DownloadServer, api_dir, cli_env, run_cli, static_cluster, write_cluster
from testbed.bgp import nth_block, speaker_config, start_speaker, wait_until
from testbed.lab import BGP_PASSWORD

pytestmark = pytest.mark.testbed


@pytest.fixture
def cluster(lab, new_node, tmp_path):
    server = DownloadServer(lab, tmp_path / "www")
    nodes = [new_node(), new_node()]
    path = write_cluster(tmp_path / "cluster.yaml", static_cluster(lab, "st", nodes))
    env = cli_env(server.env(tmp_path / "cache"))
    state = tmp_path / "state"
    created = run_cli(["create", str(path), "--state-dir", str(state)], env)
    assert created.returncode == 0, created.stderr
    speakers = []
    yield nodes, path, env, state, speakers
    for speaker in speakers:
        speaker.stop()
    server.close()


def applied_objects(api) -> str:
    """What calico-node would read: the Calico objects v6kube applied, and the password Secret."""
    docs = [json.loads(p.read_text()) for p in sorted((api / "calico").glob("*/*.json"))]
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "v6kube-bgp-password"},
                 "stringData": {"password": BGP_PASSWORD}})
    return yaml.safe_dump_all(docs)


def status(path, env, state):
    result = run_cli(["status", str(path), "--output", "json", "--state-dir", str(state)], env)
    return result.returncode, json.loads(result.stdout), result.stderr


def test_status_healthy_then_degraded_and_announce_services(lab, cluster):
    nodes, path, env, state, speakers = cluster
    api = api_dir(lab, nodes[0])
    pods = IPv6Network(json.loads((state / "state.json").read_text())["facts"]["subnets"]["pods"])
    blocks = {n.name: nth_block(pods, 122, i) for i, n in enumerate(nodes)}
    (api / "blockaffinities.json").write_text(json.dumps({"items": [
        {"apiVersion": "crd.projectcalico.org/v1", "kind": "BlockAffinity",
         "spec": {"node": n, "cidr": str(b), "state": "confirmed", "deleted": "false"}} for n, b in blocks.items()]}))
    objects = applied_objects(api)
    for node in nodes:
        speakers.append(start_speaker(lab, node, speaker_config(objects, node, blocks=[blocks[node.name]])))

    def healthy():
        code, doc, _ = status(path, env, state)
        return doc if code == 0 else None

    doc = wait_until(healthy, 30, "status healthy")
    assert doc["healthy"] and doc["degraded"] == [] and [n["name"] for n in doc["nodes"]] == [n.name for n in nodes]
    for node in doc["nodes"]:
        assert node["ready"] and node["reachable"]
        assert sorted(s["peer"] for s in node["sessions"]) == sorted(str(p) for p in lab.peers)
        assert all(s["established"] for s in node["sessions"])
        assert {p["prefix"] for p in node["prefixes"]} >= {str(blocks[node["name"]])}

    # a wrong password on one node: status exits 1 and names the node and its peers
    broken = nodes[1]
    speakers[1].reconfigure(speaker_config(objects.replace(BGP_PASSWORD, "wrong-password"), broken,
                                           blocks=[blocks[broken.name]]))

    def degraded():
        code, doc, _ = status(path, env, state)
        return doc if code == 1 else None

    doc = wait_until(degraded, 60, "status degraded")
    assert any(reason.startswith(f"{broken.name}: BGP session with {lab.peers[0]}") for reason in doc["degraded"])
    assert not any(reason.startswith(nodes[0].name) for reason in doc["degraded"])

    # announce-services: one more external range, applied once
    external = str(IPv6Network((int(pods.network_address) + 2 ** 64 * 4, 64)))  # a free /64 of the block
    args = ["announce-services", str(path), "--state-dir", str(state)]
    first = run_cli([*args, "--external-ips", external], env)
    assert first.returncode == 0, first.stderr
    assert f"serviceExternalIPs: + {external}" in first.stderr
    config = json.loads((api / "calico" / "BGPConfiguration" / "default.json").read_text())
    assert [e["cidr"] for e in config["spec"]["serviceExternalIPs"]] == [external]
    assert config["spec"]["nodeToNodeMeshEnabled"] is False and config["spec"]["asNumber"] == 65000
    again = run_cli([*args, "--external-ips", external], env)
    assert again.returncode == 0 and "nothing changed" in again.stderr

    # over the budget (10 prefixes a node): refused before anything is applied
    many = [str(IPv6Network((int(pods.network_address) + 2 ** 64 * (8 + i), 64))) for i in range(9)]
    before = (api / "calico" / "BGPConfiguration" / "default.json").read_text()
    over = run_cli([*args, *[x for m in many for x in ("--external-ips", m)]], env)
    assert over.returncode == 2 and "limit 10" in over.stderr, over.stderr
    assert (api / "calico" / "BGPConfiguration" / "default.json").read_text() == before

    # a ClusterIP service made Local: its type changes, and the user is told why
    (api / "services" / "default").mkdir(parents=True)
    (api / "services" / "default" / "web.json").write_text(json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": "fd00::10", "clusterIPs": ["fd00::10"]}}))
    local = run_cli([*args, "--external-ips", external, "--local", "default/web"], env)
    assert local.returncode == 0, local.stderr
    assert "changing the type to NodePort" in local.stderr
    patch = (api / "patches.log").read_text()
    assert "patch service -n default web --type merge" in patch and '"externalTrafficPolicy": "Local"' in patch
