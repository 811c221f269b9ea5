"""Report rows from what the provider and the Kubernetes API return (pure functions):
the provider's servers, `kubectl get nodes -o json`, the Calico block affinities (which blocks each
node holds, hence announces) and CalicoNodeStatus objects (the node's BGP view without SSH).
A node or server that is missing or unreadable becomes a row that says so.
"""

from __future__ import annotations

from ipaddress import IPv6Network, ip_network
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from v6kube.status.report import NodeRow, ServerRow, SessionRow

if TYPE_CHECKING:
    from v6kube.providers.base import Server


def server_rows(names: Sequence[str], servers: Iterable[Server]) -> list[ServerRow]:
    """One row per node of the cluster file, in its order; a server the provider did not return
    is an error row."""
    found = {s.hostname: s for s in servers}
    rows = []
    for name in names:
        s = found.get(name)
        if s is None:
            rows.append(ServerRow(name, None, (), "not found at the provider"))
        else:
            addresses = tuple(str(a) for a in (s.ipv6, s.ipv4_public) if a is not None)
            rows.append(ServerRow(name, s.state, addresses))
    return rows


def node_rows(names: Sequence[str], nodes: Mapping | None, *, unreachable: Mapping[str, str] | None = None,
              api_error: str | None = None) -> list[NodeRow]:
    """Rows from `kubectl get nodes -o json` (None when the API server did not answer: every Ready
    is then unknown, with `api_error` as the reason). `unreachable`: node -> why status could not
    read its BGP view over SSH."""
    unreachable = unreachable or {}
    by_name = {(item.get("metadata") or {}).get("name"): item for item in (nodes or {}).get("items") or []}
    rows = []
    for name in names:
        item = by_name.get(name)
        ssh = dict(reachable=name not in unreachable, error=unreachable.get(name))
        if nodes is None:
            rows.append(NodeRow(name, None, None, reachable=ssh["reachable"],
                                error=ssh["error"] or f"the API server did not answer: {api_error or 'unknown'}"))
            continue
        if item is None:
            rows.append(NodeRow(name, None, None, reachable=ssh["reachable"],
                                error=ssh["error"] or "not registered in Kubernetes"))
            continue
        status = item.get("status") or {}
        ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        version = (status.get("nodeInfo") or {}).get("kubeletVersion")
        rows.append(NodeRow(name, {"True": True, "False": False}.get(ready), version, **ssh))
    return rows


def node_blocks(affinities: Mapping) -> dict[str, list[IPv6Network]]:
    """Each node's IPv6 Calico blocks from the BlockAffinity list (`kubectl get blockaffinities
    -o json`: crd.projectcalico.org/v1, where `deleted` is a string, or projectcalico.org/v3, where
    it is a bool). Only confirmed affinities count: a pending one is not announced yet."""
    out: dict[str, list[IPv6Network]] = {}
    for item in affinities.get("items") or []:
        spec = item.get("spec") or {}
        if str(spec.get("deleted", "false")).lower() == "true" or spec.get("state", "confirmed") != "confirmed":
            continue
        if spec.get("type", "host") != "host":  # "virtual": LoadBalancer blocks, not a node's own
            continue
        try:
            cidr = ip_network(spec.get("cidr", ""))
        except ValueError:
            continue
        if cidr.version == 6 and spec.get("node"):
            out.setdefault(spec["node"], []).append(cidr)
    return {node: sorted(blocks) for node, blocks in out.items()}


def sessions_from_calico_node_status(obj: Mapping) -> list[SessionRow]:
    """The node's IPv6 sessions from a CalicoNodeStatus object (classes BGP and Agent)."""
    node = (obj.get("spec") or {}).get("node", "")
    status = obj.get("status") or {}
    bird = (status.get("agent") or {}).get("birdV6") or {}
    if bird.get("state") == "NotReady":
        return [SessionRow(node, "*", "node", "BIRD NotReady", False, "calico-node's BIRD for IPv6 is not ready")]
    rows = []
    for peer in (status.get("bgp") or {}).get("peersV6") or []:
        state = peer.get("state", "")
        rows.append(SessionRow(node, peer.get("peerIP", ""), "node", state, state == "Established",
                               "" if state == "Established" else f"since {peer.get('since', '?')}"))
    return rows
