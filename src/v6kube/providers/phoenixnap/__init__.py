"""The phoenixNAP Bare Metal Cloud provider (DESIGN section 2): client.py (OAuth2 and the three
APIs on the shared HTTP layer), network.py (IPv6 /64 blocks, the public network, the BGP peer
group), servers.py, provider.py (the Provider protocol). Facts: reference/phoenixnap/README.md."""

from __future__ import annotations

from typing import Any, Mapping

from v6kube.config import Cluster
from v6kube.providers.phoenixnap.client import PnapClients, credentials_from_env
from v6kube.providers.phoenixnap.provider import PhoenixnapProvider

__all__ = ["PhoenixnapProvider", "PnapClients", "from_cluster", "plan_phases", "planned_calls"]


def from_cluster(cluster: Cluster, *, clients: PnapClients | None = None, environ: Mapping[str, str] | None = None,
                 api_url: str | None = None, auth_url: str | None = None,
                 client_options: Mapping[str, Any] | None = None, **options: Any) -> PhoenixnapProvider:
    """Without `clients` or `api_url` the clients are built on first use (PNAP_API_URL, then
    provider.api_url, then the public API; PNAP_AUTH_URL, then the public token endpoint)."""
    if clients is None and api_url is not None:
        client_id, secret = credentials_from_env(environ)
        extra = {"auth_url": auth_url} if auth_url else {}
        clients = PnapClients.create(client_id, secret, api_url, **extra, **dict(client_options or {}))
    options.setdefault("ssh_private_key_path", cluster.ssh.private_key)
    return PhoenixnapProvider(cluster.name, cluster.provider, clients, environ=environ, **options)


def plan_phases(cluster: Cluster) -> dict[str, str]:
    p = cluster.provider
    blocks = "servers, pods, services" + (", LoadBalancer addresses" if p.loadbalancer_block else "")
    return {
        "provision": f"find or create the cluster's IPv6 /64 blocks in {p.location} ({blocks}), its public network "
                     f"(router advertisements on) and the servers ({p.server_type}, {p.os}) on it; wait until "
                     "every one is powered on",
        "bgp": f"find or create the BGP peer group of {p.location} (wait until READY), check every server is on "
               "the public network, peer with the group's IPv6 loopbacks (AS 65400, multihop)",
    }


def planned_calls(cluster: Cluster) -> list[dict[str, str]]:
    p = cluster.provider
    calls = [
        ("POST", "/auth/realms/BMC/protocol/openid-connect/token", "an OAuth2 access token (again before it expires)"),
        ("GET", "/networks/v1/bgp-peer-groups", f"the BGP peer group of {p.location}"),
        ("POST", "/networks/v1/bgp-peer-groups", "create it (only when missing), then poll until READY"),
        ("GET", "/ips/v1/ip-blocks", f"the cluster's IPv6 /64 blocks (tag v6kube-cluster.{cluster.name})"),
        ("POST", "/ips/v1/ip-blocks", "create each missing /64 (servers, pods, services)"),
        ("GET", "/networks/v1/public-networks", f"the public network v6kube-{cluster.name}"),
        ("POST", "/networks/v1/public-networks", "create it with the servers' /64 and raEnabled (only when missing)"),
        ("GET", "/bmc/v1/ssh-keys", "find the SSH key"),
        ("POST", "/bmc/v1/ssh-keys", "add the SSH key (only when missing)"),
        ("GET", "/bmc/v1/servers", "find the cluster's servers by tag"),
    ]
    calls += [("POST", "/bmc/v1/servers", f"create {n.name} (only when missing)") for n in cluster.nodes]
    calls.append(("GET", "/bmc/v1/servers", "poll until every server is powered on (one list per interval)"))
    return [{"method": m, "path": path, "purpose": why} for m, path, why in calls]
