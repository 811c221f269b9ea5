"""The phoenixNAP provider against the stateful HTTP fake: the whole flow, re-runs, teardown without
leaks, OAuth tokens, and the fault table (each fault survived with exactly the right resources, or
a typed error naming the resource)."""

from __future__ import annotations

import base64
import traceback
from ipaddress import IPv6Address

import pytest
import yaml

from v6kube.config import Cluster
from v6kube.errors import AuthenticationError, ProviderError, ProvisioningFailed
from v6kube.providers import make_provider, plan_phases, planned_calls
from v6kube.providers.base import CONTROL_PLANE, WORKER, Server, ServerSpec
from v6kube.providers.hostkeys import generate_host_key

from fakes.metal_api import ManualClock
from fakes.pnap_api import FakePnap

CLIENT_ID, SECRET = "pnap-test-client", "pnap-test-secret-5f4e3d2c1b0a"
OPERATOR_KEY = generate_host_key()[0] + " operator@laptop"
SERVERS = r"/bmc/v1/servers"


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def api(clock):
    with FakePnap(CLIENT_ID, SECRET, clock=clock, durations={"creating": 600, "deleting": 60, "bgp": 120}) as fake:
        yield fake


def cluster(name="demo", names=("cp-0", "w-0"), **provider) -> Cluster:
    return Cluster.model_validate({
        "name": name, "provider": {"type": "phoenixnap", "location": "PHX", **provider},
        "nodes": [{"name": n, "role": CONTROL_PLANE if i == 0 else WORKER} for i, n in enumerate(names)]})


def provider_for(api, clock, name="demo", env=None, timeout=(2.0, 2.0), **provider):
    env = {"PNAP_CLIENT_ID": CLIENT_ID, "PNAP_CLIENT_SECRET": SECRET, **(env or {})}
    return make_provider(cluster(name, **provider), api_url=api.url, auth_url=api.auth_url, environ=env,
                         client_options={"sleep": clock.sleep, "clock": clock, "timeout": timeout},
                         sleep=clock.sleep, clock=clock, poll_interval=15, ssh_public_key=OPERATOR_KEY)


def specs(*names):
    return [ServerSpec(n, CONTROL_PLANE if i == 0 else WORKER, *generate_host_key()) for i, n in enumerate(names)]


def provision(provider, names=("cp-0", "w-0")):
    bgp = provider.ensure_bgp()
    servers = provider.wait_servers(provider.ensure_servers(specs(*names)), 3600)
    return bgp, servers, provider.ensure_bgp_sessions(servers)


def destroy(provider):
    provider.delete_servers(provider.find_servers())
    provider.delete_cluster_resources()


# --- the whole flow ---------------------------------------------------------------------------------


def test_provisioning_yields_blocks_network_servers_and_neighbours(api, clock):
    provider = provider_for(api, clock)
    bgp, servers, neighbors = provision(provider)
    blocks = provider.find_blocks()
    assert set(blocks) == {"servers", "pods", "services"} and all(b.prefixlen == 64 for b in blocks.values())
    assert provider.find_block() == blocks["pods"]
    assert bgp.local_asn == 65401 and bgp.password is not None
    for server in servers:
        assert server.state == "powered-on" and server.ipv6 in blocks["servers"]
        assert server.ipv6_gateway == blocks["servers"][1] and server.ipv6_prefixlen == 64
        n = neighbors[server.hostname]
        assert n.peer_ips == (IPv6Address("fd00:0:0:1005::1"), IPv6Address("fd00:0:0:1005::2"))
        assert (n.peer_asn, n.local_asn, n.multihop, n.local_ip) == (65400, 65401, True, server.ipv6)
        assert set(n.routes_in) == set(blocks.values())
    (network,) = api.networks.values()
    assert network["raEnabled"] and set(network["members"]) == {s.id for s in servers}
    assert api.live()["groups"] == ["PHX"]


def test_the_server_request_carries_tags_network_address_key_and_cloud_init(api, clock):
    provider = provider_for(api, clock)
    (spec,) = specs("cp-0")
    provider.ensure_servers([spec])
    (post,) = api.recorded("POST", SERVERS)
    body = post.json
    assert {"name": "v6kube-cluster", "value": "demo"} in body["tags"]
    assert {"name": "v6kube-role", "value": "control-plane"} in body["tags"]
    (entry,) = body["networkConfiguration"]["publicNetworkConfiguration"]["publicNetworks"]
    assert IPv6Address(entry["ips"][0]) in provider.find_blocks()["servers"]
    assert body["sshKeyIds"] == [next(iter(api.ssh_keys))] and body["installDefaultSshKeys"] is False
    userdata = yaml.safe_load(base64.b64decode(body["osConfiguration"]["cloudInit"]["userData"]))
    assert userdata["ssh_keys"]["ed25519_public"] == spec.host_public_key


def test_running_twice_creates_nothing_and_destroy_leaves_nothing_but_the_shared_peer_group(api, clock):
    api_posts = r"/(bmc|ips|networks)/.*"
    first = provision(provider_for(api, clock))
    posts = api.count("POST", api_posts)
    assert posts == 1 + 3 + 1 + 1 + 2  # peer group, 3 blocks, network, SSH key, 2 servers
    second = provision(provider_for(api, clock))  # a new run: nothing cached
    assert api.count("POST", api_posts) == posts
    assert [s.id for s in second[1]] == [s.id for s in first[1]]
    provider = provider_for(api, clock)
    destroy(provider)
    assert api.live() == {"servers": [], "blocks": [], "networks": [], "groups": ["PHX"]}
    destroy(provider)  # again: nothing left, nothing fails


def test_two_clusters_in_one_location_have_their_own_blocks_and_see_each_others(api, clock):
    blue, green = provider_for(api, clock, "blue"), provider_for(api, clock, "green")
    provision(blue, ("b-0",))
    assert set(green.find_taken_subnets()) == set(blue.find_blocks().values())
    assert blue.find_taken_subnets() == []
    provision(green, ("g-0",))
    assert not set(green.find_blocks().values()) & set(blue.find_blocks().values())
    assert len(api.groups) == 1  # one peer group per location, shared


def test_servers_from_the_state_are_deleted_by_id_and_gone_is_success(api, clock):
    provider = provider_for(api, clock)
    _, servers, _ = provision(provider)
    recorded = [Server(id=s.id, hostname=s.hostname, role=s.role, state="unknown") for s in servers]
    provider.delete_servers(recorded)
    clock.sleep(120)
    provider.delete_servers(recorded)
    assert api.live()["servers"] == []


def test_a_recorded_server_that_is_gone_is_created_again(api, clock):
    provider = provider_for(api, clock)
    (cp,) = provider.ensure_servers(specs("cp-0"))
    provider.delete_servers([cp])
    clock.sleep(120)
    (again,) = provider.ensure_servers(specs("cp-0"), recorded_ids={"cp-0": cp.id})
    assert again.id != cp.id and api.live()["servers"] == ["cp-0"]


# --- OAuth ----------------------------------------------------------------------------------------


def test_the_token_is_reused_then_refreshed_before_it_expires(api, clock):
    provider = provider_for(api, clock)
    provider.find_servers()
    provider.find_servers()
    assert api.count("POST", r"/auth/.*") == 1
    clock.sleep(3600 - 30)  # inside the refresh margin
    provider.find_servers()
    assert api.count("POST", r"/auth/.*") == 2


def test_a_revoked_token_is_replaced_once(api, clock):
    provider = provider_for(api, clock)
    provider.find_servers()
    api.expire_tokens()
    provider.find_servers()
    assert api.count("POST", r"/auth/.*") == 2


def test_wrong_credentials_are_an_authentication_error_naming_the_variables(api, clock):
    provider = provider_for(api, clock, env={"PNAP_CLIENT_SECRET": "wrong-secret-value-1234"})
    with pytest.raises(AuthenticationError, match="refused the client credentials") as info:
        provider.find_servers()
    assert "PNAP_CLIENT_SECRET" in info.value.hint


def test_missing_credentials_name_both_variables():
    provider = make_provider(cluster(), environ={})
    with pytest.raises(AuthenticationError, match="PNAP_CLIENT_ID and PNAP_CLIENT_SECRET"):
        provider.find_servers()


def test_the_secret_and_tokens_never_appear_in_output_or_errors(api, clock, capsys):
    provider = provider_for(api, clock)
    api.add_fault("GET", SERVERS, status=400, body={"message": f"echo {SECRET}"})
    with pytest.raises(ProviderError) as info:
        provider.find_servers()
    text = str(info.value) + "".join(traceback.format_exception(info.value)) + "".join(capsys.readouterr())
    tokens = list(api.tokens)
    assert SECRET not in text and not any(t in text for t in tokens) and "***" in str(info.value)


# --- the fault table ----------------------------------------------------------------------------


FAULTS = {
    "429 on the server list": ("GET", SERVERS, {"status": 429, "headers": {"Retry-After": "3"}}),
    "500 on the server list": ("GET", SERVERS, {"status": 500}),
    "500 on the block list": ("GET", r"/ips/v1/ip-blocks", {"status": 500}),
    "reset on a read": ("GET", r"/networks/v1/public-networks", {"reset": True}),
    "500 on POST server, not acted on": ("POST", SERVERS, {"status": 500}),
    "500 on POST server, acted on": ("POST", SERVERS, {"status": 500, "after": True}),
    "reset on POST block, acted on": ("POST", r"/ips/v1/ip-blocks", {"reset": True, "after": True}),
    "POST network acted on after the client gave up": ("POST", r"/networks/v1/public-networks",
                                                       {"delay": 2.5, "after": True}),
    "503 on POST peer group, acted on": ("POST", r"/networks/v1/bgp-peer-groups", {"status": 503, "after": True}),
    "429 on POST ssh key": ("POST", r"/bmc/v1/ssh-keys", {"status": 429, "headers": {"Retry-After": "2"}}),
    "500 on the token endpoint": ("POST", r"/auth/.*", {"status": 500}),
    "500 on deprovision, acted on": ("POST", r"/bmc/v1/servers/[^/]+/actions/deprovision", {"status": 500, "after": True}),
}


@pytest.mark.parametrize("name", FAULTS)
def test_each_fault_is_survived_with_exactly_the_right_resources_and_nothing_leaks(api, clock, name):
    method, path, options = FAULTS[name]
    provider = provider_for(api, clock, timeout=(1.0, 1.0))
    fault = api.add_fault(method, path, **options)
    _, servers, _ = provision(provider)
    live = api.live()
    assert live["servers"] == ["cp-0", "w-0"] and len(live["blocks"]) == 3 and len(live["networks"]) == 1
    assert len(api.groups) == 1 and len(api.ssh_keys) == 1
    destroy(provider)
    assert fault.hits == 1
    assert api.live() == {"servers": [], "blocks": [], "networks": [], "groups": ["PHX"]}


def test_a_server_that_ends_in_error_is_named_with_its_id(api, clock):
    provider = provider_for(api, clock)
    api.fail_server("w-0")
    servers = provider.ensure_servers(specs("cp-0", "w-0"))
    w0 = servers[1]
    with pytest.raises(ProvisioningFailed, match=rf"w-0 \(server {w0.id}\) ended in error") as info:
        provider.wait_servers(servers, 3600)
    assert "destroy" in info.value.hint
    destroy(provider)
    assert api.live()["servers"] == [] and api.live()["blocks"] == []


def test_a_peer_group_stuck_in_pending_stops_at_the_deadline(clock):
    with FakePnap(CLIENT_ID, SECRET, clock=clock, peer_group_status="PENDING") as api:
        provider = provider_for(api, clock)
        provider.bgp_timeout = 600
        with pytest.raises(ProvisioningFailed, match="still PENDING after 600s"):
            provider.ensure_bgp()
        assert clock.now - 1_750_000_000 >= 600
        provider_for(api, clock).ensure_servers(specs("cp-0"))  # the rest goes on
        assert len(api.groups) == 1


def test_a_peer_group_on_hold_is_refused_clearly(clock):
    with FakePnap(CLIENT_ID, SECRET, clock=clock, peer_group_status="ON_HOLD") as api:
        with pytest.raises(ProvisioningFailed, match="ON_HOLD"):
            provider_for(api, clock).ensure_bgp()


def test_a_location_without_bgp_is_refused_clearly(clock):
    with FakePnap(CLIENT_ID, SECRET, clock=clock, bgp_locations=("ASH",)) as api:
        with pytest.raises(ProviderError, match="does not offer BGP in location PHX") as info:
            provider_for(api, clock).ensure_bgp()
        assert "provider.location" in info.value.hint and api.groups == {}


def test_a_server_off_the_public_network_cannot_peer(api, clock):
    provider = provider_for(api, clock)
    provider.ensure_bgp()
    stranger = Server(id="abc", hostname="stray", role=WORKER, state="powered-on", ipv6=IPv6Address("2001:db8::1"))
    with pytest.raises(ProviderError, match=r"stray \(server abc\) is not on the cluster's public network"):
        provider.ensure_bgp_sessions([stranger])


def test_the_plan_lists_phoenixnap_phases_and_calls_it_really_makes(api, clock):
    provider = provider_for(api, clock)
    provision(provider)
    made = {(r.method, r.path) for r in api.recorded()}
    c = cluster()
    planned = {(call["method"], call["path"]) for call in planned_calls(c)}
    assert planned <= made
    assert {m for m in made if m[0] == "POST" and "/actions/" not in m[1]} <= planned
    assert "BGP peer group of PHX" in plan_phases(c)["bgp"]


def test_the_config_needs_no_credentials_in_the_file():
    with pytest.raises(Exception):
        cluster(client_secret="x")
    assert cluster().provider.location == "PHX"


def test_an_existing_server_is_pinned_only_when_the_state_records_it(api, clock):
    provider = provider_for(api, clock)
    (first,) = provider.ensure_servers(specs("cp-0"))
    (spec,) = specs("cp-0")  # a new run generated another key
    (unknown,) = provider.ensure_servers([spec])
    assert unknown.id == first.id and unknown.host_public_key is None
    (known,) = provider.ensure_servers([spec], recorded_ids={"cp-0": first.id})
    assert known.host_public_key == spec.host_public_key


def test_a_token_answer_that_is_not_json_is_an_authentication_error(api, clock):
    provider = provider_for(api, clock)
    api.add_fault("POST", r"/auth/.*", status=200, body="<html>login</html>")
    with pytest.raises(AuthenticationError, match="refused the client credentials"):
        provider.find_servers()


def test_finding_never_creates(api, clock):
    provider = provider_for(api, clock)
    from v6kube.errors import NotFound

    with pytest.raises(NotFound, match="no IPv6 /64 for servers, pods, services in PHX yet") as info:
        provider.find_block()
    assert "run the provision phase first" in info.value.hint
    assert provider.find_servers() == [] and provider.find_taken_subnets() == []
    assert api.count("POST", r"/(bmc|ips|networks)/.*") == 0
