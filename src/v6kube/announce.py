"""What service addresses Calico announces over BGP: pure functions for `announce-services`.

From the cluster's plan and the options (cluster IPs on/off, external IP ranges, LoadBalancer
ranges, services made `externalTrafficPolicy: Local`) this module gives:
  - the Calico objects to apply: the BGPConfiguration (rendered from the same template as
    create's bgp.yaml, so neither drops the other's fields) and one IPPool with
    `allowedUses: [LoadBalancer]` per LoadBalancer range (Calico's LoadBalancer IPAM, 3.30+);
  - the merge patch that makes a service Local (and its type change where the API requires one);
  - the prefix budget: what each node will announce, refused when above the provider's limit;
  - the prefixes each node is expected to announce (what `status` compares with what routers saw).
Reading the cluster (kubectl) and applying is the caller's business; nothing here does I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from v6kube import render
from v6kube.addressing import MAX_PODS_PER_NODE
from v6kube.errors import ConfigError, Problem, UsageError

if TYPE_CHECKING:
    from v6kube.config import Cluster
    from v6kube.planner import ClusterPlan

AUTO = "auto"  # a LoadBalancer range carved from the block: its first /64 used by nothing else
MANAGED_BY = ("app.kubernetes.io/managed-by", "v6kube")
LB_POOL_PREFIX = "v6kube-lb-"
SOURCE = "announce-services"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, order=True)
class ServiceRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ServiceRef:
        namespace, sep, name = text.partition("/")
        if not sep or not _DNS_LABEL.match(namespace) or not _DNS_LABEL.match(name):
            raise ValueError(f"{text!r} is not NAMESPACE/SERVICE (two DNS labels)")
        return cls(namespace, name)


@dataclass(frozen=True)
class AnnounceOptions:
    cluster_ips: bool = True
    external_ips: tuple[IPv6Network, ...] = ()
    load_balancer_ips: tuple[IPv6Network | str, ...] = ()  # a network or AUTO
    local_services: tuple[ServiceRef, ...] = ()


def options_from_cluster(cluster: Cluster) -> AnnounceOptions:
    """The cluster file's `announce:` settings (what `create` applies)."""
    a = cluster.announce
    return AnnounceOptions(a.service_cluster_ips, tuple(a.service_external_ips), tuple(a.service_loadbalancer_ips))


def parse_options(*, cluster_ips: bool = True, external_ips: Sequence[str] = (), load_balancer_ips: Sequence[str] = (),
                  local: Sequence[str] = ()) -> AnnounceOptions:
    """The command line's strings as options. Raises ConfigError (exit 2) listing every problem."""
    problems: list[Problem] = []

    def networks(flag: str, values: Sequence[str], auto_ok: bool) -> tuple:
        out = []
        for value in values:
            if auto_ok and value == AUTO:
                out.append(AUTO)
                continue
            try:
                net = ip_network(value, strict=True)
            except ValueError as exc:
                problems.append(Problem(flag, f"{value!r}: {exc}", "give an IPv6 prefix such as 2001:db8:0:2a05::/64"))
                continue
            if net.version != 6:
                problems.append(Problem(flag, f"{value} is IPv4; the cluster is IPv6-only"))
            else:
                out.append(net)
        return tuple(out)

    refs = []
    for value in local:
        try:
            refs.append(ServiceRef.parse(value))
        except ValueError as exc:
            problems.append(Problem("--local", str(exc), "for example --local default/web"))
    options = AnnounceOptions(cluster_ips, networks("--external-ips", external_ips, False),
                              networks("--load-balancer-ips", load_balancer_ips, True), tuple(refs))
    if problems:
        raise ConfigError(SOURCE, problems)
    return options


@dataclass(frozen=True)
class Announcement:
    """What every node announces (besides its pod blocks), settled and checked."""

    cluster: str
    local_asn: int
    block_size: int
    max_prefix: int
    cluster_ips: IPv6Network | None  # the service subnet, when announced
    external_ips: tuple[IPv6Network, ...]
    load_balancer_ips: tuple[IPv6Network, ...]
    local_services: tuple[ServiceRef, ...] = ()
    carved: tuple[IPv6Network, ...] = ()  # the LoadBalancer ranges that came from AUTO

    @property
    def service_ranges(self) -> tuple[IPv6Network, ...]:
        head = (self.cluster_ips,) if self.cluster_ips else ()
        return head + self.external_ips + self.load_balancer_ips

    def as_dict(self) -> dict:
        return {
            "service_cluster_ips": [str(self.cluster_ips)] if self.cluster_ips else [],
            "service_external_ips": [str(n) for n in self.external_ips],
            "service_loadbalancer_ips": [str(n) for n in self.load_balancer_ips],
            "loadbalancer_pools": [{"name": p["name"], "cidr": str(p["cidr"])} for p in loadbalancer_pools(self)],
            "local_services": [str(r) for r in self.local_services],
        }


def plan_announcement(plan: ClusterPlan, options: AnnounceOptions) -> Announcement:
    """Check the options against the address plan and settle AUTO. Raises ConfigError listing every
    problem (outside the block, overlapping servers, pods, services or each other; no free /64)."""
    addresses = plan.addresses
    problems: list[Problem] = []
    taken: list[tuple[str, IPv6Network]] = [("the servers' /64", n) for n in addresses.server_networks]
    taken += [("the pod subnet", addresses.pod_subnet), ("the service subnet", addresses.service_subnet)]
    given = [("--external-ips", n) for n in options.external_ips]
    given += [("--load-balancer-ips", n) for n in options.load_balancer_ips if n != AUTO]
    for flag, net in given:
        if not net.subnet_of(addresses.block):
            problems.append(Problem(flag, f"{net} is outside the announced block {addresses.block}",
                                    "the upstream router only accepts prefixes inside that block"))
        for what, other in taken:
            if net.overlaps(other):
                problems.append(Problem(flag, f"{net} overlaps {what} ({other})"))
        taken.append((f"{flag} {net}", net))
    seen: set[ServiceRef] = set()
    for ref in options.local_services:
        if ref in seen:
            problems.append(Problem("--local", f"{ref} is given twice"))
        seen.add(ref)
    carved = []
    for _ in (n for n in options.load_balancer_ips if n == AUTO):
        free = _free_64(addresses.block, [n for _, n in taken])
        if free is None:
            problems.append(Problem("--load-balancer-ips", f"no free /64 left in {addresses.block} for LoadBalancer addresses",
                                    "give --load-balancer-ips PREFIX explicitly"))
            break
        carved.append(free)
        taken.append(("a carved LoadBalancer range", free))
    if problems:
        raise ConfigError(SOURCE, problems)
    lbs = tuple(n for n in options.load_balancer_ips if n != AUTO) + tuple(carved)
    return Announcement(plan.cluster.name, plan.bgp.local_asn, addresses.block_size, addresses.max_prefix,
                        addresses.service_subnet if options.cluster_ips else None, tuple(options.external_ips), lbs,
                        tuple(options.local_services), tuple(carved))


def _free_64(block: IPv6Network, taken: list[IPv6Network]) -> IPv6Network | None:
    if block.prefixlen > 64:
        return None
    for sub in block.subnets(new_prefix=64):
        if not any(sub.overlaps(t) for t in taken):
            return sub
    return None


# --- the Calico objects ------------------------------------------------------------------


def pool_name(cidr: IPv6Network) -> str:
    """A DNS-1123 name per range (Calico rejects ':' in names)."""
    return f"{LB_POOL_PREFIX}{cidr.network_address.exploded.replace(':', '')}-{cidr.prefixlen}"


def loadbalancer_pools(a: Announcement) -> list[dict]:
    # A pool's blocks must fit in it: a range smaller than the cluster's blocks gets one block.
    return [{"name": pool_name(n), "cidr": n, "block_size": max(a.block_size, n.prefixlen)} for n in a.load_balancer_ips]


def render_announcement(a: Announcement) -> str:
    """The YAML to apply: the BGPConfiguration `default` and the LoadBalancer IPPools."""
    return render.render(
        "calico/announce.yaml.j2",
        cluster_name=a.cluster,
        local_asn=a.local_asn,
        service_cluster_ips=[a.cluster_ips] if a.cluster_ips else [],
        service_external_ips=list(a.external_ips),
        service_loadbalancer_ips=list(a.load_balancer_ips),
        pools=loadbalancer_pools(a),
    )


def stale_pools(a: Announcement, existing: Iterable[Mapping]) -> list[str]:
    """Names of IPPools v6kube made for LoadBalancer ranges that are no longer announced
    (`existing`: IPPool objects as the API returns them). Addresses already given out stay."""
    wanted = {pool_name(n) for n in a.load_balancer_ips}
    out = []
    for pool in existing:
        meta = pool.get("metadata") or {}
        labels = meta.get("labels") or {}
        name = meta.get("name", "")
        if labels.get(MANAGED_BY[0]) == MANAGED_BY[1] and name.startswith(LB_POOL_PREFIX) and name not in wanted:
            out.append(name)
    return sorted(out)


def describe_changes(current: Mapping | None, a: Announcement) -> list[str]:
    """What applying `a` changes in the BGPConfiguration whose spec is `current` (None: there is none)."""
    if current is None:
        return ["BGPConfiguration default: created"]
    fields = {"serviceClusterIPs": [a.cluster_ips] if a.cluster_ips else [],
              "serviceExternalIPs": list(a.external_ips), "serviceLoadBalancerIPs": list(a.load_balancer_ips)}
    lines = []
    for key, want in fields.items():
        have = {ip_network(item["cidr"]) for item in current.get(key) or []}
        for net in sorted(set(want) - have):
            lines.append(f"{key}: + {net}")
        for net in sorted(have - set(want)):
            lines.append(f"{key}: - {net}")
    return lines


# --- Local services ----------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceChange:
    ref: ServiceRef
    patch: dict | None  # a JSON merge patch (`kubectl patch --type merge`); None: nothing to change
    notes: tuple[str, ...] = ()


def local_service_changes(a: Announcement, services: Mapping[ServiceRef, Mapping | None]) -> list[ServiceChange]:
    """The patch that makes each service `externalTrafficPolicy: Local` (`services`: each ref's
    Service object as the API returns it, None when it does not exist). The API accepts Local only
    on NodePort and LoadBalancer services and on ClusterIP services with externalIPs; any other
    ClusterIP service changes type (LoadBalancer when LoadBalancer ranges are announced, so it gets
    a global address; NodePort otherwise), and a note says so. Raises UsageError for every service
    that cannot be Local (missing, ExternalName, headless)."""
    problems, changes = [], []
    for ref in a.local_services:
        service = services.get(ref)
        spec = (service or {}).get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        if service is None:
            problems.append(f"{ref}: no such service")
        elif kind == "ExternalName":
            problems.append(f"{ref}: an ExternalName service has no endpoints and no address to announce")
        elif spec.get("clusterIP") == "None":
            problems.append(f"{ref}: a headless service (clusterIP None) has no address to announce")
        else:
            changes.append(_local_change(ref, spec, kind, bool(a.load_balancer_ips)))
    if problems:
        raise UsageError("cannot make these services Local:\n" + "\n".join(f"  - {p}" for p in problems),
                         hint="drop them from --local")
    return changes


def _local_change(ref: ServiceRef, spec: Mapping, kind: str, have_lb: bool) -> ServiceChange:
    patch: dict = {}
    notes = []
    if kind == "ClusterIP" and not spec.get("externalIPs"):
        new = "LoadBalancer" if have_lb else "NodePort"
        why = ("it gets an address from the LoadBalancer pool" if have_lb
               else "no LoadBalancer range is announced; a node port opens on every node")
        notes.append(f"{ref}: type ClusterIP cannot have externalTrafficPolicy Local (the API allows it only on "
                     f"NodePort, LoadBalancer, or ClusterIP with externalIPs): changing the type to {new} ({why})")
        patch["type"] = new
    if spec.get("externalTrafficPolicy") != "Local":
        patch["externalTrafficPolicy"] = "Local"
    if not patch:
        return ServiceChange(ref, None, (f"{ref}: already externalTrafficPolicy Local",))
    return ServiceChange(ref, {"spec": patch}, tuple(notes))


@dataclass(frozen=True)
class LocalService:
    """A Local service with an endpoint on some node, and its addresses (cluster IPs, external IPs,
    LoadBalancer ingress IPs; empty when unknown)."""

    ref: ServiceRef
    addresses: tuple[IPv6Address, ...] = ()

    @classmethod
    def from_object(cls, service: Mapping) -> LocalService:
        """From a Service object as the API returns it."""
        meta, spec = service.get("metadata") or {}, service.get("spec") or {}
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        texts = list(spec.get("clusterIPs") or [spec.get("clusterIP")]) + list(spec.get("externalIPs") or [])
        texts += [i.get("ip") for i in ingress]
        found = []
        for text in texts:
            try:
                addr = ip_address(text or "")
            except ValueError:
                continue
            if addr.version == 6 and addr not in found:
                found.append(addr)
        return cls(ServiceRef(meta.get("namespace", "default"), meta.get("name", "")), tuple(found))


def local_prefixes(a: Announcement, service: LocalService) -> list[IPv6Network]:
    """The /128s a node with an endpoint of `service` announces: each of its addresses inside an
    announced range (Calico advertises a Local service's cluster, external and LoadBalancer IPs
    this way). Unknown addresses count as one /128 in the budget (see budget())."""
    return [IPv6Network(addr) for addr in service.addresses if any(addr in r for r in a.service_ranges)]


# --- the prefix budget ---------------------------------------------------------------------


@dataclass(frozen=True)
class NodeBudget:
    node: str
    pods: int
    blocks: int
    service_ranges: tuple[IPv6Network, ...]
    local: tuple[tuple[ServiceRef, int], ...]  # (service, /128s it adds on this node)
    max_prefix: int

    @property
    def total(self) -> int:
        return self.blocks + len(self.service_ranges) + sum(n for _, n in self.local)

    @property
    def over(self) -> bool:
        return self.total > self.max_prefix

    def explain(self) -> str:
        parts = [f"{self.blocks} Calico block(s) for {self.pods} pods", f"{len(self.service_ranges)} service range(s)"
                 + (f" ({', '.join(map(str, self.service_ranges))})" if self.service_ranges else "")]
        if self.local:
            parts.append(f"{sum(n for _, n in self.local)} /128(s) for Local services "
                         f"{', '.join(str(ref) for ref, _ in self.local)}")
        return f"{self.node}: {self.total} prefixes ({'; '.join(parts)}), limit {self.max_prefix}"


def blocks_for(pods: int, block_size: int) -> int:
    """Calico blocks a node holds for `pods` pods: at least one (the node's first block)."""
    return max(1, math.ceil(pods / 2 ** (128 - block_size)))


def budget(a: Announcement, nodes: Iterable[str], *, pods: Mapping[str, int] | None = None,
           local_endpoints: Mapping[str, Sequence[LocalService]] | None = None) -> list[NodeBudget]:
    """What each node will announce. `pods`: pods with a pod IP per node (a node missing from it, or
    pods=None, is counted full: the kubelet's 110); `local_endpoints`: per node, the Local services
    with an endpoint there."""
    out = []
    for node in nodes:
        count = MAX_PODS_PER_NODE if pods is None or node not in pods else pods[node]
        local = tuple((s.ref, len(local_prefixes(a, s)) if s.addresses else 1)
                      for s in (local_endpoints or {}).get(node, ()))
        out.append(NodeBudget(node, count, blocks_for(count, a.block_size), a.service_ranges, local, a.max_prefix))
    return out


def check_budget(budgets: Sequence[NodeBudget]) -> None:
    """Refuse, naming every node above the provider's limit, its prefixes and what to change."""
    over = [b for b in budgets if b.over]
    if not over:
        return
    lines = [f"{len(over)} node(s) would announce more prefixes than the provider accepts per server:"]
    lines += [f"  - {b.explain()}" for b in over]
    raise UsageError("\n".join(lines),
                     hint="use larger Calico blocks (a smaller calico.block_size such as 116), fewer Local "
                          "services (--local), or fewer announced ranges; nothing was applied")


# --- what status expects -------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedPrefix:
    prefix: IPv6Network
    kind: str  # pods | cluster-ips | external-ips | loadbalancer-ips | local
    detail: str = ""  # the Local service, for kind local


def expected_prefixes(a: Announcement, node_blocks: Mapping[str, Sequence[IPv6Network]],
                      local_endpoints: Mapping[str, Sequence[LocalService]] | None = None,
                      ) -> dict[str, list[ExpectedPrefix]]:
    """Per node: its Calico blocks (`node_blocks`, from the cluster's block affinities), every
    announced service range, and the /128s of the Local services with an endpoint on it."""
    kinds = ([(a.cluster_ips, "cluster-ips")] if a.cluster_ips else []) + \
        [(n, "external-ips") for n in a.external_ips] + [(n, "loadbalancer-ips") for n in a.load_balancer_ips]
    out: dict[str, list[ExpectedPrefix]] = {}
    for node, blocks in node_blocks.items():
        items = [ExpectedPrefix(b, "pods") for b in blocks] + [ExpectedPrefix(n, k) for n, k in kinds]
        for service in (local_endpoints or {}).get(node, ()):
            items += [ExpectedPrefix(p, "local", str(service.ref)) for p in local_prefixes(a, service)]
        out[node] = items
    return out
