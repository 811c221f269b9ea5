"""The Packet / Equinix Metal provider (DESIGN section 2): client.py (the API on the shared HTTP
layer), devices.py (tags, cloud-init, Device -> Server), servers.py (find-then-create, wait,
delete), bgp.py (Local BGP, sessions, neighbours), provider.py (the Provider protocol)."""

from __future__ import annotations

import os
from typing import Any, Mapping

from v6kube.config import Cluster
from v6kube.providers.packet.client import MetalClient, base_url_from, token_from_env
from v6kube.providers.hostkeys import cloud_config
from v6kube.providers.packet.devices import cluster_tag, role_tag, subnet_tag
from v6kube.providers.packet.provider import PacketProvider

__all__ = ["MetalClient", "PacketProvider", "cloud_config", "cluster_tag", "from_cluster", "planned_calls",
           "plan_phases", "role_tag", "subnet_tag"]


def from_cluster(cluster: Cluster, *, client: MetalClient | None = None,
                 environ: Mapping[str, str] | None = None, api_url: str | None = None,
                 client_options: Mapping[str, Any] | None = None, **options: Any) -> PacketProvider:
    """The provider for a cluster file. Without `client` or `api_url` the client is built on first use
    (URL: METAL_API_URL, then provider.api_url, then the public API)."""
    if client is None and (api_url is not None or client_options):
        env = os.environ if environ is None else environ
        url = api_url or base_url_from(cluster.provider.api_url, env)
        client = MetalClient(token_from_env(env), url, **dict(client_options or {}))
    options.setdefault("ssh_private_key_path", cluster.ssh.private_key)
    return PacketProvider(cluster.name, cluster.provider, client, environ=environ, **options)


def plan_phases(cluster: Cluster) -> dict[str, str]:
    """What create's provider phases do on Packet (phase name -> summary), for `v6kube plan`."""
    return {
        "provision": f"find or create the servers in project {cluster.provider.project}, metro "
                     f"{cluster.provider.metro} (find-then-create by hostname and tag), wait until every one is active",
        "bgp": "enable Local BGP for the project, one IPv6 session per server, read each server's neighbours",
    }


def planned_calls(cluster: Cluster) -> list[dict[str, str]]:
    """The API calls create makes, in order, for `v6kube plan` (POSTs only for what is missing)."""
    p, metro = "{project}", cluster.provider.metro
    calls = [
        ("GET", f"/projects/{p}/bgp-config", "is BGP enabled for the project?"),
        ("POST", f"/projects/{p}/bgp-configs", "enable Local BGP (only when not enabled)"),
        ("GET", f"/projects/{p}/devices", "subnets other v6kube clusters in the project use (tag v6kube)"),
        ("GET", f"/projects/{p}/devices", f"find the cluster's servers (tag {cluster_tag(cluster.name)})"),
        ("GET", f"/projects/{p}/ssh-keys", "find the SSH key by fingerprint"),
        ("POST", f"/projects/{p}/ssh-keys", "add the SSH key (only when missing)"),
    ]
    for n in cluster.nodes:
        calls.append(("GET", f"/projects/{p}/devices", f"confirm {n.name} is missing, by hostname (only when the list took several pages)"))
        calls.append(("POST", f"/projects/{p}/devices", f"create {n.name} (only when missing)"))
    calls.append(("GET", f"/projects/{p}/devices", "poll until every server is active (one list per interval)"))
    for n in cluster.nodes:
        calls.append(("POST", "/devices/{id}/bgp/sessions", f"IPv6 BGP session for {n.name} (only when missing)"))
        calls.append(("GET", "/devices/{id}/bgp/neighbors", f"BGP neighbours of {n.name}"))
    calls.append(("GET", f"/projects/{p}/ips?types=public_ipv6", f"the project's IPv6 /56 in metro {metro}"))
    return [{"method": m, "path": path, "purpose": why} for m, path, why in calls]
