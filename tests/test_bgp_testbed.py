"""BGP proven in the testbed: each node runs BIRD configured, as calico-node would be, from the
objects v6kube renders (create's bgp.yaml + announce-services' BGPConfiguration); the lab's router
learns exactly the prefixes v6kube expects, and the status report says so. A wrong MD5 password
and a withdrawn prefix each turn the report degraded, naming what is wrong."""

from __future__ import annotations

import time
from ipaddress import IPv6Address

import pytest

from testbed import bgp
from testbed.fixtures import unavailable
from testbed.lab import BGP_PASSWORD, missing_prerequisites
from v6kube import announce, config, planner
from v6kube.announce import AUTO, AnnounceOptions, LocalService, ServiceRef
from v6kube.redact import Secret
from v6kube.status import parsers as p
from v6kube.status import report as r

pytestmark = pytest.mark.testbed
WEB = ServiceRef("default", "web")
PODS = {"cp-0": 70, "worker-0": 20}  # 70 pods need two /122 blocks, 20 one


def build(lab) -> dict:
    """Two nodes of `lab` speaking BGP to its router as v6kube configured them."""
    nodes = [lab.add_node("cp-0", start_sshd=False), lab.add_node("worker-0", start_sshd=False)]
    plan = planner.offline_plan(config.parse_cluster(bgp.lab_cluster_yaml(lab, nodes)))
    a = announce.plan_announcement(plan, AnnounceOptions(load_balancer_ips=(AUTO,), local_services=(WEB,)))
    web = LocalService(WEB, (plan.addresses.service_subnet[0x50], a.load_balancer_ips[0][7]))
    endpoints = {"worker-0": [web]}
    announce.check_budget(announce.budget(a, PODS, pods=PODS, local_endpoints=endpoints))
    blocks, index = {}, 0
    for node in nodes:
        count = announce.blocks_for(PODS[node.name], a.block_size)
        blocks[node.name] = [bgp.nth_block(plan.addresses.pod_subnet, a.block_size, index + i) for i in range(count)]
        index += count
    expected = announce.expected_prefixes(a, blocks, endpoints)
    objects = planner.render_bgp(plan, planner.Secrets(bgp_password=Secret(BGP_PASSWORD)))
    objects += "---\n" + announce.render_announcement(a)
    started = time.monotonic()
    speakers, local = {}, {}
    for node in nodes:
        local[node.name] = [e.prefix for e in expected[node.name] if e.kind == "local"]
        text = bgp.speaker_config(objects, node, blocks=blocks[node.name], extra_routes=local[node.name])
        speakers[node.name] = bgp.start_speaker(lab, node, text)
    state = {"lab": lab, "plan": plan, "a": a, "nodes": {n.name: n for n in nodes}, "blocks": blocks,
             "expected": expected, "speakers": speakers, "objects": objects, "local": local}
    bgp.wait_until(lambda: all_seen(state), 30, "every expected prefix at both routers")
    print(f"\nBGP: both routers learned every expected prefix {time.monotonic() - started:.2f} s after BIRD started")
    return state


@pytest.fixture(scope="module")
def cluster(lab):
    if missing_prerequisites():
        unavailable("testbed unavailable")
    state = build(lab)
    try:
        yield state
    finally:
        for node in state["nodes"].values():
            lab.remove_node(node)


def router_views(state, stopped: tuple[str, ...] = ()) -> dict:
    """Per router BIRD (named by its peer address): (protocols, routes); a stopped one has none."""
    views = {}
    for peer, ctl in zip(state["lab"].peers, bgp.router_ctls(state["lab"])):
        if str(peer) in stopped:
            continue
        views[str(peer)] = (p.parse_bird_protocols(bgp.birdc(ctl, "show", "protocols", "all")),
                            p.parse_bird_routes(bgp.birdc(ctl, "show", "route")))
    return views


def addresses(state) -> dict[str, IPv6Address]:
    return {name: node.address for name, node in state["nodes"].items()}


def all_seen(state) -> bool:
    wanted = {n: {e.prefix for e in items} for n, items in state["expected"].items()}
    return all(r.seen_from_bird(routes, protocols, addresses(state)) == wanted
               for protocols, routes in router_views(state).values())


def observe(state, stopped: tuple[str, ...] = ()) -> r.Report:
    """What `status` would build: node-side sessions from each node's BIRD (calico-node's view),
    router-side sessions and learned routes from the router BIRDs that run."""
    views = router_views(state, stopped)
    sessions = []
    for name, speaker in state["speakers"].items():
        sessions += r.node_sessions_from_bird(name, p.parse_bird_protocols(speaker.birdc("show", "protocols", "all")))
    for peer, (protocols, _) in views.items():
        sessions += r.router_sessions_from_bird(peer, protocols, addresses(state))
    seen = {peer: r.seen_from_bird(routes, protocols, addresses(state)) for peer, (protocols, routes) in views.items()}
    rows, unexpected = r.compare_prefixes(state["expected"], seen)
    nodes = [r.NodeRow(name, True, "v1.33.4") for name in state["nodes"]]
    sessions += r.absent_node_sessions(nodes, state["plan"].bgp.peers, sessions)
    servers = [r.ServerRow(name, None, (str(node.address),)) for name, node in state["nodes"].items()]
    return r.Report(state["plan"].cluster.name, servers, nodes, sessions, rows, unexpected)


def test_the_router_learns_exactly_the_expected_prefixes_and_status_reports_them_seen(cluster):
    expected = cluster["expected"]
    a = cluster["a"]
    assert [e.kind for e in expected["cp-0"]] == ["pods", "pods", "cluster-ips", "loadbalancer-ips"]
    assert [e.kind for e in expected["worker-0"]] == ["pods", "cluster-ips", "loadbalancer-ips", "local", "local"]
    for protocols, routes in router_views(cluster).values():  # exactly: nothing more, nothing less
        seen = r.seen_from_bird(routes, protocols, addresses(cluster))
        assert seen == {n: {e.prefix for e in items} for n, items in expected.items()}
        assert all(x.as_path == "AS65000i" for x in routes if x.protocol != "direct1" and x.prefix in seen["cp-0"])
    report = observe(cluster)
    assert report.degraded == [] and report.exit_code == 0
    assert len([s for s in report.sessions if s.side == "node"]) == 4  # 2 nodes x 2 peers, from the BGPPeers
    assert all(s.established for s in report.sessions)
    doc = report.as_dict()
    assert [n["name"] for n in doc["nodes"]] == ["cp-0", "worker-0"]
    assert all(x["seen"] and len(x["seen_by"]) == 2 for n in doc["nodes"] for x in n["prefixes"])
    assert str(a.load_balancer_ips[0]) in {x["prefix"] for x in doc["nodes"][1]["prefixes"]}


def test_a_wrong_password_and_a_withdrawn_prefix_each_make_status_degraded(cluster):
    lab, plan = cluster["lab"], cluster["plan"]
    cp, worker = cluster["nodes"]["cp-0"], cluster["nodes"]["worker-0"]
    good = cluster["objects"]
    wrong = planner.render_bgp(plan, planner.Secrets(bgp_password=Secret("Wrong0password"))) + \
        "---\n" + announce.render_announcement(cluster["a"])
    peers = [str(x) for x in lab.peers]
    speaker_w, speaker_cp = cluster["speakers"]["worker-0"], cluster["speakers"]["cp-0"]
    try:
        speaker_w.reconfigure(bgp.speaker_config(wrong, worker, blocks=cluster["blocks"]["worker-0"],
                                                 extra_routes=cluster["local"]["worker-0"]))
        bgp.wait_until(lambda: not observe(cluster).healthy and all(
            not s.established for s in observe(cluster).sessions if s.node == "worker-0"), 30, "worker-0's sessions down")
        report = observe(cluster)
        assert report.exit_code == 1
        reasons = report.degraded
        for peer in peers:
            assert any(x.startswith(f"worker-0: BGP session with {peer} is ") and "on the node side" in x for x in reasons)
            assert any(x.startswith(f"worker-0: BGP session with {peer} is ") and "on the router side" in x for x in reasons)
        for e in cluster["expected"]["worker-0"]:
            assert f"worker-0: {e.prefix} ({f'{e.kind} {e.detail}'.strip()}) not announced to {', '.join(peers)}" in reasons
        assert not any(x.startswith("cp-0") for x in reasons)  # the other node is untouched

        withdrawn = cluster["blocks"]["cp-0"][1]
        speaker_cp.reconfigure(bgp.speaker_config(good, cp, blocks=cluster["blocks"]["cp-0"][:1]))
        bgp.wait_until(lambda: any(str(withdrawn) in x for x in observe(cluster).degraded), 15, "the withdrawal")
        cp_reasons = [x for x in observe(cluster).degraded if x.startswith("cp-0")]
        assert cp_reasons == [f"cp-0: {withdrawn} (pods) not announced to {', '.join(peers)}"]
    finally:  # put both back: the report is healthy again
        speaker_w.reconfigure(bgp.speaker_config(good, worker, blocks=cluster["blocks"]["worker-0"],
                                                 extra_routes=cluster["local"]["worker-0"]))
        speaker_cp.reconfigure(bgp.speaker_config(good, cp, blocks=cluster["blocks"]["cp-0"]))
    bgp.wait_until(lambda: observe(cluster).healthy, 30, "recovery")


def test_a_stopped_router_makes_status_degraded_naming_the_peer(lab):
    """In a lab of its own: stopping a router of the shared lab would disturb other tests."""
    from testbed.lab import Lab

    own = Lab.create()
    try:
        state = build(own)
        down = str(own.peers[1])
        own._birds[1].terminate()  # the router's BIRD for its second peer address
        own._birds[1].wait(5)
        bgp.wait_until(lambda: not observe(state, (down,)).healthy, 30, "the sessions to the stopped router down")
        report = observe(state, (down,))
        assert report.exit_code == 1
        for node in ("cp-0", "worker-0"):
            assert any(x.startswith(f"{node}: BGP session with {down} is ") and "on the node side" in x
                       for x in report.degraded), report.degraded
        assert all(down in x for x in report.degraded)  # the other router still has every prefix
        assert all(p.seen for p in report.prefixes)
    finally:
        own.close()
