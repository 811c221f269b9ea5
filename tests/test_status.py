"""status as a library: the parsers on real output (tests/data), the report's degraded reasons,
its exit code, JSON document and tables, and provider sessions from the Metal API fake."""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path


from v6kube.announce import ExpectedPrefix
from v6kube.status import print_report
from v6kube.status import parsers as p
from v6kube.status import report as r

DATA = Path(__file__).resolve().parent / "data"


def bird(name: str) -> str:
    return (DATA / "bird" / name).read_text()


def lab_facts() -> dict:
    """Addresses of the capture run, from the files' header (the lab's prefix differs per run)."""
    text = bird("router-route.txt")
    m = re.search(r"# nodes: cp-0=(\S+) worker-0=(\S+); peers: (\S+) (\S+)\n# cp-0 blocks: (\S+) (\S+); "
                  r"worker-0 blocks: (\S+); services: (\S+)", text)
    assert m, "capture header missing"
    a = [IPv6Address(x) for x in m.groups()[:4]]
    n = [IPv6Network(x) for x in m.groups()[4:]]
    return {"nodes": {"cp-0": a[0], "worker-0": a[1]}, "peers": a[2:], "cp_blocks": n[:2], "w_blocks": n[2:3],
            "services": n[3]}


# --- BIRD ----------------------------------------------------------------------------------


def test_bird_protocols_of_a_node_with_both_sessions_up():
    facts = lab_facts()
    protocols = p.parse_bird_protocols(bird("node-protocols-all.txt"))
    assert [(x.name, x.proto, x.state) for x in protocols][:2] == [("device1", "Device", "up"), ("announced", "Static", "up")]
    bgp = [x for x in protocols if x.proto == "BGP"]
    assert [x.neighbor for x in bgp] == facts["peers"]
    assert all(x.established and x.neighbor_as == 65530 and x.exported == 3 and x.last_error is None for x in bgp)
    short = [x for x in p.parse_bird_protocols(bird("node-protocols.txt")) if x.proto == "BGP"]
    assert [x.neighbor for x in short] == facts["peers"] and all(x.established for x in short)  # from calico's names


def test_bird_protocols_with_a_wrong_password_or_a_stopped_router():
    wrong = [x for x in p.parse_bird_protocols(bird("node-protocols-all-wrong-password.txt")) if x.proto == "BGP"]
    assert [(x.bgp_state, x.established) for x in wrong] == [("Active", False)] * 2
    stopped = {str(x.neighbor)[-1]: x for x in p.parse_bird_protocols(bird("node-protocols-all-router-stopped.txt"))
               if x.proto == "BGP"}
    assert stopped["e"].established and not stopped["f"].established
    assert stopped["f"].last_error == "Received: Administrative shutdown"


def test_bird_protocols_of_the_router_name_each_dynamic_session_neighbour():
    facts = lab_facts()
    protocols = p.parse_bird_protocols(bird("router-protocols-all.txt"))
    template = next(x for x in protocols if x.name == "nodes")
    assert template.neighbor is None and template.neighbor_range.prefixlen == 64 and template.bgp_state == "Passive"
    sessions = {x.name: x for x in protocols if x.neighbor is not None}
    assert {n: x.neighbor for n, x in sessions.items()} == {"n1": facts["nodes"]["cp-0"], "n2": facts["nodes"]["worker-0"]}
    down = {x.name: x for x in p.parse_bird_protocols(bird("router-protocols-all-wrong-password.txt"))}
    assert not down["n2"].established and down["n2"].last_error == "Received: Other configuration change"


def test_bird_routes_one_entry_per_route_with_its_session_and_next_hop():
    facts = lab_facts()
    routes = p.parse_bird_routes(bird("router-route.txt"))
    bgp = [x for x in routes if x.protocol.startswith("n")]
    assert sorted((str(x.prefix), x.protocol) for x in bgp) == sorted(
        [(str(b), "n1") for b in facts["cp_blocks"]] + [(str(facts["services"]), "n1"), (str(facts["services"]), "n2")]
        + [(str(facts["w_blocks"][0]), "n2")])
    assert all(x.kind == "unicast" and x.as_path == "AS65000i" for x in bgp)
    via = {x.protocol: x.via for x in bgp}
    assert via == {"n1": facts["nodes"]["cp-0"], "n2": facts["nodes"]["worker-0"]}
    assert [x.primary for x in bgp if x.prefix == facts["services"]] == [True, False]
    withdrawn = {x.prefix for x in p.parse_bird_routes(bird("router-route-withdrawn.txt"))}
    assert facts["cp_blocks"][1] not in withdrawn and facts["cp_blocks"][0] in withdrawn


def test_birdc_reply_codes_are_accepted():
    text = "0001 BIRD 2.0.12 ready.\n2002-Name       Proto      Table      State  Since         Info\n" \
           "1002-Node_fd00__e BGP        ---        up     15:03:09.827  Established   \n"
    [proto] = p.parse_bird_protocols(text)
    assert proto.neighbor == IPv6Address("fd00::e") and proto.established


# --- calicoctl -----------------------------------------------------------------------------


def test_calicoctl_node_status_samples():
    docs = p.parse_calicoctl_node_status((DATA / "calico" / "node-status-docs.txt").read_text())
    assert docs.running and docs.peers_v6 == () and docs.peers_v4[0].address == IPv4Address("172.17.8.102")
    assert docs.peers_v4[0].established and docs.peers_v4[0].peer_type == "node-to-node mesh"
    v6 = p.parse_calicoctl_node_status((DATA / "calico" / "node-status-ipv6.txt").read_text())
    assert [(x.address, x.state, x.since, x.established) for x in v6.peers_v6] == [
        (IPv6Address("fd80:24e2:f998:72d7::2"), "up", "23:18:20", True)]
    wrapped = p.parse_calicoctl_node_status((DATA / "calico" / "node-status-wrapped.txt").read_text())
    assert [(str(x.address), x.state, x.info, x.established) for x in wrapped.peers_v4] == [
        ("192.168.1.70", "start", "Active Socket: Host is unreachable", False),
        ("192.168.1.71", "start", "Active Socket: Host is unreachable", False)]
    down = p.parse_calicoctl_node_status((DATA / "calico" / "node-status-not-running.txt").read_text())
    assert not down.running and down.peers_v4 == down.peers_v6 == ()
    [row] = r.node_sessions_from_calicoctl("cp-0", down)
    assert row.established is False and "not running" in row.info


def test_calicoctl_rows_become_node_side_sessions():
    status = p.parse_calicoctl_node_status((DATA / "calico" / "node-status-wrapped.txt").read_text())
    rows = r.node_sessions_from_calicoctl("cp-0", status)
    assert [(x.peer, x.state, x.established, x.info) for x in rows][0] == (
        "192.168.1.70", "Active", False, "Socket: Host is unreachable")


# --- the provider (the Metal API fake) -----------------------------------------------------


def test_provider_sessions_from_the_metal_api_fake():
    from fakes.metal_api import FakeMetal, ManualClock
    from v6kube.providers.packet.client import MetalClient
    from test_packet_provider import TOKEN, provider_for, provision, specs_for

    clock = ManualClock()
    with FakeMetal(token=TOKEN, clock=clock) as api:
        provider = provider_for(api, clock)
        _, servers, _, block = provision(provider, specs_for(("cp-0", "w-0")))
        client = MetalClient(TOKEN, api.url)
        for server in servers:  # before the routers report (the fake moves to up after a delay)
            api.set_session_status(server.id, "unknown,unknown")
        bodies = {s.hostname: client.get(f"/devices/{s.id}/bgp/sessions") for s in servers}
        fresh = {h: p.parse_metal_sessions(b) for h, b in bodies.items()}
        assert all([(x.address_family, x.statuses, x.state) for x in v] == [("ipv6", ("unknown", "unknown"), "unknown")]
                   for v in fresh.values())
        cp, w = servers
        pods = str(next(block.subnets(new_prefix=122)))
        api.set_session_status(cp.id, "up,up", [pods, "10.0.0.0/31"])
        api.set_session_status(w.id, "up,down")
        sessions = {s.hostname: p.parse_metal_sessions(client.get(f"/devices/{s.id}/bgp/sessions")) for s in servers}
    assert sessions["cp-0"][0].state == "up" and sessions["cp-0"][0].learned_routes == (IPv6Network(pods),)
    assert sessions["w-0"][0].statuses == ("up", "down") and sessions["w-0"][0].state == "down"
    rows = r.provider_sessions("cp-0", sessions["cp-0"]) + r.provider_sessions("w-0", sessions["w-0"])
    assert [(x.node, x.state, x.established) for x in rows] == [("cp-0", "up,up", True), ("w-0", "up,down", False)]
    assert r.provider_sessions("cp-0", fresh["cp-0"])[0].established is None  # unknown is not "down"
    assert r.seen_from_provider(sessions) == {"cp-0": {IPv6Network(pods)}, "w-0": set()}


# --- the report ----------------------------------------------------------------------------


def healthy_report() -> r.Report:
    """cp-0 and worker-0 as the capture saw them: every session up, every prefix learned."""
    facts = lab_facts()
    nodes = facts["nodes"]
    expected = {"cp-0": [ExpectedPrefix(b, "pods") for b in facts["cp_blocks"]] + [ExpectedPrefix(facts["services"], "cluster-ips")],
                "worker-0": [ExpectedPrefix(facts["w_blocks"][0], "pods"), ExpectedPrefix(facts["services"], "cluster-ips")]}
    protocols = p.parse_bird_protocols(bird("router-protocols-all.txt"))
    routes = p.parse_bird_routes(bird("router-route.txt"))
    seen = {str(facts["peers"][0]): r.seen_from_bird(routes, protocols, nodes)}
    rows, unexpected = r.compare_prefixes(expected, seen)
    sessions = r.node_sessions_from_bird("cp-0", p.parse_bird_protocols(bird("node-protocols-all.txt")))
    sessions += r.router_sessions_from_bird(str(facts["peers"][0]), protocols, nodes)
    return r.Report("lab", [r.ServerRow("cp-0", None, (str(nodes["cp-0"]),)), r.ServerRow("worker-0", None, (str(nodes["worker-0"]),))],
                    [r.NodeRow("cp-0", True, "v1.33.4"), r.NodeRow("worker-0", True, "v1.33.4")], sessions, rows, unexpected)


def test_a_healthy_report_exits_0_and_its_json_has_one_entry_per_node(capsys):
    report = healthy_report()
    assert report.degraded == [] and report.healthy and report.exit_code == 0
    doc = json.loads(json.dumps(report.as_dict()))
    assert doc["schema"] == "v6kube.status/v1" and doc["healthy"] is True and doc["degraded"] == []
    assert [n["name"] for n in doc["nodes"]] == ["cp-0", "worker-0"]
    cp = doc["nodes"][0]
    assert [(s["side"], s["state"], s["established"]) for s in cp["sessions"]] == [
        ("node", "Established", True), ("node", "Established", True), ("router", "Established", True)]
    assert all(x["seen"] is True and x["missing_from"] == [] for x in cp["prefixes"]) and len(cp["prefixes"]) == 3
    assert doc["unexpected_prefixes"] == []
    print_report(report)
    out = capsys.readouterr().out
    assert out.rstrip().endswith("healthy") and "Established" in out
    assert str(lab_facts()["services"]) in out  # an IPv6 prefix printed whole, never split or eaten


def test_wrong_password_withdrawn_prefix_unreachable_and_not_ready_each_name_what_is_wrong():
    facts = lab_facts()
    nodes, rtr = facts["nodes"], str(facts["peers"][0])
    expected = {"cp-0": [ExpectedPrefix(b, "pods") for b in facts["cp_blocks"]],
                "worker-0": [ExpectedPrefix(facts["w_blocks"][0], "pods")]}
    protocols = p.parse_bird_protocols(bird("router-protocols-all-wrong-password.txt"))
    seen = {rtr: r.seen_from_bird(p.parse_bird_routes(bird("router-route-withdrawn.txt")), protocols, nodes)}
    rows, unexpected = r.compare_prefixes(expected, seen)
    sessions = r.node_sessions_from_bird("worker-0", p.parse_bird_protocols(bird("node-protocols-all-wrong-password.txt")))
    sessions += r.router_sessions_from_bird(rtr, protocols, nodes)
    report = r.Report("lab", [r.ServerRow("cp-0", "active"), r.ServerRow("worker-0", "provisioning")],
                      [r.NodeRow("cp-0", False, "v1.33.4"), r.NodeRow("worker-0", None, reachable=False, error="SSH: timed out")],
                      sessions, rows, unexpected)
    reasons = report.degraded
    assert report.exit_code == 1 and not report.healthy
    assert "server worker-0: provider state provisioning" in reasons
    assert "node cp-0: not Ready" in reasons
    assert "node worker-0: unreachable, its BGP sessions are unknown (SSH: timed out)" in reasons
    assert f"worker-0: BGP session with {facts['peers'][0]} is Active on the node side" in reasons
    assert f"worker-0: BGP session with {rtr} is Passive on the router side (Received: Other configuration change)" in reasons
    assert f"cp-0: {facts['cp_blocks'][1]} (pods) not announced to {rtr}" in reasons
    assert not any(str(facts["cp_blocks"][0]) in x for x in reasons)
    assert "unexpected" not in json.dumps(report.as_dict()["nodes"])  # still valid JSON, one entry per node


def test_a_node_the_router_never_heard_from_and_an_unexpected_prefix():
    facts = lab_facts()
    protocols = p.parse_bird_protocols(bird("router-protocols-all.txt"))
    ghost = {"cp-0": facts["nodes"]["cp-0"], "ghost": IPv6Address("fd00::99")}
    rows = r.router_sessions_from_bird("rtr", protocols, ghost)
    assert [(x.node, x.state, x.established) for x in rows] == [("cp-0", "Established", True), ("ghost", "absent", False)]
    seen = {"rtr": r.seen_from_bird(p.parse_bird_routes(bird("router-route.txt")), protocols, facts["nodes"])}
    _, unexpected = r.compare_prefixes({"cp-0": [ExpectedPrefix(facts["cp_blocks"][0], "pods")], "worker-0": []}, seen)
    assert {(x.node, x.prefix) for x in unexpected} == {
        ("cp-0", facts["cp_blocks"][1]), ("cp-0", facts["services"]), ("worker-0", facts["w_blocks"][0]),
        ("worker-0", facts["services"])}
    assert r.Report("x", prefixes=[], unexpected=unexpected).healthy  # listed, not a failure


def test_no_route_view_means_unknown_not_missing():
    rows, _ = r.compare_prefixes({"cp-0": [ExpectedPrefix(IPv6Network("2001:db8::/122"), "pods")]}, {})
    assert rows[0].seen is None and r.Report("x", prefixes=rows).healthy


def test_a_reachable_node_without_a_session_to_a_peer_gets_an_absent_row():
    facts = lab_facts()
    sessions = r.node_sessions_from_bird("cp-0", p.parse_bird_protocols(bird("node-protocols-all.txt")))
    nodes = [r.NodeRow("cp-0", True), r.NodeRow("worker-0", True), r.NodeRow("worker-1", None, reachable=False)]
    peers = facts["peers"]
    rows = r.absent_node_sessions(nodes, peers, sessions)
    assert [(x.node, x.peer, x.state) for x in rows] == [("worker-0", str(peers[0]), "absent"),
                                                         ("worker-0", str(peers[1]), "absent")]
    padded = [r.SessionRow("worker-0", peers[0].exploded, "node", "Established", True)]  # any spelling of the address
    assert [x.peer for x in r.absent_node_sessions(nodes[1:2], peers, padded)] == [str(peers[1])]
    reasons = r.Report("x", sessions=rows).degraded
    assert f"worker-0: BGP session with {peers[0]} is absent on the node side (no BGP session configured on the node)" in reasons
