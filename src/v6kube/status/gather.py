"""Gathering for `v6kube status`: the provider's servers (a read-only call), then over SSH on the
control plane the Kubernetes nodes, the Calico block affinities and each node's BGP view.

The BGP view comes from CalicoNodeStatus objects, which calico-node fills in. Calico means them for
debugging (every object costs the API server an update per period), so status makes one per node,
waits until each is filled in, reads them and deletes them. Anything that cannot be read becomes
a row or a note that says so: never a crash.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from v6kube import announce
from v6kube.errors import V6kubeError
from v6kube.status.cluster import node_blocks, node_rows, server_rows, sessions_from_calico_node_status
from v6kube.status.report import Report, absent_node_sessions, compare_prefixes

PHASE = "status"
FILL_DEADLINE = 30.0  # seconds for calico-node to fill in a new CalicoNodeStatus


def _read_json(conn: Any, command: str) -> Any:
    return json.loads(conn.run(command, phase=PHASE, echo=False, log_output=False).stdout or "{}")


def _node_statuses(run: Any, conn: Any, names: list[str]) -> dict[str, dict]:
    """Each node's CalicoNodeStatus, filled in (a node whose calico-node did not answer in time
    has no entry)."""
    from v6kube.phases.calico import CALICO_ENV, CALICOCTL, node_status_objects

    path = run.remote_path("calico", "status.yaml")
    conn.run(f"mkdir -p {shlex.quote(run.remote_path('calico'))}", phase=PHASE, echo=False)
    conn.upload(node_status_objects(names), path, mode=0o600, phase=PHASE)
    conn.run(f"{CALICO_ENV} {CALICOCTL} apply -f {shlex.quote(path)}", phase=PHASE, echo=False)
    try:
        deadline = time.monotonic() + FILL_DEADLINE
        while True:
            items = _read_json(conn, f"{CALICO_ENV} {CALICOCTL} get caliconodestatus -o json").get("items") or []
            filled = {(i.get("spec") or {}).get("node"): i for i in items if i.get("status")}
            if all(n in filled for n in names) or time.monotonic() >= deadline:
                return filled
            time.sleep(min(run.timeouts.poll, 2.0))
    finally:
        conn.run(f"{CALICO_ENV} {CALICOCTL} delete -f {shlex.quote(path)}", phase=PHASE, check=False, echo=False)


def collect(run: Any) -> Report:
    from v6kube.phases.context import KUBECTL

    names = [n.name for n in run.cluster.nodes]
    report = Report(cluster=run.cluster.name)
    servers = []
    try:
        servers = run.provider.find_servers()
    except V6kubeError as exc:
        report.notes.append(f"the provider could not be read: {exc.message}")
    report.servers = server_rows(names, servers)
    provider_view = _provider_sessions(run, report, [s for s in servers if s.hostname in names])
    nodes_json = affinities = None
    statuses: dict[str, dict] = {}
    api_error = None
    try:
        conn = run.connection(run.control_plane)
        nodes_json = _read_json(conn, f"{KUBECTL} get nodes -o json")
        affinities = _read_json(conn, f"{KUBECTL} get blockaffinities.crd.projectcalico.org -o json")
        statuses = _node_statuses(run, conn, names)
    except (V6kubeError, ValueError) as exc:
        api_error = exc.message if isinstance(exc, V6kubeError) else f"unreadable answer ({exc})"
    unreachable = {n: api_error or "calico-node did not report this node's BGP status"
                   for n in names if api_error or n not in statuses}
    report.nodes = node_rows(names, nodes_json, unreachable=unreachable, api_error=api_error)
    for name in names:
        if name in statuses:
            report.sessions += sessions_from_calico_node_status(statuses[name])
    try:
        plan = run.plan
        report.sessions += absent_node_sessions(report.nodes, plan.bgp.peers, report.sessions)
        blocks = {name: [] for name in names}  # a node with no block yet still announces the service ranges
        blocks.update(node_blocks(affinities or {}))
        expected = announce.expected_prefixes(announce.plan_announcement(plan, _announce_options(run)), blocks)
        report.prefixes, report.unexpected = compare_prefixes(expected, {"provider": provider_view} if provider_view
                                                              is not None else {})
        if provider_view is None:
            report.notes.append("prefixes: this provider reports no routes learned from the nodes, so each is "
                                "shown as unknown")
    except V6kubeError as exc:
        report.notes.append(f"expected prefixes unknown: {exc.message}")
    return report


def _provider_sessions(run: Any, report: Report, servers: list) -> dict | None:
    """The provider's side of each node's IPv6 session (Packet: status per router and the routes
    its routers learned); None when the provider reports none."""
    from v6kube.status.parsers import parse_metal_sessions
    from v6kube.status.report import provider_sessions, seen_from_provider

    find = getattr(run.provider, "find_bgp_sessions", None)
    if find is None:
        return None
    try:
        bodies = find(servers)
    except V6kubeError as exc:
        report.notes.append(f"the provider's BGP sessions could not be read: {exc.message}")
        return None
    sessions = {node: [x for x in parse_metal_sessions(body) if x.address_family == "ipv6"]
                for node, body in bodies.items()}
    for node, found in sessions.items():
        report.sessions += provider_sessions(node, found)
    return seen_from_provider(sessions)


def _announce_options(run: Any) -> announce.AnnounceOptions:
    from v6kube.phases.announce import options

    return options(run)
