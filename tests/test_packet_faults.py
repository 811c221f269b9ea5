"""The Packet provider against the HTTP fake where a live API bites: vanished failed devices known
only by the id in the state, a list that shifts while it is paged, one-off 500s on reads, two
clusters in one project, and the fake's own strictness (include, metros, sessions, headers)."""

from __future__ import annotations

from ipaddress import IPv6Network

import pytest

from v6kube.config import Cluster
from v6kube.errors import NotFound, PermissionDenied, ProviderError, ProvisioningFailed
from v6kube.providers import make_provider, plan_phases, planned_calls
from v6kube.providers.base import CONTROL_PLANE, WORKER, Server, ServerSpec
from v6kube.providers.packet.client import MetalClient

from fakes.metal_api import FakeMetal, ManualClock

TOKEN = "packet-faults-token-0a1b2c3d4e5f"
DEVICES = r"/projects/[^/]+/devices"
OPERATOR_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhG3rN+ZyUSo+qPqOj8jUXbGJk6bEW6qkCFnFyyP9Lb op@laptop"
PODS = IPv6Network("2604:1380:4641:c501::/64")
SERVICES = IPv6Network("2604:1380:4641:c502::/108")


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def api(clock):
    with FakeMetal(token=TOKEN, clock=clock, durations={"queued": 30, "provisioning": 300}) as fake:
        yield fake


def provider_for(api, clock, name="demo", **provider_options):
    cluster = Cluster.model_validate({
        "name": name, "provider": {"type": "packet", "project": api.project_id, **provider_options},
        "nodes": [{"name": "cp-0", "role": "control-plane"}, {"name": "w-0", "role": "worker"}]})
    client = MetalClient(TOKEN, api.url, timeout=(2.0, 2.0), sleep=clock.sleep, clock=clock)
    return make_provider(cluster, client=client, environ={}, sleep=clock.sleep, clock=clock,
                         poll_interval=10, neighbor_interval=5, ssh_public_key=OPERATOR_KEY)


def specs(*names, subnets=()):
    return [ServerSpec(n, CONTROL_PLANE if i == 0 else WORKER, subnets=tuple(subnets)) for i, n in enumerate(names)]


def live(api):
    return sorted(d["hostname"] for d in api.project_devices() if d["state"] != "deprovisioning")


# --- servers that vanish --------------------------------------------------------------------------


def test_a_recorded_device_that_failed_and_vanished_is_never_created_twice(api, clock):
    provider = provider_for(api, clock)
    api.fail_device("w-0")
    (cp, w0) = provider.ensure_servers(specs("cp-0", "w-0"))
    with pytest.raises(ProvisioningFailed, match=rf"w-0 \(device {w0.id}\) failed provisioning"):
        provider.wait_servers([cp, w0], 3600)
    # a new run: w-0 is not listed, but the state has its id, and the id answers 403
    again = provider_for(api, clock)
    with pytest.raises(ProvisioningFailed, match=rf"w-0 \(device {w0.id}\): recorded in the state") as info:
        again.ensure_servers(specs("cp-0", "w-0"), recorded_ids={"cp-0": cp.id, "w-0": w0.id})
    assert "destroy" in info.value.hint
    assert api.count("POST", DEVICES) == 2 and len(api.devices) == 2


def test_teardown_deletes_a_vanished_device_by_the_id_in_the_state_then_create_makes_a_new_one(api, clock):
    provider = provider_for(api, clock)
    api.fail_device("w-0")
    (_, w0) = provider.ensure_servers(specs("cp-0", "w-0"))
    clock.sleep(400)
    assert "w-0" not in {s.hostname for s in provider.find_servers()}  # vanished from lists
    provider.delete_servers([Server(id=w0.id, hostname="w-0", role=WORKER, state="unknown")])
    provider.delete_servers([Server(id=w0.id, hostname="w-0", role=WORKER, state="unknown")])  # gone = success
    api.failing.clear()
    clock.sleep(1)
    (_, new) = provider.ensure_servers(specs("cp-0", "w-0"), recorded_ids={"w-0": w0.id})
    assert new.id != w0.id and live(api) == ["cp-0", "w-0"]


def test_a_delete_the_api_refuses_names_the_device_and_keeps_it(api, clock):
    provider = provider_for(api, clock)
    api.fail_device("w-0", delete_forbidden=True)
    (_, w0) = provider.ensure_servers(specs("cp-0", "w-0"))
    clock.sleep(400)
    with pytest.raises(PermissionDenied, match=rf"w-0 \(device {w0.id}\): DELETE .* 403") as info:
        provider.delete_servers([Server(id=w0.id, hostname="w-0", role=WORKER, state="unknown")])
    assert w0.id in info.value.hint and w0.id in api.devices


def test_a_recorded_device_that_is_gone_is_created_again(api, clock):
    provider = provider_for(api, clock)
    (cp,) = provider.ensure_servers(specs("cp-0"))
    provider.delete_servers([cp])
    (again,) = provider.ensure_servers(specs("cp-0"), recorded_ids={"cp-0": cp.id})
    assert again.id != cp.id and live(api) == ["cp-0"]


def test_a_recorded_device_that_exists_but_is_not_listed_is_reused(api, clock):
    provider = provider_for(api, clock)
    (cp,) = provider.ensure_servers(specs("cp-0"))
    api.add_fault("GET", DEVICES, status=200, body={"devices": [], "meta": {}}, times=2)  # a stale list
    (again,) = provider.ensure_servers(specs("cp-0"), recorded_ids={"cp-0": cp.id})
    assert again.id == cp.id and api.count("POST", DEVICES) == 1


# --- consistent view --------------------------------------------------------------------------------


def test_a_device_deleted_between_pages_does_not_cause_a_duplicate(api, clock):
    """Page 1 is read, then a device on it is deleted: w-0 moves back to page 1 and the page-2 read
    misses it. The confirm-by-hostname right before the POST finds it."""
    provider = provider_for(api, clock)
    provider.client.page_size = 2
    old = api.add_device("old-0", tags=["v6kube", "v6kube-cluster:demo"])
    for name in ("cp-0", "w-0", "w-1"):
        api.add_device(name, tags=["v6kube", "v6kube-cluster:demo", "v6kube-role:worker"])

    def delete_old(record):
        api.devices.pop(old["id"], None)
        return False  # only a side effect: the request is answered normally

    api.add_fault("GET", DEVICES, when=lambda r: r.query.get("page") == ["2"] and delete_old(r))
    servers = provider.ensure_servers(specs("cp-0", "w-0", "w-1"))
    assert api.count("POST", DEVICES) == 0
    assert [s.hostname for s in servers] == ["cp-0", "w-0", "w-1"] and live(api) == ["cp-0", "w-0", "w-1"]


def test_find_servers_reads_again_when_pages_shifted(api, clock):
    """Teardown finds servers by tag: a device deleted between pages must not hide another one."""
    provider = provider_for(api, clock)
    provider.client.page_size = 2
    old = api.add_device("old-0", tags=["v6kube", "v6kube-cluster:demo"])
    for name in ("cp-0", "w-0", "w-1"):
        api.add_device(name, tags=["v6kube", "v6kube-cluster:demo", "v6kube-role:worker"])

    def delete_old(record):
        api.devices.pop(old["id"], None)
        return False

    api.add_fault("GET", DEVICES, when=lambda r: r.query.get("page") == ["2"] and delete_old(r))
    assert sorted(s.hostname for s in provider.find_servers()) == ["cp-0", "w-0", "w-1"]


def test_one_off_500s_on_reads_do_not_abort_a_run(api, clock):
    provider = provider_for(api, clock)
    for path in (DEVICES, r"/projects/[^/]+/ips", r"/projects/[^/]+/bgp-config", r"/devices/[^/]+/bgp/neighbors"):
        api.add_fault("GET", path, status=500)
    provider.ensure_bgp()
    servers = provider.wait_servers(provider.ensure_servers(specs("cp-0", "w-0")), 3600)
    provider.ensure_bgp_sessions(servers)
    assert provider.find_block() == IPv6Network("2604:1380:4641:c500::/56")
    assert api.count("POST", DEVICES) == 2


def test_the_block_hint_fits_the_situation(api, clock):
    provider = provider_for(api, clock)
    with pytest.raises(NotFound, match="no public IPv6 /56 in metro da yet") as info:
        provider.find_block()
    assert "run the provision phase first" in info.value.hint
    provider.ensure_servers(specs("cp-0"))
    api.add_fault("GET", r"/projects/[^/]+/ips", status=200, body={"ip_addresses": []})
    with pytest.raises(NotFound, match="has servers of this cluster but no public IPv6 /56") as info:
        provider.find_block()
    assert "create the servers" not in info.value.hint


# --- two clusters in one project ----------------------------------------------------------------


def test_subnets_are_recorded_as_tags_and_other_clusters_see_them(api, clock):
    blue = provider_for(api, clock, name="blue")
    green = provider_for(api, clock, name="green")
    assert blue.find_taken_subnets() == []
    blue.ensure_servers(specs("cp-0", "w-0", subnets=(PODS, SERVICES)))
    (post, _) = api.recorded("POST", DEVICES)
    assert f"v6kube-subnet:{PODS}" in post.json["tags"] and f"v6kube-subnet:{SERVICES}" in post.json["tags"]
    assert green.find_taken_subnets() == [PODS, SERVICES]
    assert blue.find_taken_subnets() == []  # its own subnets are not "taken"
    api.add_device("someone", tags=["v6kube-subnet:not-a-network", "v6kube", "v6kube-cluster:x"])
    assert green.find_taken_subnets() == [PODS, SERVICES]


def test_the_static_provider_has_no_taken_subnets_and_its_plan_lists_no_packet_calls():
    cluster = Cluster.model_validate({
        "name": "s", "provider": {"type": "static", "block": "2001:db8::/56", "peers": ["2001:db8::1"]},
        "nodes": [{"name": "cp-0", "role": "control-plane", "address": "2001:db8::10", "gateway": "2001:db8::1"}]})
    provider = make_provider(cluster, environ={})
    assert provider.find_taken_subnets() == []
    assert planned_calls(cluster) == []
    phases = plan_phases(cluster)
    assert "nothing is created" in phases["provision"] and "Metal" not in " ".join(phases.values())


# --- the fake is as strict as the API ----------------------------------------------------------


def test_referenced_objects_come_back_as_href_unless_included(api, clock):
    provider = provider_for(api, clock)
    provider.ensure_servers(specs("cp-0"))
    path = f"/projects/{api.project_id}/ips"
    bare = provider.client.get(path, {"types": "public_ipv6"})["ip_addresses"][0]
    assert set(bare["metro"]) == {"href"} and set(bare["facility"]) == {"href"}
    full = provider.client.get(path, {"types": "public_ipv6", "include": "metro,facility"})["ip_addresses"][0]
    assert full["metro"]["code"] == "da"
    trimmed = provider.client.get(path, {"exclude": "assignments"})["ip_addresses"][0]
    assert "assignments" not in trimmed


def test_search_and_metro_filter_devices(api, clock):
    api.add_device("alpha", tags=["x"])
    api.add_device("beta", tags=["findme"], metro="sv")
    client = MetalClient(TOKEN, api.url)
    path = f"/projects/{api.project_id}/devices"
    assert [d["hostname"] for d in client.get(path, {"search": "findme"})["devices"]] == ["beta"]
    assert [d["hostname"] for d in client.get(path, {"metro": "sv"})["devices"]] == ["beta"]


def test_a_metro_list_is_refused_and_does_not_poison_later_lists(api):
    client = MetalClient(TOKEN, api.url)
    path = f"/projects/{api.project_id}/devices"
    body = {"metro": ["da", "any"], "plan": "c3.small.x86", "operating_system": "ubuntu_24_04",
            "ip_addresses": [{"address_family": 4, "public": False}]}
    with pytest.raises(ProviderError, match="422 metro"):
        client.post(path, body)
    assert client.get(path)["devices"] == []


def test_several_metros_one_56_each_and_every_one_in_routes_in(api, clock):
    provider = provider_for(api, clock)
    api.add_device("elsewhere", metro="sv")
    body = {"metro": "da", "plan": "c3.small.x86", "operating_system": "ubuntu_24_04", "hostname": "cidr",
            "ip_addresses": [{"address_family": 4, "public": False}, {"address_family": 6, "public": True, "cidr": 124}]}
    created = provider.client.post(f"/projects/{api.project_id}/devices", body)
    clock.sleep(400)  # addresses appear once the device leaves `queued`
    created = provider.client.get(f"/devices/{created['id']}")
    v6 = next(a for a in created["ip_addresses"] if a["address_family"] == 6)
    assert v6["cidr"] == 124 and int(IPv6Network(f"{v6['network']}/124").network_address) % 16 == 0
    provider.ensure_bgp()
    (cp,) = provider.wait_servers(provider.ensure_servers(specs("cp-0")), 3600)
    routes = provider.ensure_bgp_sessions([cp])["cp-0"].routes_in
    assert routes == (api.blocks["da"], api.blocks["sv"]) and api.blocks["da"] != api.blocks["sv"]
    assert provider.find_block() == api.blocks["da"]


def test_bgp_sessions_are_refused_on_devices_that_are_not_active(api, clock):
    provider = provider_for(api, clock)
    provider.ensure_bgp()
    (cp,) = provider.ensure_servers(specs("cp-0"))
    with pytest.raises(ProviderError, match="needs an active server"):
        provider.ensure_bgp_sessions([cp])
    with pytest.raises(ProviderError, match="422 Device must be active"):
        provider.client.post(f"/devices/{cp.id}/bgp/sessions", {"address_family": "ipv6", "default_route": False})


def test_rate_limit_headers_are_unix_seconds_on_every_answer_429s_included(api, clock):
    import requests

    api.add_fault("GET", DEVICES, status=429)
    url = api.url + f"/projects/{api.project_id}/devices"
    answers = [requests.get(url, headers={"X-Auth-Token": t}, timeout=5) for t in (TOKEN, TOKEN, "wrong-token-000000")]
    assert [a.status_code for a in answers] == [429, 200, 401]
    for answer in answers:
        reset = int(answer.headers["X-RateLimit-Reset"])
        assert reset > 1e9 and 0 < reset - clock() <= 60
    assert answers[0].headers["X-RateLimit-Remaining"] == "0"


# --- the fault table ----------------------------------------------------------------------------

SESSIONS = r"/devices/[^/]+/bgp/sessions"
FAULTS = {
    "429 on the device list": ("GET", DEVICES, {"status": 429, "headers": {"Retry-After": "3"}}),
    "500 on the device list": ("GET", DEVICES, {"status": 500}),
    "reset on the neighbours": ("GET", r"/devices/[^/]+/bgp/neighbors", {"reset": True}),
    "500 on POST device, not acted on": ("POST", DEVICES, {"status": 500}),
    "500 on POST device, acted on": ("POST", DEVICES, {"status": 500, "after": True}),
    "reset on POST device, acted on": ("POST", DEVICES, {"reset": True, "after": True}),
    "POST device acted on after the client gave up": ("POST", DEVICES, {"delay": 2.5, "after": True}),
    "429 on POST device, acted on": ("POST", DEVICES, {"status": 429, "after": True, "headers": {"Retry-After": "5"}}),
    "503 on POST session, acted on": ("POST", SESSIONS, {"status": 503, "after": True}),
    "500 on POST bgp-configs, acted on": ("POST", r"/projects/[^/]+/bgp-configs", {"status": 500, "after": True}),
    "429 on POST ssh key": ("POST", r"/projects/[^/]+/ssh-keys", {"status": 429, "headers": {"Retry-After": "2"}}),
    "500 on DELETE, acted on": ("DELETE", r"/devices/[^/]+", {"status": 500, "after": True}),
}


@pytest.mark.parametrize("name", FAULTS)
def test_each_fault_is_survived_with_exactly_the_right_devices_and_nothing_leaks(api, clock, name):
    method, path, options = FAULTS[name]
    cluster = Cluster.model_validate({
        "name": "demo", "provider": {"type": "packet", "project": api.project_id},
        "nodes": [{"name": "cp-0", "role": "control-plane"}, {"name": "w-0", "role": "worker"}]})
    client = MetalClient(TOKEN, api.url, timeout=(1.0, 1.0), sleep=clock.sleep, clock=clock)
    provider = make_provider(cluster, client=client, environ={}, sleep=clock.sleep, clock=clock,
                             ssh_public_key=OPERATOR_KEY)
    fault = api.add_fault(method, path, **options)
    provider.ensure_bgp()
    servers = provider.wait_servers(provider.ensure_servers(specs("cp-0", "w-0")), 3600)
    neighbours = provider.ensure_bgp_sessions(servers)
    assert live(api) == ["cp-0", "w-0"] and len(api.sessions) == 2 and set(neighbours) == {"cp-0", "w-0"}
    assert len(api.ssh_keys) == 1
    provider.delete_servers(provider.find_servers())
    clock.sleep(1)
    assert fault.hits == 1 and live(api) == [] and api.project_devices() == []
