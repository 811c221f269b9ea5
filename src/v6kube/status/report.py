"""The status report: servers, Kubernetes nodes, BGP sessions from both sides, and the prefixes
each node should announce against what the routers saw; `degraded` lists every reason it is not
healthy. Built from plain inputs (the parsers' results, the provider's servers, kubectl's nodes),
so a node that could not be reached is a row that says so, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network, ip_address
from typing import Iterable, Mapping, Sequence

from v6kube.announce import ExpectedPrefix
from v6kube.status.parsers import BirdProtocol, BirdRoute, CalicoNodeStatus, ProviderSession

SCHEMA = "v6kube.status/v1"
HEALTHY_SERVER_STATES = ("active",)  # the Metal API's word; static servers have no provider state (None)


@dataclass(frozen=True)
class ServerRow:
    name: str
    provider_state: str | None  # None: the provider has no such notion (static)
    addresses: tuple[str, ...] = ()
    error: str | None = None  # the provider could not tell (missing server, API failure)


@dataclass(frozen=True)
class NodeRow:
    name: str
    ready: bool | None  # None: unknown (not registered, or the API server did not answer)
    version: str | None = None
    reachable: bool = True  # whether status could read the node's own BGP view (SSH)
    error: str | None = None


@dataclass(frozen=True)
class SessionRow:
    node: str
    peer: str
    side: str  # node (calico-node's BIRD), router (the router's own view), provider (the provider's API)
    state: str
    established: bool | None  # None: the side does not know (the provider's "unknown")
    info: str = ""


@dataclass(frozen=True)
class PrefixRow:
    node: str
    prefix: IPv6Network
    kind: str
    detail: str = ""
    seen_by: tuple[str, ...] = ()
    missing_from: tuple[str, ...] = ()  # viewers that should have it and do not

    @property
    def seen(self) -> bool | None:
        if not self.seen_by and not self.missing_from:
            return None  # no viewer reports routes
        return not self.missing_from


@dataclass
class Report:
    cluster: str
    servers: list[ServerRow] = field(default_factory=list)
    nodes: list[NodeRow] = field(default_factory=list)
    sessions: list[SessionRow] = field(default_factory=list)
    prefixes: list[PrefixRow] = field(default_factory=list)
    unexpected: list[PrefixRow] = field(default_factory=list)  # seen from a node, not expected from it
    notes: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> list[str]:
        """Every reason the cluster is not healthy, each naming the node, peer or prefix."""
        reasons = []
        for s in self.servers:
            if s.error:
                reasons.append(f"server {s.name}: {s.error}")
            elif s.provider_state is not None and s.provider_state not in HEALTHY_SERVER_STATES:
                reasons.append(f"server {s.name}: provider state {s.provider_state}")
        for n in self.nodes:
            if n.ready is False:
                reasons.append(f"node {n.name}: not Ready")
            elif n.ready is None:
                reasons.append(f"node {n.name}: Ready unknown{f' ({n.error})' if n.error and n.reachable else ''}")
            if not n.reachable:
                reasons.append(f"node {n.name}: unreachable, its BGP sessions are unknown ({n.error or 'no answer'})")
        for s in self.sessions:
            if s.established is False:
                info = f" ({s.info})" if s.info else ""
                reasons.append(f"{s.node}: BGP session with {s.peer} is {s.state} on the {s.side} side{info}")
        for p in self.prefixes:
            if p.missing_from:
                what = f"{p.kind} {p.detail}".strip()
                reasons.append(f"{p.node}: {p.prefix} ({what}) not announced to {', '.join(p.missing_from)}")
        return reasons

    @property
    def healthy(self) -> bool:
        return not self.degraded

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 degraded (the CLI maps it; scripts and monitoring gate on it)."""
        return 0 if self.healthy else 1

    def as_dict(self) -> dict:
        """The `status --output json` document (schema in the README, `v6kube status`)."""
        return {
            "schema": SCHEMA,
            "cluster": self.cluster,
            "healthy": self.healthy,
            "degraded": self.degraded,
            "servers": [{"name": s.name, "provider_state": s.provider_state, "addresses": list(s.addresses),
                         "error": s.error} for s in self.servers],
            "nodes": [self._node_dict(n) for n in self.nodes],
            "unexpected_prefixes": [{"node": p.node, "prefix": str(p.prefix), "seen_by": list(p.seen_by)}
                                    for p in self.unexpected],
            "notes": list(self.notes),
        }

    def _node_dict(self, n: NodeRow) -> dict:
        return {
            "name": n.name, "ready": n.ready, "version": n.version, "reachable": n.reachable, "error": n.error,
            "sessions": [{"peer": s.peer, "side": s.side, "state": s.state, "established": s.established,
                          "info": s.info} for s in self.sessions if s.node == n.name],
            "prefixes": [{"prefix": str(p.prefix), "kind": p.kind, "detail": p.detail, "seen": p.seen,
                          "seen_by": list(p.seen_by), "missing_from": list(p.missing_from)}
                         for p in self.prefixes if p.node == n.name],
        }


# --- sessions from each source ------------------------------------------------------------


def node_sessions_from_bird(node: str, protocols: Iterable[BirdProtocol]) -> list[SessionRow]:
    """The node's own view, from its BIRD (`birdc show protocols all`; calico-node's BIRD)."""
    return [SessionRow(node, str(p.neighbor), "node", p.bgp_state or p.state, p.established,
                       "" if p.established else (p.last_error or ""))
            for p in protocols if p.proto == "BGP" and p.neighbor is not None]


def node_sessions_from_calicoctl(node: str, status: CalicoNodeStatus) -> list[SessionRow]:
    """The node's own view from `calicoctl node status` (IPv6 peers; IPv4 ones too if any)."""
    if not status.running:
        return [SessionRow(node, "*", "node", "calico not running", False, "calicoctl: Calico process is not running")]
    return [SessionRow(node, str(p.address), "node", p.info.split()[0] if p.info else p.state, p.established,
                       "" if p.established else " ".join(p.info.split()[1:]))
            for p in (*status.peers_v6, *status.peers_v4)]


def router_sessions_from_bird(router: str, protocols: Iterable[BirdProtocol],
                              node_addresses: Mapping[str, IPv6Address]) -> list[SessionRow]:
    """A router's view (one BIRD per peer address, as in the testbed): a session per node, and a
    row saying so for a node the router has no session from at all."""
    by_address = {p.neighbor: p for p in protocols if p.proto == "BGP" and p.neighbor is not None}
    rows = []
    for node, address in node_addresses.items():
        p = by_address.get(address)
        if p is None:
            rows.append(SessionRow(node, router, "router", "absent", False, "the router has no session from this node"))
        else:
            rows.append(SessionRow(node, router, "router", p.bgp_state or p.state, p.established,
                                   "" if p.established else (p.last_error or "")))
    return rows


def provider_sessions(node: str, sessions: Sequence[ProviderSession], peer: str = "provider") -> list[SessionRow]:
    """The provider's view (Metal: per device, `status` per switch)."""
    rows = []
    for s in sessions:
        if s.address_family != "ipv6":
            continue
        state = s.state
        rows.append(SessionRow(node, peer, "provider", ",".join(s.statuses), None if state == "unknown" else state == "up",
                               "" if state != "down" else "the provider reports the session down"))
    return rows


def absent_node_sessions(nodes: Iterable[NodeRow], peers: Iterable[IPv6Address],
                         sessions: Iterable[SessionRow]) -> list[SessionRow]:
    """A row for each reachable node that has no session of its own with a peer it should have (its
    BGPPeer missing or not applied yet): calico-node's readiness alone would not show it."""
    have = {(s.node, _normal(s.peer)) for s in sessions if s.side == "node"}
    return [SessionRow(n.name, str(peer), "node", "absent", False, "no BGP session configured on the node")
            for n in nodes if n.reachable for peer in peers if (n.name, _normal(str(peer))) not in have]


def _normal(text: str) -> str:
    try:
        return str(ip_address(text))
    except ValueError:
        return text


# --- prefixes -----------------------------------------------------------------------------


def seen_from_bird(routes: Iterable[BirdRoute], protocols: Iterable[BirdProtocol],
                   node_addresses: Mapping[str, IPv6Address]) -> dict[str, set[IPv6Network]]:
    """What a router learned from each node: a route's session names its neighbour."""
    neighbor = {p.name: p.neighbor for p in protocols if p.proto == "BGP"}
    node_of = {address: node for node, address in node_addresses.items()}
    seen: dict[str, set[IPv6Network]] = {node: set() for node in node_addresses}
    for r in routes:
        node = node_of.get(neighbor.get(r.protocol)) or node_of.get(r.via)
        if node is not None:
            seen[node].add(r.prefix)
    return seen


def seen_from_provider(sessions_by_node: Mapping[str, Sequence[ProviderSession]]) -> dict[str, set[IPv6Network]]:
    return {node: {r for s in sessions for r in s.learned_routes} for node, sessions in sessions_by_node.items()}


def compare_prefixes(expected: Mapping[str, Sequence[ExpectedPrefix]],
                     seen: Mapping[str, Mapping[str, set[IPv6Network]]]) -> tuple[list[PrefixRow], list[PrefixRow]]:
    """Expected prefixes per node against each viewer's view (viewer -> node -> prefixes; a viewer
    is a router or the provider). Returns (expected rows, unexpected rows)."""
    rows, unexpected = [], []
    for node, items in expected.items():
        for e in items:
            seen_by = tuple(v for v, view in seen.items() if e.prefix in view.get(node, ()))
            missing = tuple(v for v in seen if v not in seen_by)
            rows.append(PrefixRow(node, e.prefix, e.kind, e.detail, seen_by, missing))
        wanted = {e.prefix for e in items}
        extra = sorted({p for view in seen.values() for p in view.get(node, ())} - wanted)
        for prefix in extra:
            unexpected.append(PrefixRow(node, prefix, "unexpected",
                                        seen_by=tuple(v for v, view in seen.items() if prefix in view.get(node, ()))))
    return rows, unexpected
