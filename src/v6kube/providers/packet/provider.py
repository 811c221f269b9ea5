"""The Packet / Equinix Metal provider: one Metal project, one cluster. Every operation is
find-then-create and safe to repeat.

Addresses requested for each device: the mandatory private IPv4, a public IPv6 (the node's
address; its /127 comes from the project's /56 in the metro) and, unless provider.public_ipv4 is
false, a public IPv4, so an operator without IPv6 can still SSH in (ssh.address_family
auto/ipv4). The cluster itself never uses IPv4.

The work lives in servers.py (devices, SSH key) and bgp.py (BGP); this class holds what they
share and answers the Provider protocol. Reference: shared/reference/metal-api.md (pitfall
numbers refer to its section 7).
"""

from __future__ import annotations

import os
import threading
import time
from ipaddress import IPv6Address, IPv6Network
from typing import Any, Callable, Mapping, Sequence

from v6kube.config import PacketProvider as PacketConfig
from v6kube.errors import NotFound
from v6kube.providers.base import BGPNeighbor, BGPProject, Server, ServerSpec, run_parallel
from v6kube.providers.packet.bgp import Bgp
from v6kube.providers.packet.client import MetalClient
from v6kube.providers.packet.devices import cluster_tag, reading, server_from_device
from v6kube.providers.packet.servers import Servers


class PacketProvider:
    """Servers, BGP and the /56 on one Metal project, for one cluster."""

    name = "packet"

    def __init__(
        self,
        cluster_name: str,
        config: PacketConfig,
        client: MetalClient | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        ssh_public_key: str | None = None,
        ssh_private_key_path: str | None = None,
        poll_interval: float = 10.0,
        neighbor_interval: float = 5.0,
        neighbor_timeout: float = 300.0,
        create_attempts: int = 3,
        max_workers: int = 16,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cluster_name = cluster_name
        self.config = config
        self.project = config.project
        self.tag = cluster_tag(cluster_name)
        self._client = client
        self._client_lock = threading.Lock()
        self.environ = os.environ if environ is None else environ
        self.ssh_public_key = ssh_public_key
        self.ssh_private_key_path = ssh_private_key_path
        self.poll_interval = poll_interval
        self.neighbor_interval = neighbor_interval
        self.neighbor_timeout = neighbor_timeout
        self.create_attempts = max(1, create_attempts)
        self.max_workers = max(1, max_workers)
        self.sleep = sleep
        self.clock = clock
        self.servers = Servers(self)
        self.bgp = Bgp(self)

    @property
    def client(self) -> MetalClient:
        # Built on first use, so commands that never call the API need no token.
        with self._client_lock:
            if self._client is None:
                self._client = MetalClient.from_env(self.config.api_url, self.environ)
            return self._client

    def __repr__(self) -> str:
        return f"PacketProvider(cluster={self.cluster_name!r}, project={self.project!r})"

    # --- servers -------------------------------------------------------------------------------

    def find_servers(self) -> list[Server]:
        return [server_from_device(d) for d in self.servers.by_hostname(self.servers.list_consistent()).values()]

    def find_server(self, hostname: str) -> Server | None:
        device = self.servers.find_device(hostname)
        return server_from_device(device) if device else None

    def ensure_servers(self, specs: Sequence[ServerSpec],
                       recorded_ids: Mapping[str, str] | None = None) -> list[Server]:
        return self.servers.ensure(specs, recorded_ids)

    def wait_servers(self, servers: Sequence[Server], timeout: float) -> list[Server]:
        return self.servers.wait(servers, timeout)

    def delete_servers(self, servers: Sequence[Server]) -> None:
        self.servers.delete(servers)

    def delete_cluster_resources(self) -> None:
        """Nothing besides the servers: the project's BGP config and /56 belong to the project."""

    def ensure_ssh_key(self, public_key: str) -> str:
        return self.servers.ensure_ssh_key(public_key)

    def find_taken_subnets(self) -> list[IPv6Network]:
        """Subnets recorded (as v6kube-subnet:<cidr> tags) by other v6kube clusters in the project."""
        return self.servers.taken_subnets()

    def find_bgp_sessions(self, servers: Sequence[Server]) -> dict[str, Any]:
        """Each server's BGP sessions as the API reports them (status per router, learned routes);
        read-only, for status."""
        return dict(zip([s.hostname for s in servers], run_parallel(
            lambda s: self.client.get(f"/devices/{s.id}/bgp/sessions", what=f"{s.hostname} (device {s.id})"),
            list(servers), self.max_workers, "packet")))

    def record_subnets(self, servers: Sequence[Server], subnets: Sequence[IPv6Network]) -> None:
        """A v6kube-subnet:<cidr> tag per subnet on each server that lacks one (PUT /devices/{id})."""
        self.servers.record_subnets(servers, subnets)

    # --- BGP -----------------------------------------------------------------------------------

    def ensure_bgp(self) -> BGPProject:
        return self.bgp.ensure()

    def ensure_bgp_session(self, server: Server) -> BGPNeighbor:
        """An IPv6 session for an active server, then its neighbour facts (polled until they appear)."""
        return self.bgp.ensure_sessions([server])[server.hostname]

    def ensure_bgp_sessions(self, servers: Sequence[Server]) -> dict[str, BGPNeighbor]:
        return self.bgp.ensure_sessions(servers)

    def wait_neighbors(self, servers: Sequence[Server]) -> dict[str, BGPNeighbor]:
        return self.bgp.wait_neighbors(servers)

    # --- the announceable block ----------------------------------------------------------------

    def find_block(self) -> IPv6Network:
        """The project's IPv6 /56 in the cluster's metro (it exists once a device is in the metro)."""
        blocks = self.client.list_all(f"/projects/{self.project}/ips", "ip_addresses",
                                      {"types": "public_ipv6", "include": "metro,facility"}, page_size=None)
        with reading(f"project {self.project}'s IP reservations"):
            block = self._pick_block(blocks)
        if block is not None:
            return block
        if self.servers.list():
            raise NotFound(f"project {self.project} has servers of this cluster but no public IPv6 /56 in metro "
                           f"{self.config.metro}", hint="check the project's IP reservations in the Metal console "
                           "(the /56 may have been released); the servers need it for their own addresses")
        raise NotFound(f"project {self.project} has no public IPv6 /56 in metro {self.config.metro} yet",
                       hint="the /56 appears with the first server in the metro: run the provision phase first")

    def _pick_block(self, blocks: Sequence[Mapping[str, Any]]) -> IPv6Network | None:
        candidates = []
        for block in blocks:
            if block.get("address_family") != 6 or not block.get("public") or block.get("cidr") != 56:
                continue
            # metro may be null on IP objects: fall back to the facility's metro (pitfall 9).
            metro = (block.get("metro") or {}).get("code") or \
                (((block.get("facility") or {}).get("metro")) or {}).get("code")
            if metro == self.config.metro:
                candidates.append(block)
        if not candidates:
            return None
        candidates.sort(key=lambda b: not b.get("management"))  # the precreated block first
        block = candidates[0]
        return IPv6Network(f"{IPv6Address(block['network'])}/{block['cidr']}", strict=False)
