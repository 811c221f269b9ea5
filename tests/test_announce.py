"""announce-services as a library: options, the Calico objects (validated against the CRD schemas),
Local service patches, the prefix budget and the prefixes status expects."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest
import yaml

from v6kube import announce, planner
from v6kube.announce import AUTO, AnnounceOptions, LocalService, ServiceRef
from v6kube.config import load_cluster
from v6kube.errors import ConfigError, UsageError
from v6kube.redact import Secret

from test_render import ROOT, crd_schema, need_schemas, unknown_fields, validate_crd


def plan_for(example: str = "packet", **calico) -> planner.ClusterPlan:
    cluster = load_cluster(ROOT / "examples" / f"{example}.yaml")
    if calico:
        cluster = cluster.model_copy(update={"calico": cluster.calico.model_copy(update=calico)})
    return planner.offline_plan(cluster)


def docs_of(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


# --- options -------------------------------------------------------------------------------


def test_command_line_options_are_parsed_and_every_problem_is_reported_at_once():
    options = announce.parse_options(cluster_ips=False, external_ips=["2001:db8:0:2a05::/64"],
                                     load_balancer_ips=["auto", "2001:db8:0:2a06::/64"], local=["default/web"])
    assert options == AnnounceOptions(False, (IPv6Network("2001:db8:0:2a05::/64"),),
                                      (AUTO, IPv6Network("2001:db8:0:2a06::/64")), (ServiceRef("default", "web"),))
    with pytest.raises(ConfigError) as caught:
        announce.parse_options(external_ips=["10.0.0.0/8", "2001:db8::1/64"], load_balancer_ips=["nope"],
                               local=["web", "Default/Web"])
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 5 and caught.value.exit_code == 2
    assert any("IPv4" in p for p in problems) and any("host bits" in p for p in problems)
    assert sum("--local" in p for p in problems) == 2


def test_the_cluster_file_announce_section_gives_the_same_options():
    plan = plan_for("packet")
    options = announce.options_from_cluster(plan.cluster)
    a = announce.plan_announcement(plan, options)
    assert a.cluster_ips == plan.addresses.service_subnet and a.external_ips == () and a.load_balancer_ips == ()
    assert a.service_ranges == tuple(plan.addresses.announced)


def test_auto_carves_the_first_64_no_server_pod_or_service_uses():
    plan = plan_for("packet")  # block 2001:db8:0:2a00::/56: servers :2a00::/64, pods :2a01::/64, services in :2a02::
    a = announce.plan_announcement(plan, AnnounceOptions(load_balancer_ips=(AUTO,)))
    assert a.load_balancer_ips == (IPv6Network("2001:db8:0:2a03::/64"),) and a.carved == a.load_balancer_ips
    explicit = IPv6Network("2001:db8:0:2a03::/64")
    b = announce.plan_announcement(plan, AnnounceOptions(external_ips=(explicit,), load_balancer_ips=(AUTO,)))
    assert b.load_balancer_ips == (IPv6Network("2001:db8:0:2a04::/64"),)


def test_ranges_outside_the_block_or_overlapping_are_refused_with_every_problem():
    plan = plan_for("packet")
    with pytest.raises(ConfigError) as caught:
        announce.plan_announcement(plan, AnnounceOptions(
            external_ips=(IPv6Network("2001:db8:1::/64"), IPv6Network("2001:db8:0:2a01::/80")),
            load_balancer_ips=(IPv6Network("2001:db8:0:2a00::/64"), IPv6Network("2001:db8:0:2a01::/96")),
            local_services=(ServiceRef("a", "b"), ServiceRef("a", "b"))))
    text = str(caught.value)
    assert "outside the announced block 2001:db8:0:2a00::/56" in text
    assert "overlaps the pod subnet" in text and "overlaps the servers' /64" in text
    assert "overlaps --external-ips 2001:db8:0:2a01::/80" in text and "a/b is given twice" in text


def test_no_free_64_for_auto_says_what_to_do():
    plan = plan_for("static")  # static block /56: fill it with external ranges except nothing
    block = plan.addresses.block
    taken = [n for n in block.subnets(new_prefix=64)
             if not any(n.overlaps(t) for t in (*plan.addresses.server_networks, plan.addresses.pod_subnet,
                                                 plan.addresses.service_subnet))]
    with pytest.raises(ConfigError, match="no free /64 left") as caught:
        announce.plan_announcement(plan, AnnounceOptions(external_ips=tuple(taken), load_balancer_ips=(AUTO,)))
    assert "give --load-balancer-ips PREFIX explicitly" in str(caught.value)


# --- the Calico objects --------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    AnnounceOptions(),
    AnnounceOptions(cluster_ips=False, external_ips=(IPv6Network("2001:db8:0:2a05::/64"),)),
    AnnounceOptions(load_balancer_ips=(AUTO, IPv6Network("2001:db8:0:2a07::/124"))),
    AnnounceOptions(cluster_ips=False),
], ids=["default", "external", "loadbalancer", "nothing"])
def test_rendered_objects_match_the_calico_crd_schemas(options):
    need_schemas()
    a = announce.plan_announcement(plan_for("packet"), options)
    docs = docs_of(announce.render_announcement(a))
    assert [d["kind"] for d in docs] == ["BGPConfiguration"] + ["IPPool"] * len(a.load_balancer_ips)
    for doc in docs:
        schema = crd_schema((doc["apiVersion"], doc["kind"]))
        validate_crd(doc, schema)
        assert unknown_fields(doc, schema) == []
    spec = docs[0]["spec"]
    assert spec.get("serviceClusterIPs", []) == ([{"cidr": str(a.cluster_ips)}] if a.cluster_ips else [])
    assert spec.get("serviceExternalIPs", []) == [{"cidr": str(n)} for n in a.external_ips]
    assert spec.get("serviceLoadBalancerIPs", []) == [{"cidr": str(n)} for n in a.load_balancer_ips]
    for pool, net in zip(docs[1:], a.load_balancer_ips):
        p = pool["spec"]
        assert p["cidr"] == str(net) and p["allowedUses"] == ["LoadBalancer"]
        # The CRD's CEL rules (x-kubernetes-validations), which jsonschema does not run:
        assert p["nodeSelector"] == "all()" and not p.get("disableBGPExport")
        assert p.get("ipipMode", "Never") == "Never" and p.get("vxlanMode", "Never") == "Never"
        assert net.prefixlen <= p["blockSize"] <= 128  # a block fits in the pool
        assert pool["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "v6kube"


def test_the_bgp_configuration_is_the_one_create_applies_plus_the_service_ranges():
    """Applying announce.yaml must not drop what create's bgp.yaml set (mesh off, AS number)."""
    plan = plan_for("packet")
    created = docs_of(planner.render_bgp(plan, planner.Secrets(bgp_password=Secret("Abcdef12345x"))))[0]
    announced = docs_of(announce.render_announcement(announce.plan_announcement(plan, AnnounceOptions())))[0]
    assert created == announced
    with_lb = docs_of(announce.render_announcement(
        announce.plan_announcement(plan, AnnounceOptions(load_balancer_ips=(AUTO,)))))[0]
    assert {k: v for k, v in with_lb["spec"].items() if k != "serviceLoadBalancerIPs"} == created["spec"]


def test_changes_and_stale_pools_are_named():
    plan = plan_for("packet")
    a = announce.plan_announcement(plan, AnnounceOptions(external_ips=(IPv6Network("2001:db8:0:2a05::/64"),),
                                                         load_balancer_ips=(AUTO,)))
    assert announce.describe_changes(None, a) == ["BGPConfiguration default: created"]
    current = {"serviceClusterIPs": [{"cidr": str(plan.addresses.service_subnet)}],
               "serviceExternalIPs": [{"cidr": "2001:db8:0:2a09::/64"}]}
    assert announce.describe_changes(current, a) == [
        "serviceExternalIPs: + 2001:db8:0:2a05::/64", "serviceExternalIPs: - 2001:db8:0:2a09::/64",
        "serviceLoadBalancerIPs: + 2001:db8:0:2a03::/64"]
    applied = docs_of(announce.render_announcement(a))[0]["spec"]
    assert announce.describe_changes(applied, a) == []  # idempotent: nothing left to change
    pools = [{"metadata": {"name": announce.pool_name(IPv6Network("2001:db8:0:2a03::/64")),
                           "labels": {"app.kubernetes.io/managed-by": "v6kube"}}},
             {"metadata": {"name": "v6kube-lb-old", "labels": {"app.kubernetes.io/managed-by": "v6kube"}}},
             {"metadata": {"name": "v6kube-lb-theirs"}}, {"metadata": {"name": "default-ipv6-ippool"}}]
    assert announce.stale_pools(a, pools) == ["v6kube-lb-old"]


# --- Local services ------------------------------------------------------------------------


def service(kind=None, policy=None, external_ips=None, cluster_ip="2001:db8:0:2a02::50"):
    spec = {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip]}
    if kind:
        spec["type"] = kind
    if policy:
        spec["externalTrafficPolicy"] = policy
    if external_ips:
        spec["externalIPs"] = external_ips
    return {"metadata": {"namespace": "default", "name": "web"}, "spec": spec}


def local(options=AnnounceOptions(), *refs):
    base = announce.plan_announcement(plan_for("packet"), options)
    return announce.plan_announcement(plan_for("packet"), AnnounceOptions(
        base.cluster_ips is not None, base.external_ips, options.load_balancer_ips, tuple(refs)))


WEB, API, NAME, HEADLESS, GONE = (ServiceRef("default", n) for n in ("web", "api", "name", "headless", "gone"))


def test_a_cluster_ip_service_changes_type_and_says_so():
    a = local(AnnounceOptions(load_balancer_ips=(AUTO,)), WEB)
    [change] = announce.local_service_changes(a, {WEB: service()})
    assert change.patch == {"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}}
    assert "type ClusterIP cannot have externalTrafficPolicy Local" in change.notes[0]
    assert "LoadBalancer" in change.notes[0]
    [change] = announce.local_service_changes(local(AnnounceOptions(), WEB), {WEB: service()})
    assert change.patch == {"spec": {"type": "NodePort", "externalTrafficPolicy": "Local"}}
    assert "node port opens on every node" in change.notes[0]


def test_services_the_api_accepts_as_local_keep_their_type_and_local_ones_are_left_alone():
    a = local(AnnounceOptions(), WEB, API)
    changes = announce.local_service_changes(a, {
        WEB: service("LoadBalancer", "Cluster"), API: service(external_ips=["2001:db8:0:2a05::1"])})
    assert [c.patch for c in changes] == [{"spec": {"externalTrafficPolicy": "Local"}}] * 2
    assert all(c.notes == () for c in changes)
    [same] = announce.local_service_changes(local(AnnounceOptions(), WEB), {WEB: service("NodePort", "Local")})
    assert same.patch is None and "already" in same.notes[0]


def test_services_that_cannot_be_local_are_all_refused():
    a = local(AnnounceOptions(), NAME, HEADLESS, GONE)
    with pytest.raises(UsageError) as caught:
        announce.local_service_changes(a, {NAME: service("ExternalName"), HEADLESS: service(cluster_ip="None"),
                                           GONE: None})
    text = str(caught.value)
    assert "default/name: an ExternalName" in text and "default/headless: a headless" in text
    assert "default/gone: no such service" in text and caught.value.exit_code == 2


# --- the budget ----------------------------------------------------------------------------


def test_blocks_are_pods_over_block_size_rounded_up_and_at_least_one():
    assert announce.blocks_for(0, 122) == 1 and announce.blocks_for(64, 122) == 1
    assert announce.blocks_for(65, 122) == 2 and announce.blocks_for(110, 122) == 2
    assert announce.blocks_for(110, 116) == 1 and announce.blocks_for(110, 128) == 110


def test_budget_counts_blocks_ranges_and_local_128s_per_node():
    plan = plan_for("packet")
    a = announce.plan_announcement(plan, AnnounceOptions(load_balancer_ips=(AUTO,), local_services=(WEB, API)))
    web = LocalService.from_object({**service("LoadBalancer", "Local"),
                                    "status": {"loadBalancer": {"ingress": [{"ip": "2001:db8:0:2a03::7"}]}}})
    assert web.addresses == (IPv6Address("2001:db8:0:2a02::50"), IPv6Address("2001:db8:0:2a03::7"))
    api = LocalService(API)  # addresses unknown: one /128
    budgets = announce.budget(a, ["cp-0", "worker-0", "worker-1"], pods={"cp-0": 10, "worker-0": 100},
                              local_endpoints={"worker-0": [web, api]})
    by = {b.node: b for b in budgets}
    assert (by["cp-0"].blocks, by["cp-0"].total) == (1, 3)  # 1 block + services /108 + LoadBalancer /64
    assert (by["worker-0"].blocks, by["worker-0"].total) == (2, 2 + 2 + 2 + 1)
    assert (by["worker-1"].pods, by["worker-1"].blocks) == (110, 2)  # unknown: counted full
    announce.check_budget(budgets)  # all within 10


def test_a_node_over_the_limit_is_refused_naming_it_its_prefixes_and_what_to_change():
    refs = tuple(ServiceRef("shop", f"svc-{i}") for i in range(8))
    a = announce.plan_announcement(plan_for("packet"), AnnounceOptions(local_services=refs))
    endpoints = {"worker-0": [LocalService(r) for r in refs[:7]], "worker-1": [LocalService(r) for r in refs]}
    budgets = announce.budget(a, ["cp-0", "worker-0", "worker-1"], pods={"cp-0": 3, "worker-0": 110, "worker-1": 65},
                              local_endpoints=endpoints)
    assert [b.total for b in budgets] == [2, 10, 11]  # 10 is allowed, 11 is not
    with pytest.raises(UsageError) as caught:
        announce.check_budget(budgets)
    text, hint = str(caught.value), caught.value.hint
    assert "1 node(s)" in text and "cp-0" not in text and "worker-0" not in text
    assert ("worker-1: 11 prefixes (2 Calico block(s) for 65 pods; 1 service range(s) (2001:db8:0:2a02::/108); "
            "8 /128(s) for Local services shop/svc-0, shop/svc-1") in text and text.endswith("limit 10")
    assert "block_size" in hint and "--local" in hint and "nothing was applied" in hint
    assert caught.value.exit_code == 2


# --- what status expects -------------------------------------------------------------------


def test_expected_prefixes_per_node():
    plan = plan_for("packet")
    a = announce.plan_announcement(plan, AnnounceOptions(external_ips=(IPv6Network("2001:db8:0:2a05::/64"),),
                                                         local_services=(WEB,)))
    blocks = {"cp-0": [IPv6Network("2001:db8:0:2a01::/122")], "worker-0": [IPv6Network("2001:db8:0:2a01::40/122")]}
    web = LocalService(WEB, (IPv6Address("2001:db8:0:2a02::50"), IPv6Address("2001:db8:0:2a05::9"),
                             IPv6Address("2001:db8:ffff::1")))  # the last is not announced
    expected = announce.expected_prefixes(a, blocks, {"worker-0": [web]})
    assert [(str(e.prefix), e.kind) for e in expected["cp-0"]] == [
        ("2001:db8:0:2a01::/122", "pods"), ("2001:db8:0:2a02::/108", "cluster-ips"), ("2001:db8:0:2a05::/64", "external-ips")]
    assert [(str(e.prefix), e.kind, e.detail) for e in expected["worker-0"]][-2:] == [
        ("2001:db8:0:2a02::50/128", "local", "default/web"), ("2001:db8:0:2a05::9/128", "local", "default/web")]
