"""The static provider: servers you already own, behind a router that speaks BGP.

Everything comes from the cluster file (provider block and each node's address, gateway, public
IPv4 and host key); the BGP password comes from the environment variable named by
provider.bgp_password_env. Nothing is created or deleted.
"""

from __future__ import annotations

import os
from ipaddress import IPv6Network
from typing import Any, Mapping, Sequence

from v6kube import console
from v6kube.config import Cluster, Node
from v6kube.config import StaticProvider as StaticConfig
from v6kube.errors import UsageError
from v6kube.providers.base import BGPNeighbor, BGPProject, Server, ServerSpec, password_from_env
from v6kube.redact import Secret


def server_from_node(node: Node) -> Server:
    return Server(
        id=node.name,
        hostname=node.name,
        role=node.role,
        state="active",
        ipv6=node.address,
        ipv6_gateway=node.gateway,
        ipv6_prefixlen=node.prefix_length,
        ipv4_public=node.public_ipv4,
        host_public_key=node.host_key,
    )


class StaticProvider:
    name = "static"

    def __init__(self, cluster: Cluster, *, environ: Mapping[str, str] | None = None):
        if not isinstance(cluster.provider, StaticConfig):
            raise UsageError(f"cluster {cluster.name}: provider.type is {cluster.provider.type}, not static")
        self.cluster = cluster
        self.config: StaticConfig = cluster.provider
        self.environ = os.environ if environ is None else environ

    def __repr__(self) -> str:
        return f"StaticProvider(cluster={self.cluster.name!r})"

    def _password(self) -> Secret | None:
        return password_from_env(self.config.bgp_password_env, self.environ)

    def find_servers(self) -> list[Server]:
        return [server_from_node(node) for node in self.cluster.nodes]

    def ensure_servers(self, specs: Sequence[ServerSpec],
                       recorded_ids: Mapping[str, str] | None = None) -> list[Server]:
        """The configured servers for these specs; a spec the cluster file does not list is an error.
        Ids are the node names, so recorded ids add nothing here."""
        servers = {s.hostname: s for s in self.find_servers()}
        unknown = [spec.name for spec in specs if spec.name not in servers]
        if unknown:
            raise UsageError(f"the static provider cannot create servers: {', '.join(unknown)} "
                             "not in the cluster file", hint="add the node with its address and gateway")
        return [servers[spec.name] for spec in specs]

    def wait_servers(self, servers: Sequence[Server], timeout: float) -> list[Server]:
        return list(servers)  # they already run; the SSH step waits for them to answer

    def ensure_bgp(self) -> BGPProject:
        return BGPProject(local_asn=self.config.local_asn, password=self._password(),
                          max_prefix=self.config.max_prefix)

    def ensure_bgp_session(self, server: Server) -> BGPNeighbor:
        return BGPNeighbor(
            peer_ips=tuple(self.config.peers),
            peer_asn=self.config.peer_asn,
            local_asn=self.config.local_asn,
            local_ip=server.ipv6,
            multihop=self.config.multihop,
            password=self._password(),
            routes_in=(self.config.block,),
        )

    def ensure_bgp_sessions(self, servers: Sequence[Server]) -> dict[str, BGPNeighbor]:
        return {s.hostname: self.ensure_bgp_session(s) for s in servers}

    def find_block(self) -> IPv6Network:
        return self.config.block

    def find_taken_subnets(self) -> list[IPv6Network]:
        return []  # the cluster file owns the block: nothing else is known to share it

    def delete_cluster_resources(self) -> None:
        """Nothing: the static provider owns nothing at a provider."""

    def record_subnets(self, servers: Sequence[Server], subnets: Sequence[IPv6Network]) -> None:
        """Nothing: no other cluster reads a static block."""

    def delete_servers(self, servers: Sequence[Server]) -> None:
        if servers:
            names = ", ".join(s.hostname for s in servers)
            console.progress("static", None, f"servers are not deleted with the static provider: {names} keep running")


def from_cluster(cluster: Cluster, *, environ: Mapping[str, str] | None = None, **options: Any) -> StaticProvider:
    return StaticProvider(cluster, environ=environ)


def plan_phases(cluster: Cluster) -> dict[str, str]:
    """What create's provider phases do with servers the user already has (nothing is created)."""
    return {
        "provision": "use the servers listed in the cluster file (addresses and gateways from the file; "
                     "nothing is created, so no provider API is called)",
        "bgp": f"peer every node with the routers in provider.peers (AS {cluster.provider.peer_asn}); "
               "nothing to enable at a provider",
    }


def planned_calls(cluster: Cluster) -> list[dict[str, str]]:
    return []  # no API
