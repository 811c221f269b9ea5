"""The Packet provider against the HTTP fake: find-then-create, faults, waiting, BGP, the /56."""

from __future__ import annotations

import logging
import time
import traceback
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest
import yaml

from v6kube import console
from v6kube.config import Cluster
from v6kube.errors import (
    AuthenticationError,
    NotFound,
    ProviderError,
    ProvisioningFailed,
    Unprocessable,
    UsageError,
)
from v6kube.providers import make_provider
from v6kube.providers.base import CONTROL_PLANE, WORKER, ServerSpec
from v6kube.providers.hostkeys import generate_host_key, md5_fingerprint
from v6kube.providers.packet.client import MetalClient
from v6kube.providers.packet import PacketProvider, cloud_config
from v6kube.redact import Secret

from fakes.metal_api import FakeMetal, ManualClock

TOKEN = "provider-test-token-9c8b7a6f5e4d3c2b"
DEVICES = r"/projects/[^/]+/devices"
OPERATOR_KEY = generate_host_key()[0] + " operator@laptop"
PASSWORD = "Abcdef123456"


def packet_cluster(project: str, names=("cp-0", "w-0", "w-1"), **provider) -> Cluster:
    nodes = [{"name": n, "role": CONTROL_PLANE if i == 0 else WORKER} for i, n in enumerate(names)]
    return Cluster.model_validate({"name": "demo", "provider": {"type": "packet", "project": project, **provider},
                                   "nodes": nodes})


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def api(clock):
    with FakeMetal(token=TOKEN, clock=clock, durations={"queued": 30, "provisioning": 300}) as fake:
        yield fake


def provider_for(api, clock, *, env=None, client_timeout=(2.0, 2.0), **options) -> PacketProvider:
    cluster = packet_cluster(api.project_id, **options.pop("provider", {}))
    env = {"METAL_AUTH_TOKEN": TOKEN, **(env or {})}
    client = MetalClient(TOKEN, api.url, timeout=client_timeout, sleep=clock.sleep, clock=clock)
    options.setdefault("ssh_public_key", OPERATOR_KEY)
    return make_provider(cluster, client=client, environ=env, sleep=clock.sleep, clock=clock,
                         poll_interval=10, neighbor_interval=5, **options)


@pytest.fixture
def provider(api, clock):
    return provider_for(api, clock)


def specs_for(names=("cp-0", "w-0", "w-1")) -> list[ServerSpec]:
    specs = []
    for i, name in enumerate(names):
        public, private = generate_host_key()
        specs.append(ServerSpec(name, CONTROL_PLANE if i == 0 else WORKER, public, private))
    return specs


def provision(provider, specs, timeout=3600):
    bgp = provider.ensure_bgp()
    servers = provider.wait_servers(provider.ensure_servers(specs), timeout)
    neighbors = provider.ensure_bgp_sessions(servers)
    return bgp, servers, neighbors, provider.find_block()


def creates(api) -> int:
    return api.count("POST")


# --- the whole flow -----------------------------------------------------------------------------


def test_provisioning_yields_servers_addresses_neighbours_and_the_block(api, provider):
    specs = specs_for()
    bgp, servers, neighbors, block = provision(provider, specs)
    assert bgp.local_asn == 65000 and bgp.max_prefix == 10 and bgp.password is None
    assert [s.hostname for s in servers] == ["cp-0", "w-0", "w-1"]
    assert [s.role for s in servers] == [CONTROL_PLANE, WORKER, WORKER]
    assert block == IPv6Network("2604:1380:4641:c500::/56")
    for server, spec in zip(servers, specs):
        assert server.state == "active"
        assert server.ipv6 in block and server.ipv6_prefixlen == 127
        assert int(server.ipv6) == int(server.ipv6_gateway) + 1  # gateway = network, address = network+1
        assert isinstance(server.ipv4_public, IPv4Address)
        assert server.host_public_key == spec.host_public_key
        neighbor = neighbors[server.hostname]
        assert neighbor.peer_ips == (IPv6Address("fc00::e"), IPv6Address("fc00::f"))  # fake pads them
        assert (neighbor.peer_asn, neighbor.local_asn, neighbor.multihop) == (65530, 65000, True)
        assert neighbor.local_ip == server.ipv6 and neighbor.routes_in == (block,)
    assert {s.hostname for s in provider.find_servers()} == {"cp-0", "w-0", "w-1"}


def test_running_twice_creates_nothing_the_second_time(api, provider, clock):
    specs = specs_for()
    first = provision(provider, specs)
    posts = creates(api)
    assert posts == 1 + 1 + 3 + 3  # bgp-configs, ssh key, 3 devices, 3 sessions
    again = provider_for(api, clock)  # a new run: nothing cached
    second = provision(again, specs)
    assert creates(api) == posts
    assert [s.id for s in second[1]] == [s.id for s in first[1]]
    assert second[2] == first[2] and len(api.project_devices()) == 3


def test_device_request_asks_for_addresses_keys_tags_and_the_pinned_host_key(api, provider, capsys):
    (spec,) = specs_for(["cp-0"])
    provider.ensure_servers([spec])
    (post,) = api.recorded("POST", DEVICES)
    body = post.json
    assert (body["metro"], body["plan"], body["operating_system"], body["billing_cycle"]) == \
        ("da", "c3.small.x86", "ubuntu_24_04", "hourly")
    assert body["hostname"] == "cp-0"
    assert body["tags"] == ["v6kube", "v6kube-cluster:demo", "v6kube-role:control-plane"]
    assert body["ip_addresses"] == [{"address_family": 4, "public": False}, {"address_family": 6, "public": True},
                                    {"address_family": 4, "public": True}]
    (key,) = api.ssh_keys.values()
    assert body["project_ssh_keys"] == [key["id"]] and key["fingerprint"] == md5_fingerprint(OPERATOR_KEY)
    userdata = body["userdata"]
    assert userdata.startswith("#cloud-config\n")
    document = yaml.safe_load(userdata)
    assert document["ssh_deletekeys"] is True
    assert document["ssh_keys"]["ed25519_public"] == spec.host_public_key
    assert document["ssh_keys"]["ed25519_private"].strip() == spec.host_private_key.reveal().strip()
    captured = capsys.readouterr()
    assert "PRIVATE KEY" not in captured.out + captured.err


def test_no_public_ipv4_when_the_cluster_file_says_so(api, clock):
    provider = provider_for(api, clock, provider={"public_ipv4": False})
    (server,) = provider.wait_servers(provider.ensure_servers(specs_for(["cp-0"])), 3600)
    (post,) = api.recorded("POST", DEVICES)
    assert post.json["ip_addresses"] == [{"address_family": 4, "public": False}, {"address_family": 6, "public": True}]
    assert server.ipv4_public is None and server.ipv6 is not None


def test_cloud_config_needs_both_halves_of_the_host_key():
    public, private = generate_host_key()
    assert cloud_config(ServerSpec("a", WORKER)) is None
    with pytest.raises(UsageError):
        cloud_config(ServerSpec("a", WORKER, host_public_key=public))
    assert "ed25519_private" in cloud_config(ServerSpec("a", WORKER, public, private))


def test_existing_ssh_key_is_matched_by_fingerprint_or_key_body(api, clock):
    MetalClient(TOKEN, api.url).post(f"/projects/{api.project_id}/ssh-keys", {"label": "mine", "key": OPERATOR_KEY})
    provider_for(api, clock).ensure_servers(specs_for(["cp-0"]))
    assert api.count("POST", r"/projects/[^/]+/ssh-keys") == 1  # only ours above
    (key,) = api.ssh_keys.values()
    key["fingerprint"] = "SHA256:shown-differently"
    assert provider_for(api, clock).ensure_ssh_key(OPERATOR_KEY) == key["id"]


def test_servers_of_other_clusters_and_untagged_ones_are_left_alone(api, provider):
    api.add_device("cp-0", tags=["v6kube", "v6kube-cluster:other"])
    api.add_device("w-0")
    provider.ensure_servers(specs_for(["cp-0", "w-0"]))
    assert api.count("POST", DEVICES) == 2 and len(api.project_devices()) == 4
    assert {s.hostname for s in provider.find_servers()} == {"cp-0", "w-0"}


def test_an_existing_device_keeps_the_host_key_it_was_created_with(api, provider, capsys):
    (old,) = specs_for(["cp-0"])
    api.add_device("cp-0", tags=["v6kube", "v6kube-cluster:demo", "v6kube-role:control-plane"],
                   userdata=cloud_config(old))
    (new,) = specs_for(["cp-0"])
    (server,) = provider.ensure_servers([new])
    assert server.host_public_key == old.host_public_key
    assert "created with another host key" in capsys.readouterr().err
    assert api.count("POST", DEVICES) == 0


def test_an_existing_device_without_a_v6kube_host_key_gets_no_pin(api, provider, capsys):
    api.add_device("cp-0", tags=["v6kube", "v6kube-cluster:demo", "v6kube-role:control-plane"])
    (server,) = provider.ensure_servers(specs_for(["cp-0"]))
    assert server.host_public_key is None  # a key generated now was never installed on it
    assert "not created with a v6kube host key" in capsys.readouterr().err


def test_two_devices_with_one_hostname_is_a_clear_error(api, provider):
    for _ in range(2):
        api.add_device("cp-0", tags=["v6kube", "v6kube-cluster:demo"])
    with pytest.raises(ProviderError, match="two devices named 'cp-0'"):
        provider.ensure_servers(specs_for(["cp-0"]))


# --- faults while creating ----------------------------------------------------------------------


def test_a_timed_out_post_that_created_the_device_leaves_exactly_one(api, clock):
    provider = provider_for(api, clock, client_timeout=(1.0, 1.0))
    api.add_fault("POST", DEVICES, after=True, delay=2.5)  # created, but the answer comes too late
    (server,) = provider.ensure_servers(specs_for(["cp-0"]))
    assert api.count("POST", DEVICES) == 1
    assert [d["id"] for d in api.project_devices()] == [server.id]


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 503}, {"reset": True}])
def test_a_failed_post_is_looked_up_then_tried_again(api, provider, fault):
    api.add_fault("POST", DEVICES, **fault)
    (server,) = provider.ensure_servers(specs_for(["cp-0"]))
    assert api.count("POST", DEVICES) == 2 and len(api.project_devices()) == 1
    # between the two POSTs the provider looked for the device
    methods = [r.method for r in api.recorded(path=DEVICES)]
    # (list, POST, look up after the failure, POST)
    assert methods == ["GET", "POST", "GET", "POST"]


def test_a_post_slow_to_create_is_found_after_the_wait_not_created_twice(api, clock):
    # The API acts on the POST only after the client gave up waiting for it: the provider waits
    # (for real here) before it looks, so the lookup sees the device.
    provider = provider_for(api, clock, client_timeout=(1.0, 1.0))
    provider.sleep = time.sleep
    api.add_fault("POST", DEVICES, delay=1.3)  # handled (created) 0.3 s after the client's timeout
    (server,) = provider.ensure_servers(specs_for(["cp-0"]))
    assert api.count("POST", DEVICES) == 1
    assert [d["id"] for d in api.project_devices()] == [server.id]


@pytest.mark.parametrize("after", [False, True], ids=["refused", "acted-on"])
def test_a_post_429_waits_as_told_then_looks_up_before_trying_again(api, clock, after):
    slept = []
    provider = provider_for(api, clock)
    provider.sleep = lambda s: slept.append(s) or clock.sleep(s)
    api.add_fault("POST", DEVICES, status=429, headers={"Retry-After": "7"}, after=after)
    (server,) = provider.ensure_servers(specs_for(["cp-0"]))
    assert slept[0] == 7.0
    assert [d["id"] for d in api.project_devices()] == [server.id]
    assert [r.method for r in api.recorded(path=DEVICES)] == ["GET", "POST", "GET"] + ([] if after else ["POST"])


def test_an_ssh_key_post_that_worked_but_failed_is_found_not_refused(api, clock):
    provider = provider_for(api, clock)
    api.add_fault("POST", r"/projects/[^/]+/ssh-keys", after=True, status=503)
    api.add_fault("GET", r"/projects/[^/]+/ssh-keys", status=200, body={"ssh_keys": [], "meta": {}},
                  when=lambda r: api.count("GET", r"/projects/[^/]+/ssh-keys") == 2)
    key_id = provider.ensure_ssh_key(OPERATOR_KEY)
    # the lookup after the failure missed it (a stale list), so the POST was sent again: the 422
    # "Fingerprint has already been taken" it got means the key is there
    assert api.recorded("POST", r"/projects/[^/]+/ssh-keys")[-1].status == 422
    assert [k["id"] for k in api.ssh_keys.values()] == [key_id]


def test_a_post_500_that_created_the_device_is_not_repeated(api, provider):
    api.add_fault("POST", DEVICES, after=True, status=500)
    provider.ensure_servers(specs_for(["cp-0"]))
    assert api.count("POST", DEVICES) == 1 and len(api.project_devices()) == 1


def test_a_post_that_keeps_failing_raises_the_typed_error(api, provider):
    api.add_fault("POST", DEVICES, status=500, times=0)
    with pytest.raises(ProviderError) as info:
        provider.ensure_servers(specs_for(["cp-0"]))
    assert info.value.status == 500 and "Oh snap" in str(info.value)
    assert api.count("POST", DEVICES) == provider.create_attempts


def test_a_422_is_raised_with_the_api_messages_and_not_retried(api, provider):
    api.add_fault("POST", DEVICES, status=422, body={"errors": ["There are no c3.small.x86 available in da"]})
    with pytest.raises(Unprocessable) as info:
        provider.ensure_servers(specs_for(["cp-0"]))
    assert info.value.errors == ["There are no c3.small.x86 available in da"]
    assert api.count("POST", DEVICES) == 1


def test_one_failed_create_does_not_stop_the_others(api, provider):
    api.add_fault("POST", DEVICES, status=422, when=lambda r: r.json["hostname"] == "w-0")
    with pytest.raises(Unprocessable):
        provider.ensure_servers(specs_for())
    assert sorted(d["hostname"] for d in api.project_devices()) == ["cp-0", "w-1"]


def test_specs_are_checked_before_any_call(api, provider):
    with pytest.raises(UsageError, match="underscores"):
        provider.ensure_servers([ServerSpec("bad_name", WORKER)])
    assert api.count() == 0


# --- waiting ------------------------------------------------------------------------------------


def test_one_poll_loop_lists_devices_once_per_interval(api, provider):
    servers = provider.ensure_servers(specs_for(["cp-0", "w-0", "w-1", "w-2", "w-3"]))
    api.clear_requests()
    ready = provider.wait_servers(servers, timeout=3600)
    assert all(s.state == "active" and s.ipv6 for s in ready)
    polls = api.recorded("GET", DEVICES)
    assert len(polls) == api.count()  # nothing but the project listing, no GET per device
    assert len(polls) == 330 // 10 + 1  # at t = 0, 10, ..., 330: 30 s queued + 300 s provisioning


def test_wait_has_a_deadline(api, provider):
    servers = provider.ensure_servers(specs_for(["cp-0"]))
    with pytest.raises(ProvisioningFailed, match=r"not active after 60s: cp-0 \(device [0-9a-f-]+\) provisioning"):
        provider.wait_servers(servers, timeout=60)


@pytest.mark.parametrize("vanish", [True, False])
def test_a_failed_device_fails_clearly(api, provider, vanish):
    api.fail_device("w-0", vanish=vanish)
    servers = provider.ensure_servers(specs_for())
    with pytest.raises(ProvisioningFailed) as info:
        provider.wait_servers(servers, timeout=3600)
    assert "w-0" in str(info.value) and "failed provisioning" in str(info.value)
    if vanish:
        assert "403" in str(info.value)
        assert api.recorded("GET", r"/devices/[^/]+")[-1].status == 403


def test_wait_rides_out_transient_errors(api, provider, capsys):
    servers = provider.ensure_servers(specs_for(["cp-0"]))
    api.add_fault("GET", DEVICES, status=500)
    api.add_fault("GET", DEVICES, reset=True, times=5)  # more than the client's retries
    (ready,) = provider.wait_servers(servers, timeout=3600)
    assert ready.state == "active"
    assert "polling devices failed" in capsys.readouterr().err


# --- BGP ----------------------------------------------------------------------------------------


def test_bgp_is_enabled_once_with_the_password_from_the_environment(api, clock):
    provider = provider_for(api, clock, env={"BGP_PW": PASSWORD}, provider={"bgp_password_env": "BGP_PW"})
    bgp, servers, neighbors, _ = provision(provider, specs_for(["cp-0"]))
    (post,) = api.recorded("POST", r"/projects/[^/]+/bgp-configs")
    assert post.json == {"deployment_type": "local", "asn": 65000, "md5": PASSWORD}
    assert bgp.password == Secret(PASSWORD) and repr(bgp.password) == "Secret('***')"
    assert neighbors["cp-0"].password == Secret(PASSWORD)
    provider_for(api, clock, env={"BGP_PW": PASSWORD}, provider={"bgp_password_env": "BGP_PW"}).ensure_bgp()
    assert api.count("POST", r"/projects/[^/]+/bgp-configs") == 1


@pytest.mark.parametrize("value", ["short1A", "alllowercase123", "ALLUPPER123", "NoDigitsHere", "With-Punct1a",
                                   "Waytoolongpassword123456"])
def test_a_bad_bgp_password_is_rejected_before_any_call(api, clock, value):
    provider = provider_for(api, clock, env={"BGP_PW": value}, provider={"bgp_password_env": "BGP_PW"})
    with pytest.raises(UsageError) as info:
        provider.ensure_bgp()
    assert value not in str(info.value) and "10 to 20" in info.value.hint
    assert api.count() == 0


def test_a_missing_bgp_password_variable_is_a_clear_error(api, clock):
    provider = provider_for(api, clock, provider={"bgp_password_env": "BGP_PW"})
    with pytest.raises(UsageError, match="BGP_PW"):
        provider.ensure_bgp()
    assert api.count() == 0


def test_bgp_already_enabled_uses_the_projects_asn_and_password(clock, capsys):
    with FakeMetal(token=TOKEN, clock=clock, bgp="enabled", bgp_md5="Project1Password") as api:
        provider = provider_for(api, clock, env={"BGP_PW": PASSWORD}, provider={"bgp_password_env": "BGP_PW"})
        bgp = provider.ensure_bgp()
        assert bgp.password == Secret("Project1Password") and bgp.local_asn == 65000
        assert api.count("POST") == 0
        assert "with its own password; the password in BGP_PW is not used" in capsys.readouterr().err


def test_bgp_already_enabled_without_a_password_says_the_one_given_is_not_used(clock, capsys):
    with FakeMetal(token=TOKEN, clock=clock, bgp="enabled") as api:
        provider = provider_for(api, clock, env={"BGP_PW": PASSWORD}, provider={"bgp_password_env": "BGP_PW"})
        assert provider.ensure_bgp().password is None
        assert "with no password; the password in BGP_PW is not used" in capsys.readouterr().err


def test_bgp_config_with_status_disabled_counts_as_not_enabled(clock):
    with FakeMetal(token=TOKEN, clock=clock, bgp="disabled") as api:
        provider_for(api, clock).ensure_bgp()
        assert api.count("POST", r"/projects/[^/]+/bgp-configs") == 1


def test_enabling_bgp_that_fails_but_worked_is_fine(api, provider):
    api.add_fault("POST", r"/projects/[^/]+/bgp-configs", after=True, status=500)
    assert provider.ensure_bgp().local_asn == 65000


def test_enabling_bgp_that_fails_for_real_raises(api, provider):
    api.add_fault("POST", r"/projects/[^/]+/bgp-configs", status=503, times=0)
    with pytest.raises(ProviderError) as info:
        provider.ensure_bgp()
    assert info.value.status == 503


def test_a_duplicate_session_422_counts_as_success(api, provider):
    bgp, servers, _, _ = provision(provider, specs_for(["cp-0"]))
    api.add_fault("GET", r"/devices/[^/]+/bgp/sessions", status=200, body={"bgp_sessions": []})
    neighbor = provider.ensure_bgp_session(servers[0])
    assert neighbor.peer_asn == 65530
    assert api.recorded("POST", r"/devices/[^/]+/bgp/sessions")[-1].status == 422
    assert len(api.sessions) == 1


def test_a_session_post_500_that_created_it_is_not_repeated(api, provider):
    provider.ensure_bgp()
    servers = provider.wait_servers(provider.ensure_servers(specs_for(["cp-0"])), 3600)
    api.add_fault("POST", r"/devices/[^/]+/bgp/sessions", after=True, status=500)
    provider.ensure_bgp_session(servers[0])
    assert api.count("POST", r"/devices/[^/]+/bgp/sessions") == 1 and len(api.sessions) == 1


def test_a_session_is_only_asked_for_an_active_server(api, provider):
    provider.ensure_bgp()
    (server,) = provider.ensure_servers(specs_for(["cp-0"]))  # still queued
    with pytest.raises(ProviderError, match="needs an active server, not 'queued'"):
        provider.ensure_bgp_session(server)
    assert api.count("POST", r"/devices/[^/]+/bgp/sessions") == 0


@pytest.mark.parametrize("entry, detail", [
    ({"address_family": 6, "peer_ips": ["fc00::e"]}, "missing 'peer_as'"),
    ({"address_family": 6, "peer_ips": ["fc00::e"], "peer_as": 65530, "customer_ip": "10.0.0.1"}, "10.0.0.1"),
])
def test_odd_neighbour_data_is_a_provider_error_not_a_crash(api, provider, entry, detail):
    bgp, servers, _, _ = provision(provider, specs_for(["cp-0"]))
    api.add_fault("GET", r"/devices/[^/]+/bgp/neighbors", status=200, body={"bgp_neighbors": [entry]})
    with pytest.raises(ProviderError, match=f"unexpected answer from the Metal API for cp-0 \\(device [0-9a-f-]+\\)'s BGP neighbours: .*{detail}"):
        provider.wait_neighbors(servers)


def test_neighbours_are_polled_until_they_appear(clock):
    with FakeMetal(token=TOKEN, clock=clock, neighbor_delay_polls=3) as api:
        provider = provider_for(api, clock)
        _, servers, neighbors, _ = provision(provider, specs_for(["cp-0"]))
        assert api.count("GET", r"/devices/[^/]+/bgp/neighbors") == 4
        assert neighbors["cp-0"].peer_ips[0] == IPv6Address("fc00::e")


def test_neighbours_have_a_deadline(clock):
    with FakeMetal(token=TOKEN, clock=clock, neighbor_delay_polls=10 ** 6) as api:
        provider = provider_for(api, clock, neighbor_timeout=60)
        provider.ensure_bgp()
        servers = provider.wait_servers(provider.ensure_servers(specs_for(["cp-0"])), 3600)
        with pytest.raises(ProvisioningFailed, match="no IPv6 BGP neighbour data after 60s for cp-0"):
            provider.ensure_bgp_session(servers[0])


# --- the block ----------------------------------------------------------------------------------


def test_the_block_appears_with_the_first_device(api, provider):
    with pytest.raises(NotFound, match="no public IPv6 /56 in metro da") as info:
        provider.find_block()
    assert "first server" in info.value.hint
    provider.ensure_servers(specs_for(["cp-0"]))
    assert provider.find_block() == IPv6Network("2604:1380:4641:c500::/56")
    (request,) = api.recorded("GET", r"/projects/[^/]+/ips")[-1:]
    assert request.query["types"] == ["public_ipv6"]


def test_a_block_without_metro_falls_back_to_the_facilitys_metro(clock):
    with FakeMetal(token=TOKEN, clock=clock, block_metro_null=True, block="2001:db8:1200::/56") as api:
        provider = provider_for(api, clock)
        provider.ensure_servers(specs_for(["cp-0"]))
        assert provider.find_block() == IPv6Network("2001:db8:1200::/56")


def test_a_block_in_another_metro_does_not_count(clock):
    with FakeMetal(token=TOKEN, clock=clock, metro="sv") as api:
        provider = provider_for(api, clock, provider={"metro": "sv"})
        provider.ensure_servers(specs_for(["cp-0"]))
        assert provider.find_block().prefixlen == 56
        other = provider_for(api, clock, provider={"metro": "da"})
        with pytest.raises(NotFound):
            other.find_block()


def test_explicit_addresses_back_devices_with_testbed_nodes(clock):
    with FakeMetal(token=TOKEN, clock=clock, addresses={"cp-0": ("fd00:10::2", "fd00:10::1", 64)}) as api:
        provider = provider_for(api, clock)
        (server,) = provider.wait_servers(provider.ensure_servers(specs_for(["cp-0"])), 3600)
        assert (server.ipv6, server.ipv6_gateway, server.ipv6_prefixlen) == \
            (IPv6Address("fd00:10::2"), IPv6Address("fd00:10::1"), 64)


def test_the_fake_also_serves_on_ipv6_loopback(clock):
    with FakeMetal(token=TOKEN, clock=clock, host="::1") as api:
        assert api.url.startswith("http://[::1]:")
        provider = provider_for(api, clock)
        assert provider.find_servers() == []


# --- delete -------------------------------------------------------------------------------------


def test_delete_is_idempotent(api, provider, capsys):
    servers = provider.ensure_servers(specs_for(["cp-0", "w-0"]))
    provider.delete_servers(servers)
    assert api.project_devices() == []
    (request, _) = api.recorded("DELETE")
    assert request.query == {"force_delete": ["true"]}
    provider.delete_servers(servers)
    assert "already gone" in capsys.readouterr().err
    assert provider.find_servers() == []


def test_a_server_still_deprovisioning_is_not_found_and_is_made_anew(clock):
    with FakeMetal(token=TOKEN, clock=clock, durations={"deprovisioning": 120}) as api:
        provider = provider_for(api, clock)
        (old,) = provider.ensure_servers(specs_for(["cp-0"]))
        provider.delete_servers([old])
        assert [d["state"] for d in api.project_devices()] == ["deprovisioning"]
        assert provider.find_servers() == []
        (new,) = provider.ensure_servers(specs_for(["cp-0"]))  # not "two devices named cp-0"
        assert new.id != old.id
        clock.sleep(120)
        assert [d["id"] for d in api.project_devices()] == [new.id]


# --- credentials and secrecy --------------------------------------------------------------------


def test_make_provider_needs_no_token_until_the_first_call(api):
    cluster = packet_cluster(api.project_id, api_url=api.url)
    provider = make_provider(cluster, environ={})
    assert provider.name == "packet"
    with pytest.raises(AuthenticationError) as info:
        provider.find_servers()
    assert "METAL_AUTH_TOKEN" in str(info.value) and "PACKET_AUTH_TOKEN" in str(info.value)
    assert api.count() == 0


def test_make_provider_reads_the_token_and_url_from_the_environment(api):
    cluster = packet_cluster(api.project_id, api_url="http://127.0.0.1:9/metal/v1")  # overridden below
    provider = make_provider(cluster, environ={"PACKET_AUTH_TOKEN": TOKEN, "METAL_API_URL": api.url},
                             ssh_public_key=OPERATOR_KEY)
    assert provider.find_servers() == []
    assert api.count() == 1


def test_the_token_never_reaches_output_or_errors(api, clock, capsys, caplog, monkeypatch):
    monkeypatch.setattr(console, "debug_enabled", True)
    caplog.set_level(logging.DEBUG)
    provider = provider_for(api, clock, env={"BGP_PW": PASSWORD}, provider={"bgp_password_env": "BGP_PW"})
    api.add_fault("POST", DEVICES, status=500)
    api.add_fault("GET", DEVICES, status=429, headers={"Retry-After": "1"})
    provision(provider, specs_for(["cp-0"]))
    errors = []
    with pytest.raises(AuthenticationError) as info:
        make_provider(packet_cluster(api.project_id), client=MetalClient("wrong-token-abcdef", api.url)).find_servers()
    errors.append(info.value)
    servers = provider.find_servers()
    provider.delete_servers(servers)
    with pytest.raises(NotFound) as info:
        provider.ensure_bgp_session(servers[0])
    errors.append(info.value)
    captured = capsys.readouterr()
    assert "debug: POST" in captured.err
    texts = [captured.out, captured.err, caplog.text, repr(provider), repr(provider.client)]
    texts += [t for e in errors for t in (str(e), repr(e), "".join(traceback.format_exception(e)))]
    for text in texts:
        assert TOKEN not in text
        assert PASSWORD not in text
        assert "PRIVATE KEY" not in text


def test_the_plan_lists_the_calls_provisioning_makes(api, provider):
    """`v6kube plan` shows provider calls; they must be the ones the provider really makes."""
    import re

    from v6kube.providers import planned_calls

    provision(provider, specs_for())
    made = set()
    for record in api.recorded():
        path = re.sub(r"^/projects/[^/]+", "/projects/{project}", record.path)
        path = re.sub(r"^/devices/[^/]+", "/devices/{id}", path)
        made.add((record.method, path + ("?types=public_ipv6" if "types" in record.query else "")))
    planned = {(c["method"], c["path"]) for c in planned_calls(packet_cluster(api.project_id))}
    assert planned <= made
    assert {m for m in made if m[0] == "POST"} <= planned  # no POST the plan does not announce
