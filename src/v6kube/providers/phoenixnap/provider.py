"""The phoenixNAP Bare Metal Cloud provider: one account and location, one cluster.

The work lives in network.py (IPv6 /64 blocks, the public network, the BGP peer group) and
servers.py; this class holds what they share and answers the Provider protocol. There are no
per-server BGP sessions: the location's peer group covers every server on the account's public
networks, so ensure_bgp_sessions checks each server's address is on the cluster's public network
and returns the group's IPv6 peering loopbacks (AS 65400, multihop) as its neighbours.
"""

from __future__ import annotations

import os
import threading
import time
from ipaddress import IPv6Network
from pathlib import Path
from typing import Callable, Mapping, Sequence

from v6kube import console
from v6kube.config import PhoenixnapProvider as PnapConfig
from v6kube.errors import NotFound, ProviderError, Unprocessable, UsageError
from v6kube.providers.base import BGPNeighbor, BGPProject, Server, ServerSpec
from v6kube.providers.hostkeys import key_blob
from v6kube.providers.http import post_or_find
from v6kube.providers.phoenixnap.client import PnapClients
from v6kube.providers.phoenixnap.network import PEER_ASN, Network
from v6kube.providers.phoenixnap.servers import Servers, same_key


class PhoenixnapProvider:
    name = "phoenixnap"

    def __init__(self, cluster_name: str, config: PnapConfig, clients: PnapClients | None = None, *,
                 environ: Mapping[str, str] | None = None, ssh_public_key: str | None = None,
                 ssh_private_key_path: str | None = None, poll_interval: float = 15.0, bgp_timeout: float = 1800.0,
                 delete_timeout: float = 1800.0, create_attempts: int = 3, max_workers: int = 16,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.cluster_name, self.config = cluster_name, config
        self._clients = clients
        self._lock = threading.Lock()
        self.environ = os.environ if environ is None else environ
        self.ssh_public_key, self.ssh_private_key_path = ssh_public_key, ssh_private_key_path
        self.poll_interval, self.bgp_timeout, self.delete_timeout = poll_interval, bgp_timeout, delete_timeout
        self.create_attempts, self.max_workers = max(1, create_attempts), max(1, max_workers)
        self.sleep, self.clock = sleep, clock
        self.network = Network(self)
        self.servers = Servers(self)
        self._bgp: BGPProject | None = None

    @property
    def clients(self) -> PnapClients:
        with self._lock:  # built on first use: commands that never call the API need no credentials
            if self._clients is None:
                self._clients = PnapClients.from_env(self.config.api_url, self.environ)
            return self._clients

    def __repr__(self) -> str:
        return f"PhoenixnapProvider(cluster={self.cluster_name!r}, location={self.config.location!r})"

    # --- servers -------------------------------------------------------------------------------

    def find_servers(self) -> list[Server]:
        return [self.servers.to_server(s) for s in self.servers.list().values()]

    def ensure_servers(self, specs: Sequence[ServerSpec],
                       recorded_ids: Mapping[str, str] | None = None) -> list[Server]:
        return self.servers.ensure(specs, recorded_ids)

    def wait_servers(self, servers: Sequence[Server], timeout: float) -> list[Server]:
        return self.servers.wait(servers, timeout)

    def delete_servers(self, servers: Sequence[Server]) -> None:
        self.servers.delete(servers)

    def delete_cluster_resources(self) -> None:
        """After the servers: the public network and the cluster's IPv6 blocks (the location's
        BGP peer group is shared by every cluster there and stays)."""
        self.network.delete_all()

    # --- addresses -----------------------------------------------------------------------------

    def find_block(self) -> IPv6Network:
        """The pods' /64 (phoenixNAP has no /56: see find_blocks for every /64 the cluster announces)."""
        return self.find_blocks()["pods"]

    def find_blocks(self) -> dict[str, IPv6Network]:
        """The cluster's /64s by purpose: servers, pods, services[, loadbalancer]. Never creates
        them (ensure_servers does): a missing one is NotFound."""
        blocks = self.network.subnets(create=False)
        missing = [p for p in self.network.purposes if p not in blocks]
        if missing:
            raise NotFound(f"cluster {self.cluster_name} has no IPv6 /64 for {', '.join(missing)} in "
                           f"{self.config.location} yet", hint="run the provision phase first (it creates them)")
        return blocks

    def find_taken_subnets(self) -> list[IPv6Network]:
        return self.network.taken_subnets()

    def record_subnets(self, servers: Sequence[Server], subnets: Sequence[IPv6Network]) -> None:
        """Nothing: the cluster's own /64 blocks already keep clusters apart."""

    # --- BGP -----------------------------------------------------------------------------------

    def ensure_bgp(self) -> BGPProject:
        self._bgp = self.network.ensure_group()
        return self._bgp

    def ensure_bgp_session(self, server: Server) -> BGPNeighbor:
        return self.ensure_bgp_sessions([server])[server.hostname]

    def ensure_bgp_sessions(self, servers: Sequence[Server]) -> dict[str, BGPNeighbor]:
        """No sessions to create: check each server is on the peer group's public network."""
        bgp = self._bgp or self.ensure_bgp()
        blocks = self.network.subnets()
        group = self.network.wait_prefixes(set(blocks.values()))
        network = self.network.find_network() or self.network.ensure_network()  # fresh memberships
        members = {m.get("resourceId") for m in network.get("memberships") or []}
        announced = tuple(b for b in blocks.values())
        peers = tuple(self._v6(ip) for ip in group.get("peeringLoopbacksV6") or [])
        if not peers:
            raise ProviderError(f"the BGP peer group of {self.config.location} lists no IPv6 peering loopbacks",
                                hint="check the peer group in the BMC portal")
        neighbors = {}
        for server in servers:
            if server.ipv6 is None or server.ipv6 not in blocks["servers"] or (members and server.id not in members):
                raise ProviderError(f"{server.hostname} (server {server.id}) is not on the cluster's public network "
                                    f"{self.network.network_name} ({blocks['servers']}), so it cannot peer",
                                    hint="wait for the server to power on; if it persists, add it to the network")
            neighbors[server.hostname] = BGPNeighbor(
                peer_ips=peers, peer_asn=PEER_ASN, local_asn=bgp.local_asn, local_ip=server.ipv6,
                multihop=int(group.get("eBgpMultiHop") or 2) > 1, password=bgp.password, routes_in=announced)
        return neighbors

    @staticmethod
    def _v6(text: str):
        from ipaddress import IPv6Address

        return IPv6Address(text.split("/")[0])

    # --- SSH key -------------------------------------------------------------------------------

    def _operator_key(self) -> str | None:
        if self.ssh_public_key:
            return self.ssh_public_key.strip()
        if not self.ssh_private_key_path:
            return None
        path = Path(os.path.expanduser(self.ssh_private_key_path + ".pub"))
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the SSH public key {path}: {exc.strerror}",
                             hint="new servers authorize this key; create it with ssh-keygen -y") from None

    def ssh_key_ids(self) -> list[str]:
        """The account SSH key matching the operator's key (created when missing)."""
        public_key = self._operator_key()
        if public_key is None:
            console.warn("no SSH public key given: new servers get the account's default SSH keys")
            return []
        try:
            key_blob(public_key)
        except ValueError as exc:
            raise UsageError(f"the SSH public key is not valid: {exc}") from None
        bmc = self.clients.bmc

        def find() -> str | None:
            return next((k["id"] for k in bmc.get("/ssh-keys") or [] if same_key(k.get("key"), public_key)), None)

        found = find()
        if found:
            return [found]
        body = {"default": False, "name": f"v6kube-{self.cluster_name}", "key": " ".join(public_key.split()[:2])}

        def create() -> str:
            try:
                return bmc.post("/ssh-keys", body, what="the operator's SSH key")["id"]
            except Unprocessable:  # 409: the key (or the name) exists
                again = find()
                if again is None:
                    raise
                return again

        key_id = post_or_find(bmc, create, find, "add SSH key", attempts=self.create_attempts, sleep=self.sleep)
        console.progress("phoenixnap", None, "added the operator's SSH key to the account")
        return [key_id]
