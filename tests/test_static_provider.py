"""The static provider: everything from the cluster file, the password from the environment."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest

from v6kube.config import Cluster
from v6kube.errors import UsageError
from v6kube.providers import make_provider
from v6kube.providers.base import CONTROL_PLANE, WORKER, ServerSpec
from v6kube.redact import Secret

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBsT0pMvaLsHkBZBlMtpGTj5f3QSUkqXwOcF8M9RSdxm"


def static_cluster(**provider) -> Cluster:
    return Cluster.model_validate({
        "name": "lab",
        "provider": {"type": "static", "block": "2001:db8:100::/56", "peers": ["2001:db8:0:1::1", "fd00::ff"],
                     **provider},
        "nodes": [
            {"name": "cp-0", "role": "control-plane", "address": "2001:db8:0:1::10", "gateway": "2001:db8:0:1::1",
             "public_ipv4": "192.0.2.10", "host_key": HOST_KEY},
            {"name": "w-0", "role": "worker", "address": "2001:db8:0:1::11", "gateway": "2001:db8:0:1::1",
             "prefix_length": 64},
        ],
    })


def test_servers_come_from_the_cluster_file():
    provider = make_provider(static_cluster(), environ={})
    assert provider.name == "static"
    cp, w = provider.find_servers()
    assert (cp.id, cp.hostname, cp.role, cp.state) == ("cp-0", "cp-0", CONTROL_PLANE, "active")
    assert (cp.ipv6, cp.ipv6_gateway, cp.ipv6_prefixlen) == \
        (IPv6Address("2001:db8:0:1::10"), IPv6Address("2001:db8:0:1::1"), 64)
    assert cp.ipv4_public == IPv4Address("192.0.2.10") and cp.host_public_key == HOST_KEY
    assert (w.role, w.ipv4_public, w.host_public_key) == (WORKER, None, None)


def test_ensure_and_wait_return_the_configured_servers():
    provider = make_provider(static_cluster(), environ={})
    servers = provider.ensure_servers([ServerSpec("w-0", WORKER)])
    assert [s.hostname for s in servers] == ["w-0"]
    assert provider.wait_servers(servers, timeout=1) == servers


def test_a_server_not_in_the_file_cannot_be_created():
    provider = make_provider(static_cluster(), environ={})
    with pytest.raises(UsageError, match="w-9"):
        provider.ensure_servers([ServerSpec("w-9", WORKER)])


def test_bgp_facts_come_from_the_file_and_the_environment():
    provider = make_provider(static_cluster(local_asn=64600, peer_asn=64700, multihop=False, max_prefix=20,
                                            bgp_password_env="LAB_BGP"), environ={"LAB_BGP": "router-secret"})
    bgp = provider.ensure_bgp()
    assert (bgp.local_asn, bgp.max_prefix, bgp.password) == (64600, 20, Secret("router-secret"))
    server = provider.find_servers()[0]
    neighbor = provider.ensure_bgp_session(server)
    assert neighbor.peer_ips == (IPv6Address("2001:db8:0:1::1"), IPv6Address("fd00::ff"))
    assert (neighbor.peer_asn, neighbor.local_asn, neighbor.multihop) == (64700, 64600, False)
    assert neighbor.local_ip == server.ipv6 and neighbor.password == Secret("router-secret")
    assert neighbor.routes_in == (IPv6Network("2001:db8:100::/56"),)
    assert provider.find_block() == IPv6Network("2001:db8:100::/56")
    assert set(provider.ensure_bgp_sessions(provider.find_servers())) == {"cp-0", "w-0"}


def test_no_password_without_bgp_password_env():
    provider = make_provider(static_cluster(), environ={})
    assert provider.ensure_bgp().password is None
    assert provider.ensure_bgp_session(provider.find_servers()[0]).password is None


def test_a_named_but_missing_password_variable_is_a_clear_error():
    provider = make_provider(static_cluster(bgp_password_env="LAB_BGP"), environ={})
    with pytest.raises(UsageError) as info:
        provider.ensure_bgp()
    assert "LAB_BGP" in str(info.value) and "bgp_password_env" in str(info.value)


def test_delete_is_a_no_op_that_says_so(capsys):
    provider = make_provider(static_cluster(), environ={})
    provider.delete_servers(provider.find_servers())
    err = capsys.readouterr().err
    assert "not deleted" in err and "cp-0" in err
    assert len(provider.find_servers()) == 2


def test_the_static_provider_does_not_load_the_http_client():
    import subprocess
    import sys

    code = ("import sys; from v6kube.config import Cluster; from v6kube.providers import make_provider; "
            "from test_static_provider import static_cluster; make_provider(static_cluster(), environ={}); "
            "print('requests' in sys.modules, 'v6kube.providers.packet' in sys.modules)")
    from pathlib import Path

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parent)
    assert result.stdout.split() == ["False", "False"]


def test_server_ready_and_failed_read_every_provider_s_words():
    from v6kube.providers.base import Server

    words = {"active": (True, False), "powered-on": (True, False), "failed": (False, True), "error": (False, True),
             "queued": (False, False), "creating": (False, False)}
    for state, expected in words.items():
        server = Server(id="x", hostname="h", role="worker", state=state)
        assert (server.ready, server.failed) == expected, state
