"""The cluster file: every invalid file exits 2, names the field, shows no traceback, calls nothing."""

from __future__ import annotations

import copy
import socket
import sys
from pathlib import Path

import pytest
import yaml

from v6kube import cli
from v6kube.config import load_cluster, parse_cluster
from v6kube.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def base(kind: str) -> dict:
    return yaml.safe_load((EXAMPLES / f"{kind}.yaml").read_text())


def edit(kind: str, change) -> str:
    doc = copy.deepcopy(base(kind))
    change(doc)
    return yaml.safe_dump(doc, sort_keys=False)


def setp(path: str, value):
    """A change that sets a dotted path ("nodes.0.name") to value."""

    def change(doc):
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def delp(path: str):
    def change(doc):
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return change


def both(*changes):
    def change(doc):
        for c in changes:
            c(doc)

    return change


# (id, example, change or raw text, field path expected in the message, words expected)
CASES = [
    ("unknown-top-key", "packet", both(delp("nodes"), setp("nodez", [{"name": "a", "role": "worker"}])),
     "nodez", "did you mean 'nodes'"),
    ("unknown-nested-key", "packet", setp("kubernetes.pod_subnett", "auto"), "kubernetes.pod_subnett",
     "did you mean 'pod_subnet'"),
    ("cluster-name-underscore", "packet", setp("name", "my_cluster"), "name", "DNS label"),
    ("node-name-uppercase", "packet", setp("nodes.0.name", "CP-0"), "nodes[0].name", "DNS label"),
    ("node-name-too-long", "packet", setp("nodes.1.name", "w" * 64), "nodes[1].name", "DNS label"),
    ("bad-ipv6-address", "static", setp("nodes.0.address", "2001:db8::zz"), "nodes[0].address", "not an IPv6"),
    ("ipv4-gateway", "static", setp("nodes.0.gateway", "10.0.0.1"), "nodes[0].gateway", "IPv4"),
    ("ipv4-peer", "static", setp("provider.peers.0", "169.254.255.1"), "provider.peers[0]", "IPv4"),
    ("ipv4-resolver", "packet", setp("kubernetes.dns_resolvers.0", "8.8.8.8"), "kubernetes.dns_resolvers[0]", "IPv4"),
    ("ipv4-block", "static", setp("provider.block", "10.0.0.0/8"), "provider.block", "IPv4"),
    ("bad-prefix-length", "packet", setp("kubernetes.pod_subnet", "2001:db8::/129"), "kubernetes.pod_subnet",
     "not an IPv6 prefix"),
    ("host-bits-set", "static", setp("kubernetes.pod_subnet", "2001:db8:0:2a01::1/64"), "kubernetes.pod_subnet",
     "host bits"),
    ("service-too-large", "static", setp("kubernetes.service_subnet", "2001:db8:0:2a02::/100"),
     "kubernetes.service_subnet", "too large"),
    ("service-too-small", "static", setp("kubernetes.service_subnet", "2001:db8:0:2a02::/124"),
     "kubernetes.service_subnet", "too small"),
    ("pod-service-overlap", "static", both(setp("kubernetes.pod_subnet", "2001:db8:0:2a01::/64"),
                                           setp("kubernetes.service_subnet", "2001:db8:0:2a01::/108")),
     "kubernetes.service_subnet", "overlaps"),
    ("pod-too-few-node-ranges", "static", setp("kubernetes.pod_subnet", "2001:db8:0:2a01::/118"),
     "kubernetes.pod_subnet", "node range"),
    ("pod-outside-block", "static", setp("kubernetes.pod_subnet", "2001:db8:0:3000::/64"), "kubernetes.pod_subnet",
     "outside the announced block"),
    ("service-outside-block", "static", setp("kubernetes.service_subnet", "2001:db8:1::/108"),
     "kubernetes.service_subnet", "outside the announced block"),
    ("pod-in-server-64", "static", setp("kubernetes.pod_subnet", "2001:db8:0:2a00::/64"), "kubernetes.pod_subnet",
     "servers' own /64"),
    ("block-size-below-range", "packet", setp("calico.block_size", 112), "calico.block_size", "116"),
    ("block-size-above-range", "packet", setp("calico.block_size", 129), "calico.block_size", "128"),
    ("block-size-too-many-prefixes", "static", setp("calico.block_size", 128), "calico.block_size",
     "prefixes"),
    ("asn-zero", "static", setp("provider.local_asn", 0), "provider.local_asn", "too small: the least allowed is 1"),
    ("asn-too-large", "static", setp("provider.peer_asn", 4294967296), "provider.peer_asn", "too large: the most allowed is 4294967294"),
    ("asn-equal", "static", setp("provider.peer_asn", 65000), "provider.peer_asn", "eBGP"),
    ("duplicate-node-names", "packet", setp("nodes.2.name", "worker-0"), "nodes[2].name", "duplicate"),
    ("duplicate-node-addresses", "static", setp("nodes.2.address", "2001:db8:0:2a00::5"), "nodes[2].address",
     "duplicate"),
    ("token-in-file", "packet", setp("provider.token", "abc123secretvalue"), "provider.token", "METAL_AUTH_TOKEN"),
    ("auth-token-in-file", "packet", setp("provider.auth_token", "abc123secretvalue"), "provider.auth_token",
     "secrets"),
    ("password-in-file", "static", setp("provider.bgp_password", "Abcdef12345"), "provider.bgp_password",
     "secrets"),
    ("k8s-too-old", "packet", setp("kubernetes.version", "1.30"), "kubernetes.version", "1.31"),
    ("k8s-version-format", "packet", setp("kubernetes.version", "v1.33"), "kubernetes.version", "not a Kubernetes minor"),
    ("unknown-provider", "packet", setp("provider.type", "aws"), "provider.type", "'aws' is not a provider type"),
    ("packet-missing-project", "packet", delp("provider.project"), "provider.project", "missing"),
    ("no-nodes", "packet", setp("nodes", []), "nodes", "at least 1"),
    ("two-control-planes", "packet", setp("nodes.1.role", "control-plane"), "nodes", "exactly one"),
    ("bad-role", "packet", setp("nodes.1.role", "master"), "nodes[1].role", "control-plane"),
    ("static-missing-address", "static", delp("nodes.0.address"), "nodes[0].address", "required"),
    ("packet-node-with-address", "packet", setp("nodes.0.address", "2001:db8::3"), "nodes[0].address",
     "not allowed"),
    ("gateway-off-link", "static", setp("nodes.0.gateway", "2001:db8:9::1"), "nodes[0].gateway", "not on the"),
    ("ssh-port-range", "packet", setp("ssh.port", 70000), "ssh.port", "65535"),
    ("ssh-address-family", "packet", setp("ssh.address_family", "ipv5"), "ssh.address_family", "auto"),
    ("billing-cycle", "packet", setp("provider.billing_cycle", "weekly"), "provider.billing_cycle", "hourly"),
    ("external-ips-outside-block", "static", setp("announce.service_external_ips", ["2001:db8:5::/112"]),
     "announce.service_external_ips[0]", "outside"),
    ("yaml-syntax", "packet", "name: seed\nnodes: [\n", "line", "YAML syntax"),
    ("not-a-mapping", "packet", "- just\n- a list\n", "(file)", "mapping"),
    ("k8s-version-unquoted", "packet", "name: s\nprovider: {type: packet, project: 0c6a1d3e-2b4f-4d8a-9c71-5e3f2a1b7c90}\n"
                                       "nodes: [{name: cp, role: control-plane}]\nkubernetes: {version: 1.30}\n",
     "kubernetes.version", 'quote it, e.g. "1.33"'),
    ("k8s-version-leading-zero", "packet", setp("kubernetes.version", "1.031"), "kubernetes.version",
     "without leading zeros"),
    ("resolver-unspecified", "packet", setp("kubernetes.dns_resolvers.0", "::"), "kubernetes.dns_resolvers[0]",
     "unspecified"),
    ("resolver-multicast", "packet", setp("kubernetes.dns_resolvers.1", "ff02::1"), "kubernetes.dns_resolvers[1]",
     "multicast"),
    ("resolver-loopback", "packet", setp("kubernetes.dns_resolvers.0", "::1"), "kubernetes.dns_resolvers[0]",
     "loopback"),
    ("resolver-link-local", "packet", setp("kubernetes.dns_resolvers.0", "fe80::53"), "kubernetes.dns_resolvers[0]",
     "link-local"),
    ("resolver-ipv4-mapped", "packet", setp("kubernetes.dns_resolvers.0", "::ffff:8.8.8.8"),
     "kubernetes.dns_resolvers[0]", "IPv4-mapped form of 8.8.8.8"),
    ("duplicate-peers", "static", setp("provider.peers", ["2001:db8:ffff::e", "2001:db8:ffff:0::e"]),
     "provider.peers[1]", "duplicate peer 2001:db8:ffff::e"),
    ("peer-in-pod-subnet", "static", setp("provider.peers.1", "2001:db8:0:2a01::1"), "provider.peers[1]",
     "inside the pod subnet 2001:db8:0:2a01::/64"),
    ("peer-in-service-subnet", "static", setp("provider.peers.0", "2001:db8:0:2a02::e"), "provider.peers[0]",
     "inside the service subnet 2001:db8:0:2a02::/108"),
    ("static-key-under-packet", "packet", setp("provider.peers", ["2001:db8::1"]), "provider.peers",
     "'peers' is only valid with provider type static"),
    ("packet-subnet-outside-assumed-block", "packet", setp("kubernetes.pod_subnet", "2001:db8:1::/64"),
     "kubernetes.pod_subnet", "2001:db8:0:2a00::/56 is only assumed offline: pass --block"),
    ("project-not-a-uuid", "packet", setp("provider.project", "my-project"), "provider.project",
     "'my-project' is not a project UUID"),
    ("static-block-too-large", "static", setp("provider.block", "2001:db8::/32"), "provider.block",
     "too large for a cluster block"),
    ("static-block-ula-seven", "static", setp("provider.block", "fc00::/7"), "provider.block", "too large"),
    ("static-block-multicast", "static", setp("provider.block", "ff00::/56"), "provider.block", "multicast prefix"),
    ("static-block-link-local", "static", setp("provider.block", "fe80::/64"), "provider.block", "link-local prefix"),
    ("static-block-unspecified", "static", setp("provider.block", "::/64"), "provider.block", "not a global unicast"),
    ("node-address-loopback", "static", setp("nodes.0.address", "::1"), "nodes[0].address", "loopback"),
    ("node-address-link-local", "static", setp("nodes.0.address", "fe80::3"), "nodes[0].address", "link-local"),
    ("gateway-multicast", "static", setp("nodes.0.gateway", "ff02::2"), "nodes[0].gateway", "multicast"),
    ("peer-link-local", "static", setp("provider.peers.0", "fe80::e"), "provider.peers[0]", "link-local"),
    ("pod-subnet-multicast", "packet", setp("kubernetes.pod_subnet", "ff00::/64"), "kubernetes.pod_subnet",
     "multicast prefix"),
    ("external-ips-link-local", "packet", setp("announce.service_external_ips", ["fe80::/112"]),
     "announce.service_external_ips[0]", "link-local prefix"),
    ("prefix-length-silly", "static", setp("nodes.0.prefix_length", 8), "nodes[0].prefix_length",
     "the least allowed is 32"),
    ("timeout-a-year", "packet", setp("ssh.connect_timeout", 31536000), "ssh.connect_timeout", "the most allowed is 86400"),
    ("metro-pattern", "packet", setp("provider.metro", "dallas"), "provider.metro", "'dallas' does not have the right form"),
    ("address-off-the-shared-gateways-link", "static", setp("nodes.1.address", "2001:db8:0:2b00::5"), "nodes[1].address",
     "is not on the link of its gateway 2001:db8:0:2a00::1"),
    ("unquoted-sexagesimal", "static", "name: s\nprovider:\n  type: static\n  block: 2001:db8::/56\n"
                                       "  peers: [1:20]\nnodes: []\n", "provider.peers[0]", "quoted"),
]


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to resolve a name or open a connection."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network call during validation: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def run_cli(argv, capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["v6kube", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_at_least_thirty_invalid_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_invalid_cluster_file(case, tmp_path, capsys, monkeypatch, no_network):
    _, kind, change, field, words = case
    text = change if isinstance(change, str) else edit(kind, change)
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    code, out, err = run_cli(["plan", str(path)], capsys, monkeypatch)
    assert code == 2, err
    assert "Traceback" not in out + err
    assert out == ""  # no partial plan on stdout
    problem_lines = [line for line in err.splitlines() if line.startswith("  - ")]
    assert problem_lines, err
    assert any(line.startswith(f"  - {field}") and words in line for line in problem_lines), err


def test_every_problem_is_reported_at_once(tmp_path):
    doc = base("static")
    doc["name"] = "Bad_Name"
    doc["nodes"][0]["gateway"] = "10.0.0.1"
    doc["calico"]["block_size"] = 200
    doc["kubernetes"]["versoin"] = "1.33"
    doc["provider"]["token"] = "s3cr3t-t0ken-value"
    with pytest.raises(ConfigError) as info:
        parse_cluster(yaml.safe_dump(doc), "c.yaml")
    paths = {p.path for p in info.value.problems}
    assert {"name", "nodes[0].gateway", "calico.block_size", "kubernetes.versoin", "provider.token"} <= paths
    # the secret itself is never echoed back
    assert "s3cr3t-t0ken-value" not in str(info.value)


def test_cross_field_problems_are_reported_together(tmp_path):
    doc = base("static")
    doc["nodes"][2]["name"] = "worker-0"
    doc["nodes"][1]["address"] = doc["nodes"][0]["address"]
    doc["kubernetes"]["service_subnet"] = "2001:db8:0:2a02::/100"
    doc["nodes"].append({"name": "cp-1", "role": "control-plane", "address": "2001:db8:0:2a00::9",
                         "gateway": "2001:db8:0:2a00::1"})
    with pytest.raises(ConfigError) as info:
        parse_cluster(yaml.safe_dump(doc))
    paths = [p.path for p in info.value.problems]
    assert {"nodes", "nodes[2].name", "nodes[1].address", "kubernetes.service_subnet"} <= set(paths)
    (service,) = [p for p in info.value.problems if p.path == "kubernetes.service_subnet"]
    assert "/100 is too large" in service.message and service.hint == "use a prefix length from /108 to /120"


def test_structural_and_cross_field_problems_are_reported_in_one_run():
    doc = base("static")
    doc["nodes"][0]["name"] = "CP_0"  # not a DNS label
    doc["provider"]["frobnicate"] = True  # unknown key
    doc["nodes"][2]["name"] = "worker-0"  # duplicate name
    doc["nodes"][2]["address"] = doc["nodes"][0]["address"]  # duplicate address (of the badly named node)
    doc["kubernetes"]["service_subnet"] = "2001:db8:0:2a02::/100"
    with pytest.raises(ConfigError) as info:
        parse_cluster(yaml.safe_dump(doc))
    found = {p.path: str(p) for p in info.value.problems}
    assert len(info.value.problems) == 5, str(info.value)
    assert "not a DNS label" in found["nodes[0].name"]
    assert "unknown key 'frobnicate'" in found["provider.frobnicate"]
    assert "duplicate node name 'worker-0' (also nodes[1])" in found["nodes[2].name"]
    assert "duplicate address 2001:db8:0:2a00::3 (also nodes[0])" in found["nodes[2].address"]
    assert "too large" in found["kubernetes.service_subnet"]


def test_addressing_checks_run_beside_invalid_fields():
    doc = base("static")
    doc["name"] = "Bad_Name"
    doc["calico"]["block_size"] = "big"  # invalid: the prefix-count check that needs it is skipped
    doc["kubernetes"]["pod_subnet"] = "2001:db8:0:3000::/64"  # outside the block
    doc["announce"] = {"service_external_ips": ["2001:db8:0:2a00::/112"]}  # in the servers' /64
    with pytest.raises(ConfigError) as info:
        parse_cluster(yaml.safe_dump(doc))
    found = {p.path: p.message for p in info.value.problems}
    assert set(found) == {"name", "calico.block_size", "kubernetes.pod_subnet", "announce.service_external_ips[0]"}
    assert "outside the announced block" in found["kubernetes.pod_subnet"]
    assert "the servers' own /64" in found["announce.service_external_ips[0]"]


def test_an_invalid_field_is_reported_once():
    doc = base("static")
    doc["nodes"][0]["address"] = "2001:db8::zz"  # would also count as missing for "required with static"
    with pytest.raises(ConfigError) as info:
        parse_cluster(yaml.safe_dump(doc))
    assert [(p.path, p.message) for p in info.value.problems] == [("nodes[0].address", "'2001:db8::zz' is not an IPv6 address")]


def test_a_key_of_the_other_provider_names_that_provider():
    doc = base("static")
    doc["provider"]["project"] = "0c6a1d3e"
    doc["provider"]["peerz"] = []
    with pytest.raises(ConfigError) as info:
        parse_cluster(yaml.safe_dump(doc))
    found = {p.path: p for p in info.value.problems}
    assert found["provider.project"].message == "'project' is only valid with provider type packet"
    assert "did you mean" not in str(found["provider.project"])
    assert found["provider.peerz"].hint == "did you mean 'peers'?"  # from static's own keys


@pytest.mark.parametrize("resolver", ["fd00:53::1", "2606:4700:4700::1111"])
def test_ula_and_global_resolvers_are_accepted(resolver):
    doc = base("packet")
    doc["kubernetes"]["dns_resolvers"] = [resolver]
    assert str(parse_cluster(yaml.safe_dump(doc)).kubernetes.dns_resolvers[0]) == resolver


@pytest.mark.parametrize("name", ["packet", "static", "minimal", "phoenixnap"])
def test_examples_are_valid(name):
    cluster = load_cluster(EXAMPLES / f"{name}.yaml")
    assert cluster.control_plane.role == "control-plane"


def test_packet_example_is_the_seed_cluster():
    cluster = load_cluster(EXAMPLES / "packet.yaml")
    assert [n.role for n in cluster.nodes] == ["control-plane", "worker", "worker"]
    assert cluster.provider.type == "packet"
    assert cluster.kubernetes.pod_subnet == "auto" and cluster.kubernetes.service_subnet == "auto"


def test_defaults_of_minimal_file():
    cluster = load_cluster(EXAMPLES / "minimal.yaml")
    assert cluster.calico.block_size == 122
    assert cluster.kubernetes.minor >= 31
    assert [str(r) for r in cluster.kubernetes.dns_resolvers] == ["2001:4860:4860::8888", "2001:4860:4860::8844"]
    assert cluster.ssh.trust_on_first_use is False


def test_every_field_has_a_hint():
    from v6kube.config import PROVIDERS, Cluster
    from v6kube.config_messages import FIELD_HINTS
    from pydantic import BaseModel

    def fields(model, prefix):
        for name, field in model.model_fields.items():
            path = f"{prefix}.{name}" if prefix else name
            yield path
            args = (field.annotation, *getattr(field.annotation, "__args__", ()))
            for arg in args:
                inner = getattr(arg, "__args__", ())
                for candidate in (arg, *inner):
                    if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                        yield from fields(candidate, path)

    every = set(fields(Cluster, "")) - {"provider"}
    for model in PROVIDERS.values():
        every |= set(fields(model, "provider"))
    assert every - set(FIELD_HINTS) == set()


def test_the_ipv6_quoting_hint_appears_only_when_it_applies():
    with pytest.raises(ConfigError) as info:
        parse_cluster("name: s\nnodes:\n  - address: 2001:db8::1: x\n")
    assert "quote IPv6 literals" in str(info.value.problems[0].hint)
    with pytest.raises(ConfigError) as info:
        parse_cluster("name: s\nnodes:\n  - name: a\n   role: worker\n")
    assert "IPv6" not in str(info.value.problems[0]) and "indentation" in info.value.problems[0].hint


def test_a_link_local_gateway_is_on_every_link():
    doc = base("static")
    for node in doc["nodes"]:
        node["gateway"] = "fe80::1"
    assert str(parse_cluster(yaml.safe_dump(doc)).nodes[0].gateway) == "fe80::1"


def test_a_gateway_nobody_else_uses_is_the_gateways_problem():
    doc = base("static")
    doc["nodes"][1]["gateway"] = "2001:db8:9::1"
    with pytest.raises(ConfigError) as info:
        parse_cluster(yaml.safe_dump(doc))
    assert [p.path for p in info.value.problems] == ["nodes[1].gateway"]


def test_ula_blocks_are_accepted_for_static_labs():
    doc = base("static")
    doc["provider"]["block"] = "fd00:6b::/56"
    doc["provider"]["peers"] = ["fd00:ffff::e"]
    for i, node in enumerate(doc["nodes"]):
        node["address"], node["gateway"] = f"fd00:6b::{i + 3}", "fd00:6b::1"
    assert str(parse_cluster(yaml.safe_dump(doc)).provider.block) == "fd00:6b::/56"


def test_problems_are_capped_in_the_message_but_all_kept():
    doc = base("packet")
    doc["nodes"] = [{"name": f"N_{i}", "role": "worker"} for i in range(200)]
    with pytest.raises(ConfigError) as info:
        parse_cluster(yaml.safe_dump(doc))
    assert len(info.value.problems) > 200
    assert "... and" in info.value.message and info.value.message.count("\n  - ") == 50
