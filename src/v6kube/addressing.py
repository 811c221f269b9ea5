"""The IPv6 address plan: pure functions from the cluster file and provider facts to subnets.

Deterministic carving (DESIGN section 3), for a block of /62 or larger:
  - the servers' own /64s (those holding a node address) are never used;
  - pods: the first free /64 of the block;
  - services: the first /108 of the next free /64.
For a smaller block (a /63 up to a /107) the block is split in two: pods get the first half,
services the first /108 (or the half itself, when smaller) of the second half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Iterator, Sequence

from v6kube.errors import Problem

if TYPE_CHECKING:
    from v6kube.config import Cluster

POD_PREFIX = 64
SERVICE_PREFIX = 108
SERVICE_PREFIX_MIN = 108  # kubeadm: at most 2^20 service addresses
SERVICE_PREFIX_MAX = 120  # at least 256 addresses (kubeadm needs 10; leave room to grow)
NODE_MASK_SPAN = 16  # kubeadm: node mask - pod prefix <= 16
NODE_MASK_MAX = 120  # a node range keeps at least 256 addresses (> 110 pods)
MIN_NODE_RANGES = 16
MAX_PODS_PER_NODE = 110  # the kubelet default


@dataclass(frozen=True)
class NodeAddress:
    name: str
    role: str
    address: IPv6Address
    prefixlen: int
    gateway: IPv6Address


@dataclass(frozen=True)
class AddressPlan:
    block: IPv6Network
    nodes: tuple[NodeAddress, ...]
    server_networks: tuple[IPv6Network, ...]
    pod_subnet: IPv6Network
    service_subnet: IPv6Network
    node_cidr_mask: int
    block_size: int
    max_prefix: int
    announced: tuple[IPv6Network, ...]  # what every node may advertise besides its pod blocks
    assumed: tuple[str, ...] = field(default=())  # facts taken from defaults, not from the provider

    @property
    def api_service_ip(self) -> IPv6Address:
        return self.service_subnet[1]

    @property
    def dns_service_ip(self) -> IPv6Address:
        return self.service_subnet[10]

    @property
    def node_ranges(self) -> int:
        return 2 ** (self.node_cidr_mask - self.pod_subnet.prefixlen)

    @property
    def prefixes_per_node(self) -> int:
        return prefixes_per_node(self.block_size, len(self.announced))

    def node(self, name: str) -> NodeAddress:
        return next(n for n in self.nodes if n.name == name)

    def as_dict(self) -> dict:
        return {
            "block": str(self.block),
            "server_networks": [str(n) for n in self.server_networks],
            "pod_subnet": str(self.pod_subnet),
            "service_subnet": str(self.service_subnet),
            "api_service_ip": str(self.api_service_ip),
            "dns_service_ip": str(self.dns_service_ip),
            "node_cidr_mask_size_ipv6": self.node_cidr_mask,
            "node_ranges": self.node_ranges,
            "calico_pool": str(self.pod_subnet),
            "calico_block_size": self.block_size,
            "prefixes_per_node": self.prefixes_per_node,
            "max_prefix": self.max_prefix,
            "announced": [str(n) for n in self.announced],
            "nodes": [
                {"name": n.name, "role": n.role, "address": str(n.address),
                 "prefixlen": n.prefixlen, "gateway": str(n.gateway)}
                for n in self.nodes
            ],
            "assumed": list(self.assumed),
        }


def node_cidr_mask(pod_prefix: int) -> int:
    """kube-controller-manager's node-cidr-mask-size-ipv6: as many node ranges as kubeadm allows."""
    return max(pod_prefix, min(pod_prefix + NODE_MASK_SPAN, NODE_MASK_MAX))


def prefixes_per_node(block_size: int, extra_prefixes: int) -> int:
    """Routes one node announces at full load: its pod blocks plus the shared service prefixes."""
    return math.ceil(MAX_PODS_PER_NODE / 2 ** (128 - block_size)) + extra_prefixes


def server_networks(addresses: list[IPv6Address]) -> tuple[IPv6Network, ...]:
    nets = {IPv6Network((a, 64), strict=False) for a in addresses}
    return tuple(sorted(nets))


def _free_subnets(block: IPv6Network, prefix: int, taken: list[IPv6Network]) -> Iterator[IPv6Network]:
    for sub in block.subnets(new_prefix=prefix):
        if not any(sub.overlaps(t) for t in taken):
            yield sub


def carve(block: IPv6Network, servers: tuple[IPv6Network, ...]) -> tuple[IPv6Network | None, IPv6Network | None]:
    """The automatic pod and service subnets inside `block`, avoiding the servers' /64s."""
    if block.prefixlen <= 62:
        free = _free_subnets(block, 64, list(servers))
        pods = next(free, None)
        service_home = next(free, None)
        services = next(service_home.subnets(new_prefix=SERVICE_PREFIX)) if service_home else None
        return pods, services
    if block.prefixlen >= SERVICE_PREFIX_MAX:
        return None, None
    first, second = block.subnets(prefixlen_diff=1)
    if any(first.overlaps(s) or second.overlaps(s) for s in servers):
        return None, None
    services = second if second.prefixlen >= SERVICE_PREFIX else next(second.subnets(new_prefix=SERVICE_PREFIX))
    return first, services


def choose_subnets(
    pod_subnet: "IPv6Network | str | None",
    service_subnet: "IPv6Network | str | None",
    block: IPv6Network,
    servers: tuple[IPv6Network, ...],
) -> tuple[IPv6Network | None, IPv6Network | None, list[Problem]]:
    """The pod and service subnets: a given one as it is, an "auto" one carved from the block.
    None (a value that is invalid and reported already) stays None."""
    auto_pods, auto_services = carve(block, servers)
    problems = []
    if pod_subnet == "auto" and auto_pods is None:
        problems.append(Problem("kubernetes.pod_subnet", f"no free room for the pod subnet in {block}",
                                "give kubernetes.pod_subnet explicitly or use a larger block"))
    if service_subnet == "auto" and auto_services is None:
        problems.append(Problem("kubernetes.service_subnet", f"no free room for the service subnet in {block}",
                                "give kubernetes.service_subnet explicitly or use a larger block"))
    pods = auto_pods if pod_subnet == "auto" else pod_subnet
    services = auto_services if service_subnet == "auto" else service_subnet
    return pods, services, problems


def plan_addresses(
    cluster: "Cluster",
    block: IPv6Network,
    nodes: tuple[NodeAddress, ...],
    max_prefix: int,
    assumed: tuple[str, ...] = (),
    taken: tuple[IPv6Network, ...] = (),
) -> tuple[AddressPlan | None, list[Problem]]:
    """Carve or check the pod and service subnets. Returns the plan and every problem found.
    `taken`: subnets of other clusters in the same block, which auto subnets avoid."""
    k8s = cluster.kubernetes
    servers = server_networks([n.address for n in nodes if n.address in block])
    pods, services, problems = choose_subnets(k8s.pod_subnet, k8s.service_subnet, block, servers + taken)
    problems += check_subnets(cluster, pods, services, block=block, servers=servers, max_prefix=max_prefix,
                              block_assumed="block" in assumed)
    if problems:
        return None, problems
    assert pods is not None and services is not None
    announce = cluster.announce
    announced = [services] if announce.service_cluster_ips else []
    announced += announce.service_external_ips + announce.service_loadbalancer_ips
    plan = AddressPlan(
        block=block,
        nodes=nodes,
        server_networks=servers,
        pod_subnet=pods,
        service_subnet=services,
        node_cidr_mask=node_cidr_mask(pods.prefixlen),
        block_size=cluster.calico.block_size,
        max_prefix=max_prefix,
        announced=tuple(announced),
        assumed=assumed,
    )
    return plan, []


def check_subnets(
    cluster: "Cluster",
    pods: IPv6Network | None,
    services: IPv6Network | None,
    *,
    block: IPv6Network | None = None,
    servers: tuple[IPv6Network, ...] = (),
    max_prefix: int | None = None,
    peers: Sequence[tuple[str, IPv6Address]] = (),
    block_assumed: bool = False,
) -> list[Problem]:
    """Every check on the pod, service and announced subnets whose inputs are known. None stands for
    a value not known yet (Packet's block offline) or invalid (reported already): the checks that
    need it are skipped, the others still run, so one run reports everything."""
    calico, announce = cluster.calico, cluster.announce
    block_size = calico.block_size if calico is not None else None
    problems = check_subnet_shapes(pods, services, block_size, len(cluster.nodes))
    extra: list[tuple[str, IPv6Network]] | None = None
    if announce is not None and None not in (announce.service_external_ips, announce.service_loadbalancer_ips):
        extra = [(f"announce.service_external_ips[{i}]", n) for i, n in enumerate(announce.service_external_ips)]
        extra += [(f"announce.service_loadbalancer_ips[{i}]", n)
                  for i, n in enumerate(announce.service_loadbalancer_ips)]
    named = [("kubernetes.pod_subnet", pods), ("kubernetes.service_subnet", services), *(extra or [])]
    known = [(path, net) for path, net in named if net is not None]
    for path, net in known:
        if block is not None and not net.subnet_of(block):
            hint = "the upstream router only accepts prefixes inside that block"
            if block_assumed:
                hint = f"{block} is only assumed offline: pass --block with the project's /56"
            problems.append(Problem(path, f"{net} is outside the announced block {block}", hint))
        for server_net in servers:
            if net.overlaps(server_net):
                problems.append(Problem(path, f"{net} overlaps {server_net}, the servers' own /64",
                                        "pick a /64 of the block that holds no server address"))
    for i, (path_a, a) in enumerate(known):
        for path_b, b in known[i + 1:]:
            pods_and_services = {path_a, path_b} == {"kubernetes.pod_subnet", "kubernetes.service_subnet"}
            if a.overlaps(b) and not pods_and_services:  # that pair: check_subnet_shapes
                problems.append(Problem(path_b, f"{b} overlaps {path_a} ({a})"))
    for path, peer in peers:
        for what, net in (("pod", pods), ("service", services)):
            if net is not None and peer in net:
                problems.append(Problem(path, f"the BGP peer {peer} is inside the {what} subnet {net}",
                                        "the peer is the upstream router: give pod and service subnets that do not hold it"))
    if block_size is not None and max_prefix is not None and extra is not None:
        announced = (1 if announce.service_cluster_ips else 0) + len(extra)
        count = prefixes_per_node(block_size, announced)
        if count > max_prefix:
            problems.append(Problem(
                "calico.block_size",
                f"with /{block_size} blocks a full node announces {count} prefixes, "
                f"more than the {max_prefix} the provider accepts per server",
                "use a larger block (a smaller block_size such as 116) or announce fewer service ranges",
            ))
    return problems


def check_service_size(services: IPv6Network) -> list[Problem]:
    """kubeadm's limit and ours: /108 (2^20 addresses) to /120 (256)."""
    hint = f"use a prefix length from /{SERVICE_PREFIX_MIN} to /{SERVICE_PREFIX_MAX}"
    if services.prefixlen < SERVICE_PREFIX_MIN:
        return [Problem("kubernetes.service_subnet",
                        f"{services} is too large: kubeadm accepts at most 2^20 addresses (/{SERVICE_PREFIX_MIN})", hint)]
    if services.prefixlen > SERVICE_PREFIX_MAX:
        return [Problem("kubernetes.service_subnet",
                        f"{services} is too small (at least /{SERVICE_PREFIX_MAX}, 256 addresses)", hint)]
    return []


def check_pod_size(pods: IPv6Network, node_count: int = 0) -> list[Problem]:
    """Room for a node range per node, and never fewer than MIN_NODE_RANGES."""
    ranges = 2 ** (node_cidr_mask(pods.prefixlen) - pods.prefixlen)
    needed = max(MIN_NODE_RANGES, node_count)
    if ranges < needed:
        return [Problem("kubernetes.pod_subnet",
                        f"{pods} leaves room for only {ranges} node range(s); at least {needed} are needed",
                        "use a /64 (the default) or larger")]
    return []


def check_subnet_shapes(
    pods: IPv6Network | None, services: IPv6Network | None, block_size: int | None, node_count: int
) -> list[Problem]:
    """Checks that need no provider facts: sizes, node room and the Calico block size (None: skipped)."""
    problems = []
    if services is not None:
        problems += check_service_size(services)
    if pods is not None:
        problems += check_pod_size(pods, node_count)
        if block_size is not None and block_size < pods.prefixlen:
            problems.append(Problem("calico.block_size", f"/{block_size} blocks do not fit in the pod subnet {pods}"))
    if pods is not None and services is not None and pods.overlaps(services):
        problems.append(Problem("kubernetes.service_subnet", f"{services} overlaps the pod subnet {pods}"))
    return problems


def check_cluster_addressing(cluster: "Cluster") -> list[Problem]:
    """What the cluster file alone shows (used by config validation). A None value is invalid and
    reported already: the checks that need it are skipped."""
    provider, k8s = cluster.provider, cluster.kubernetes
    pod_subnet = service_subnet = None
    if k8s is not None:
        pod_subnet, service_subnet = k8s.pod_subnet, k8s.service_subnet
    # by its type, not isinstance: config imports this module, so this one must not import config
    if getattr(provider, "type", None) != "static" or provider.block is None:
        # Packet: the block and the servers come from the API; offline_plan checks the rest
        pods = None if pod_subnet == "auto" else pod_subnet
        services = None if service_subnet == "auto" else service_subnet
        return check_subnets(cluster, pods, services)
    block = provider.block
    addresses = [n.address for n in cluster.nodes if n is not None and n.address is not None]
    servers = server_networks([a for a in addresses if a in block])
    pods, services, problems = choose_subnets(pod_subnet, service_subnet, block, servers)
    peers = [(f"provider.peers[{i}]", peer) for i, peer in enumerate(provider.peers or [])]
    return problems + check_subnets(cluster, pods, services, block=block, servers=servers,
                                    max_prefix=provider.max_prefix, peers=peers)


def static_node_addresses(cluster: "Cluster") -> tuple[NodeAddress, ...]:
    return tuple(NodeAddress(n.name, n.role, n.address, n.prefix_length, n.gateway) for n in cluster.nodes)


def assumed_packet_addresses(cluster: "Cluster", block: IPv6Network) -> tuple[NodeAddress, ...]:
    """Offline stand-ins for what Packet assigns: a /127 per server from the block's first /64
    (gateway = the /127's first address, server = the second), in the cluster file's node order."""
    first64 = next(block.subnets(new_prefix=64)) if block.prefixlen <= 64 else block
    out = []
    for i, node in enumerate(cluster.nodes):
        gateway = first64[2 * (i + 1)]
        out.append(NodeAddress(node.name, node.role, gateway + 1, 127, gateway))
    return tuple(out)
