"""`v6kube status`: parsers (parsers.py), the report model (report.py) and its console tables.

The caller gathers (provider servers and sessions, `kubectl get nodes`, `calicoctl node status`
per node over SSH, the cluster's block affinities), parses with parsers.py, builds a Report, then
prints it with `print_report` or `console.data_json(report.as_dict())` and exits with
`report.exit_code`.
"""

from __future__ import annotations

from v6kube import console
from v6kube.status.report import Report


def _yes(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def print_report(report: Report) -> None:
    """The report as tables on stdout, then "healthy" or each degraded reason."""
    console.table(f"servers of {report.cluster}", ["server", "provider state", "addresses", "error"],
                  [(s.name, s.provider_state or "-", " ".join(s.addresses), s.error or "") for s in report.servers])
    console.table("Kubernetes nodes", ["node", "ready", "version", "reachable", "error"],
                  [(n.name, _yes(n.ready), n.version or "-", _yes(n.reachable), n.error or "") for n in report.nodes])
    console.table("BGP sessions", ["node", "peer", "side", "state", "info"],
                  [(s.node, s.peer, s.side, s.state, s.info) for s in report.sessions])
    rows = [(p.node, str(p.prefix), f"{p.kind} {p.detail}".strip(), _yes(p.seen), " ".join(p.seen_by) or "-",
             " ".join(p.missing_from) or "-") for p in report.prefixes]
    rows += [(p.node, str(p.prefix), "unexpected", "yes", " ".join(p.seen_by), "-") for p in report.unexpected]
    console.table("prefixes", ["node", "prefix", "what", "seen", "seen by", "missing from"], rows)
    for note in report.notes:
        console.data(f"note: {note}")
    reasons = report.degraded
    if not reasons:
        console.data("healthy")
    for reason in reasons:
        console.data(f"degraded: {reason}")
