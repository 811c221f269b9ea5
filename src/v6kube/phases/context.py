"""What every phase works with: the cluster, its state, the provider, and facts read on demand.

A phase that is skipped (done already, or not selected) leaves nothing behind in memory, so each
fact a later phase needs is read lazily from the truth: servers and BGP facts from the provider
(find-then-create calls that change nothing when everything exists), the Kubernetes version from
the control plane, connections opened on first use.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from v6kube import redact
from v6kube.addressing import NodeAddress
from v6kube.config import Cluster, Node
from v6kube.errors import ProviderError, StateError, V6kubeError
from v6kube.providers.base import BGPNeighbor, BGPProject, Server
from v6kube.state import State

T = TypeVar("T")
ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBECTL = f"kubectl --kubeconfig={ADMIN_CONF}"
REMOTE_DIR = "/etc/v6kube"  # what v6kube writes on a node, besides the prepare steps' files


def _seconds(variable: str, default: float) -> float:
    try:
        return float(os.environ.get(variable, default))
    except ValueError:
        return default


@dataclass
class Timeouts:
    """Deadlines and the poll interval; V6KUBE_*_TIMEOUT / V6KUBE_POLL_INTERVAL override them."""

    provision: float = field(default_factory=lambda: _seconds("V6KUBE_PROVISION_TIMEOUT", 3600.0))
    calico: float = field(default_factory=lambda: _seconds("V6KUBE_CALICO_TIMEOUT", 900.0))
    api: float = field(default_factory=lambda: _seconds("V6KUBE_API_TIMEOUT", 300.0))
    poll: float = field(default_factory=lambda: _seconds("V6KUBE_POLL_INTERVAL", 10.0))


def _covering(networks: list[IPv6Network]) -> IPv6Network:
    """The smallest prefix that holds every network."""
    block = networks[0]
    while not all(n.subnet_of(block) for n in networks):
        block = block.supernet()
    return block


def with_added_nodes(cluster: Cluster, state: State) -> Cluster:
    """The cluster file's nodes plus those join-worker --count added (recorded in the state)."""
    names = {n.name for n in cluster.nodes}
    added = [Node(name=n["name"], role=n["role"]) for n in state.added_nodes() if n["name"] not in names]
    return cluster.model_copy(update={"nodes": [*cluster.nodes, *added]}) if added else cluster


@dataclass
class Run:
    cluster: Cluster
    state: State
    provider: Any
    source: str  # the cluster file, for messages
    command: str  # e.g. "create cluster.yaml", for "run ... again" hints
    timeouts: Timeouts = field(default_factory=Timeouts)
    only_nodes: tuple[str, ...] | None = None  # join-worker: the new nodes; None: every node
    connect_timeout: float | None = None  # status: a shorter SSH deadline than the file's
    read_only: bool = False  # status: BGP facts from the state, no provider call that could create
    _connections: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- nodes ---------------------------------------------------------------------------------

    @property
    def node_names(self) -> list[str]:
        """The nodes this run works on (all, or join-worker's new ones), in file order."""
        names = [n.name for n in self.cluster.nodes]
        return [n for n in names if self.only_nodes is None or n in self.only_nodes]

    @property
    def control_plane(self) -> str:
        return self.cluster.control_plane.name

    def workers(self) -> list[str]:
        roles = {n.name: n.role for n in self.cluster.nodes}
        return [n for n in self.node_names if roles[n] == "worker"]

    # --- provider facts ------------------------------------------------------------------------

    @cached_property
    def servers(self) -> dict[str, Server]:
        """Every node's server, as the provider reports it now (provision sets it when it runs)."""
        found = {s.hostname: s for s in self.provider.find_servers()}
        missing = [n.name for n in self.cluster.nodes if n.name not in found]
        if missing:
            raise ProviderError(f"no server for {', '.join(missing)}",
                                hint=f"run 'v6kube {self.command}' without --only/--skip-phases so that "
                                     "the provision phase creates it")
        return {n.name: found[n.name] for n in self.cluster.nodes}

    @cached_property
    def bgp_project(self) -> BGPProject:
        project = self.provider.ensure_bgp()
        if project.password:
            redact.register(project.password.reveal())
        return project

    @cached_property
    def neighbors(self) -> dict[str, BGPNeighbor]:
        found = self.provider.ensure_bgp_sessions([self.servers[n.name] for n in self.cluster.nodes])
        for neighbor in found.values():
            if neighbor.password:
                redact.register(neighbor.password.reveal())
        return found

    @cached_property
    def block(self) -> IPv6Network:
        """The announced block. phoenixNAP gives the cluster separate /64s instead (servers, pods,
        services[, loadbalancer]): the block is the smallest prefix holding them all, and the
        subnets are fixed to those /64s (see `plan`)."""
        blocks = self._own_blocks()
        if blocks:
            return _covering(list(blocks.values()))
        return self.provider.find_block()

    def _own_blocks(self) -> dict[str, IPv6Network] | None:
        find_blocks = getattr(self.provider, "find_blocks", None)
        return find_blocks() if find_blocks else None

    def node_addresses(self) -> tuple[NodeAddress, ...]:
        out = []
        for node in self.cluster.nodes:
            server = self.servers[node.name]
            address = node.address or server.ipv6
            gateway = node.gateway or server.ipv6_gateway
            if address is None or gateway is None:
                raise ProviderError(f"{node.name}: the provider reports no IPv6 address or gateway "
                                    f"(server {server.id})", hint="check the server at the provider")
            prefixlen = server.ipv6_prefixlen or node.prefix_length
            out.append(NodeAddress(node.name, node.role, address, prefixlen, gateway))
        return tuple(out)

    @cached_property
    def plan(self):
        """The cluster plan from the real facts. The pod and service subnets are chosen once and
        kept in the state, so they never move under a running cluster."""
        from v6kube import planner

        bgp, max_prefix = self._bgp_facts()
        cluster = self.cluster
        recorded = self.state.fact("subnets")
        own = self._own_blocks()
        if own and not recorded:  # the provider's own /64s: pods the whole /64, services a /108 in its
            recorded = {"pods": str(own["pods"]), "services": str(next(own["services"].subnets(new_prefix=108)))}
        if recorded:
            k8s = cluster.kubernetes.model_copy(update={"pod_subnet": IPv6Network(recorded["pods"]),
                                                        "service_subnet": IPv6Network(recorded["services"])})
            cluster = cluster.model_copy(update={"kubernetes": k8s})
        taken_by_others = tuple(getattr(self.provider, "find_taken_subnets", lambda: [])())
        plan = planner.live_plan(cluster, self.block, self.node_addresses(), bgp, max_prefix,
                                 taken=taken_by_others, source=self.source)
        if not recorded:
            self.state.set_fact("subnets", {"pods": str(plan.addresses.pod_subnet),
                                            "services": str(plan.addresses.service_subnet)})
            self.state.save()
        return plan

    def _bgp_facts(self):
        """BGP facts from the provider (find-then-create), recorded in the state; a read-only run
        (status) takes the recorded ones and calls nothing that could create."""
        from v6kube import planner

        if self.read_only:
            fact = self.state.fact("bgp")
            if not fact:
                raise StateError(f"no BGP facts recorded for {self.cluster.name}",
                                 hint=f"run 'v6kube create {self.source}' first, or pass the right --state-dir")
            bgp = planner.BGPPlan(fact["local_asn"], fact["peer_asn"], tuple(IPv6Address(p) for p in fact["peers"]),
                                  fact["multihop"], "provider" if fact["password"] else None)
            return bgp, fact["max_prefix"]
        neighbors = self.neighbors
        first = neighbors[self.control_plane]
        peers = tuple(dict.fromkeys(ip for n in neighbors.values() for ip in n.peer_ips))
        password = bool(first.password or self.bgp_project.password)
        bgp = planner.BGPPlan(first.local_asn, first.peer_asn, peers, first.multihop, "provider" if password else None)
        self.state.set_fact("bgp", {"local_asn": bgp.local_asn, "peer_asn": bgp.peer_asn, "peers": [str(p) for p in peers],
                                    "multihop": bgp.multihop, "max_prefix": self.bgp_project.max_prefix,
                                    "password": password})
        return bgp, self.bgp_project.max_prefix

    @property
    def secrets(self):
        from v6kube.planner import Secrets

        neighbor = self.neighbors[self.control_plane]
        return Secrets(bgp_password=neighbor.password or self.bgp_project.password)

    # --- connections ---------------------------------------------------------------------------

    def ssh_options(self):
        from v6kube.ssh import SSHOptions

        options = SSHOptions.from_config(self.cluster.ssh, log_dir=self.state.logs_dir)
        if self.connect_timeout is not None:
            options = dataclasses.replace(options, connect_timeout=self.connect_timeout)
        return options

    def connections(self, names: list[str] | None = None) -> dict[str, Any]:
        """Open (once) and return connections to `names` (default: this run's nodes)."""
        from v6kube import ssh

        names = self.node_names if names is None else names
        with self._lock:
            wanted = [n for n in names if n not in self._connections]
            if wanted:
                targets = [t for t in ssh.targets_for(self.cluster, self.servers.values(), self.state.host_keys())
                           if t.node in wanted]
                opened = ssh.open_connections(targets, self.ssh_options(), phase="ssh")
                self._connections.update(opened)
                if ssh.record_host_keys(self.state, opened):
                    self.state.save()
        return {n: self._connections[n] for n in names}

    def connection(self, name: str) -> Any:
        return self.connections([name])[name]

    def on_nodes(self, names: list[str], work: Callable[[str], T]) -> dict[str, T]:
        """`work(name)` on every node at once; every node finishes, then the first failure (in
        the given order) is raised."""
        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=min(32, len(names)), thread_name_prefix="node") as pool:
            futures = {name: pool.submit(work, name) for name in names}
        errors = [f.exception() for f in futures.values() if f.exception() is not None]
        if errors:
            raise errors[0]
        return {name: f.result() for name, f in futures.items()}

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    # --- facts read on the control plane ---------------------------------------------------------

    @cached_property
    def kubernetes_version(self) -> str:
        """The exact version of the kubeadm installed on the control plane (e.g. v1.33.4)."""
        out = self.connection(self.control_plane).run("kubeadm version -o short", phase="control-plane",
                                                      echo=False).stdout.strip()
        if not out.startswith(f"v{self.cluster.kubernetes.version}."):
            raise V6kubeError(f"{self.control_plane}: kubeadm reports {out!r}, not a "
                             f"{self.cluster.kubernetes.version}.x release",
                             hint="the prepare phase installs the wanted minor; run it again")
        return out

    def remote_path(self, *parts: str) -> str:
        return "/".join([REMOTE_DIR, *parts])

    def local_path(self, name: str) -> Path:
        return self.state.directory / name
