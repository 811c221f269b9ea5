"""Gathering for `v6kube status`: the provider's servers, then over SSH on the control plane the
Kubernetes nodes, the Calico block affinities and each node's BGP view (CalicoNodeStatus objects,
which calico-node fills in). Anything that cannot be read becomes a row or note that says so."""

from __future__ import annotations

import json
from typing import Any

from v6kube import announce
from v6kube.errors import V6kubeError
from v6kube.status.cluster import node_blocks, node_rows, server_rows, sessions_from_calico_node_status
from v6kube.status.report import Report, absent_node_sessions, compare_prefixes

PHASE = "status"


def _read_json(conn: Any, command: str) -> Any:
    return json.loads(conn.run(command, phase=PHASE, echo=False, log_output=False).stdout or "{}")


def collect(run: Any) -> Report:
    from v6kube.phases.calico import CALICO_ENV, CALICOCTL
    from v6kube.phases.context import KUBECTL

    names = [n.name for n in run.cluster.nodes]
    report = Report(cluster=run.cluster.name)
    try:
        report.servers = server_rows(names, run.provider.find_servers())
    except V6kubeError as exc:
        report.servers = server_rows(names, [])
        report.notes.append(f"the provider could not be read: {exc.message}")
    nodes_json = affinities = statuses = None
    api_error = None
    try:
        conn = run.connection(run.control_plane)
        nodes_json = _read_json(conn, f"{KUBECTL} get nodes -o json")
        affinities = _read_json(conn, f"{KUBECTL} get blockaffinities.crd.projectcalico.org -o json")
        statuses = _read_json(conn, f"{CALICO_ENV} {CALICOCTL} get caliconodestatus -o json")
    except (V6kubeError, ValueError) as exc:
        api_error = exc.message if isinstance(exc, V6kubeError) else f"unreadable answer ({exc})"
    by_node = {(item.get("spec") or {}).get("node"): item for item in (statuses or {}).get("items") or []}
    unreachable = {n: api_error or "calico-node has not reported this node's BGP status"
                   for n in names if api_error or not (by_node.get(n) or {}).get("status")}
    report.nodes = node_rows(names, nodes_json, unreachable=unreachable, api_error=api_error)
    for name in names:
        if name in by_node and name not in unreachable:
            report.sessions += sessions_from_calico_node_status(by_node[name])
    report.sessions += absent_node_sessions(report.nodes, run.plan.bgp.peers, report.sessions)
    plan = announce.plan_announcement(run.plan, _announce_options(run))
    expected = announce.expected_prefixes(plan, node_blocks(affinities or {}))
    report.prefixes, report.unexpected = compare_prefixes(expected, {})
    report.notes.append("prefixes: no router or provider view of what was learned is readable here, "
                        "so each is shown as unknown")
    return report


def _announce_options(run: Any) -> announce.AnnounceOptions:
    from v6kube.phases.announce import options

    return options(run)
