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
from typing import TYPE_CHECKING, Iterator

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


def plan_addresses(
    cluster: "Cluster",
    block: IPv6Network,
    nodes: tuple[NodeAddress, ...],
    max_prefix: int,
    assumed: tuple[str, ...] = (),
) -> tuple[AddressPlan | None, list[Problem]]:
    """Carve or check the pod and service subnets. Returns the plan and every problem found."""
    k8s, problems = cluster.kubernetes, []
    servers = server_networks([n.address for n in nodes if n.address in block])
    auto_pods, auto_services = carve(block, servers)
    pods = auto_pods if k8s.pod_subnet == "auto" else k8s.pod_subnet
    services = auto_services if k8s.service_subnet == "auto" else k8s.service_subnet
    if pods is None:
        problems.append(Problem("kubernetes.pod_subnet", f"no free room for the pod subnet in {block}",
                                "give kubernetes.pod_subnet explicitly or use a larger block"))
    if services is None:
        problems.append(Problem("kubernetes.service_subnet", f"no free room for the service subnet in {block}",
                                "give kubernetes.service_subnet explicitly or use a larger block"))
    if pods is None or services is None:
        return None, problems

    announced = []
    if cluster.announce.service_cluster_ips:
        announced.append(services)
    announced += cluster.announce.service_external_ips + cluster.announce.service_loadbalancer_ips
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
    problems += check_plan(plan, cluster)
    return (None if problems else plan), problems


def check_plan(plan: AddressPlan, cluster: "Cluster") -> list[Problem]:
    problems = check_subnet_shapes(plan.pod_subnet, plan.service_subnet, plan.block_size, len(plan.nodes))
    named = [("kubernetes.pod_subnet", plan.pod_subnet), ("kubernetes.service_subnet", plan.service_subnet)]
    named += [(f"announce.service_external_ips[{i}]", n) for i, n in enumerate(cluster.announce.service_external_ips)]
    named += [(f"announce.service_loadbalancer_ips[{i}]", n)
              for i, n in enumerate(cluster.announce.service_loadbalancer_ips)]
    for path, net in named:
        if not net.subnet_of(plan.block):
            problems.append(Problem(path, f"{net} is outside the announced block {plan.block}",
                                    "the upstream router only accepts prefixes inside that block"))
        for server_net in plan.server_networks:
            if net.overlaps(server_net):
                problems.append(Problem(path, f"{net} overlaps {server_net}, the servers' own /64",
                                        "pick a /64 of the block that holds no server address"))
    for i, (path_a, a) in enumerate(named):
        for j, (path_b, b) in enumerate(named[i + 1:], start=i + 1):
            if a.overlaps(b) and (i, j) != (0, 1):  # pods vs services: check_subnet_shapes
                problems.append(Problem(path_b, f"{b} overlaps {path_a} ({a})"))
    if plan.prefixes_per_node > plan.max_prefix:
        problems.append(Problem(
            "calico.block_size",
            f"with /{plan.block_size} blocks a full node announces {plan.prefixes_per_node} prefixes, "
            f"more than the {plan.max_prefix} the provider accepts per server",
            "use a larger block (a smaller block_size such as 116) or announce fewer service ranges",
        ))
    return problems


def check_subnet_shapes(pods: IPv6Network, services: IPv6Network, block_size: int, node_count: int) -> list[Problem]:
    """Checks that need no provider facts: sizes, node room and the Calico block size."""
    problems = []
    if services.prefixlen < SERVICE_PREFIX_MIN:
        problems.append(Problem("kubernetes.service_subnet",
                                f"{services} is too large: kubeadm accepts at most 2^20 addresses (/{SERVICE_PREFIX_MIN})",
                                f"use a prefix length from /{SERVICE_PREFIX_MIN} to /{SERVICE_PREFIX_MAX}"))
    elif services.prefixlen > SERVICE_PREFIX_MAX:
        problems.append(Problem("kubernetes.service_subnet",
                                f"{services} is too small (at least /{SERVICE_PREFIX_MAX}, 256 addresses)",
                                f"use a prefix length from /{SERVICE_PREFIX_MIN} to /{SERVICE_PREFIX_MAX}"))
    ranges = 2 ** (node_cidr_mask(pods.prefixlen) - pods.prefixlen)
    if ranges < max(MIN_NODE_RANGES, node_count):
        problems.append(Problem("kubernetes.pod_subnet",
                                f"{pods} leaves room for only {ranges} node range(s); "
                                f"at least {max(MIN_NODE_RANGES, node_count)} are needed",
                                "use a /64 (the default) or larger"))
    if block_size < pods.prefixlen:
        problems.append(Problem("calico.block_size", f"/{block_size} blocks do not fit in the pod subnet {pods}"))
    if pods.overlaps(services):
        problems.append(Problem("kubernetes.service_subnet", f"{services} overlaps the pod subnet {pods}"))
    return problems


def check_cluster_addressing(cluster: "Cluster") -> list[Problem]:
    """What can be checked from the cluster file alone (used by config validation)."""
    from v6kube.config import StaticProvider

    provider = cluster.provider
    if isinstance(provider, StaticProvider):
        nodes = static_node_addresses(cluster)
        return plan_addresses(cluster, provider.block, nodes, provider.max_prefix)[1]
    k8s = cluster.kubernetes
    if k8s.pod_subnet != "auto" and k8s.service_subnet != "auto":
        return check_subnet_shapes(k8s.pod_subnet, k8s.service_subnet, cluster.calico.block_size, len(cluster.nodes))
    return []


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
