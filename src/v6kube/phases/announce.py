"""announce: which service addresses Calico advertises, applied on the control plane.

`create` applies the cluster file's `announce:` settings (or the last ones `announce-services`
applied, kept in the state); `announce-services` applies its options. The prefix budget is
checked on the live cluster (pods and Local endpoints per node) before anything is applied.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from v6kube import announce, console
from v6kube.phases.calico import CALICO_ENV, CALICOCTL, ensure_calicoctl
from v6kube.phases.context import KUBECTL, Run

PHASE = "announce"


def _json(run: Run, command: str) -> Any:
    out = run.connection(run.control_plane).run(command, phase=PHASE, echo=False, log_output=False).stdout
    return json.loads(out or "{}")


def options(run: Run) -> announce.AnnounceOptions:
    """The options last applied by announce-services (kept in the state), else the cluster file's."""
    recorded = run.state.fact("announce")
    if not recorded:
        return announce.options_from_cluster(run.cluster)
    return announce.parse_options(cluster_ips=recorded["cluster_ips"], external_ips=recorded["external_ips"],
                                  load_balancer_ips=recorded["load_balancer_ips"], local=recorded["local"])


def as_dict(opts: announce.AnnounceOptions, load_balancer_ips: tuple | None = None) -> dict:
    return {"cluster_ips": opts.cluster_ips, "external_ips": [str(n) for n in opts.external_ips],
            "load_balancer_ips": [str(n) for n in (opts.load_balancer_ips if load_balancer_ips is None
                                                   else load_balancer_ips)],
            "local": [str(r) for r in opts.local_services]}


def record(run: Run, opts: announce.AnnounceOptions, plan: announce.Announcement) -> None:
    run.state.set_fact("announce", as_dict(opts, plan.load_balancer_ips))  # AUTO settled once, then kept


def _local_endpoints(run: Run, refs: tuple[announce.ServiceRef, ...],
                     services: dict) -> dict[str, list[announce.LocalService]]:
    """Per node, the Local services with a ready endpoint there (from EndpointSlices)."""
    if not refs:
        return {}
    slices = _json(run, f"{KUBECTL} get endpointslices --all-namespaces -o json")
    out: dict[str, list[announce.LocalService]] = {}
    for item in slices.get("items") or []:
        meta = item.get("metadata") or {}
        owner = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        ref = announce.ServiceRef(meta.get("namespace", ""), owner or "")
        if ref not in refs or services.get(ref) is None:
            continue
        for endpoint in item.get("endpoints") or []:
            node = endpoint.get("nodeName")
            if node and (endpoint.get("conditions") or {}).get("ready", True):
                entry = announce.LocalService.from_object(services[ref])
                if entry not in out.setdefault(node, []):
                    out[node].append(entry)
    return out


def _pods_per_node(run: Run) -> dict[str, int]:
    pods = _json(run, f"{KUBECTL} get pods --all-namespaces -o json")
    counts: dict[str, int] = {}
    for pod in pods.get("items") or []:
        spec = pod.get("spec") or {}
        if spec.get("nodeName") and not spec.get("hostNetwork"):
            counts[spec["nodeName"]] = counts.get(spec["nodeName"], 0) + 1
    return counts


def _service(run: Run, ref: announce.ServiceRef) -> dict | None:
    conn = run.connection(run.control_plane)
    result = conn.run(f"{KUBECTL} get service -n {shlex.quote(ref.namespace)} {shlex.quote(ref.name)} -o json",
                      phase=PHASE, check=False, echo=False, log_output=False)
    return json.loads(result.stdout) if result.ok else None


def apply(run: Run, opts: announce.AnnounceOptions) -> list[str]:
    """Check, then apply `opts`. Returns the lines saying what changed (empty: nothing)."""
    plan = announce.plan_announcement(run.plan, opts)
    services = {ref: _service(run, ref) for ref in plan.local_services}
    changes = announce.local_service_changes(plan, services)
    budgets = announce.budget(plan, [n.name for n in run.cluster.nodes], pods=_pods_per_node(run),
                              local_endpoints=_local_endpoints(run, plan.local_services, services))
    announce.check_budget(budgets)  # before anything is applied
    ensure_calicoctl(run)
    current = _json(run, f"{CALICO_ENV} {CALICOCTL} get bgpconfiguration default -o json")
    pools = _json(run, f"{CALICO_ENV} {CALICOCTL} get ippools -o json").get("items") or []
    lines = announce.describe_changes(current.get("spec"), plan)
    stale = announce.stale_pools(plan, pools)
    have_pools = {(p.get("metadata") or {}).get("name") for p in pools}
    lines += [f"IPPool {p['name']} ({p['cidr']}): created" for p in announce.loadbalancer_pools(plan)
              if p["name"] not in have_pools]
    conn = run.connection(run.control_plane)
    if lines:
        path = run.remote_path("calico", "announce.yaml")
        conn.run(f"mkdir -p {shlex.quote(run.remote_path('calico'))}", phase=PHASE, echo=False)
        conn.upload(announce.render_announcement(plan), path, mode=0o600, phase=PHASE)
        conn.run(f"{CALICO_ENV} {CALICOCTL} apply -f {shlex.quote(path)}", phase=PHASE)
    for name in stale:
        conn.run(f"{CALICO_ENV} {CALICOCTL} delete ippool {shlex.quote(name)}", phase=PHASE)
        lines.append(f"IPPool {name}: deleted (its range is no longer announced)")
    for change in changes:
        for note in change.notes:
            console.warn(note)
        if change.patch:
            ref = change.ref
            conn.run(f"{KUBECTL} patch service -n {shlex.quote(ref.namespace)} {shlex.quote(ref.name)} "
                     f"--type merge -p {shlex.quote(json.dumps(change.patch))}", phase=PHASE)
            lines.append(f"service {ref}: {json.dumps(change.patch['spec'], sort_keys=True)}")
    record(run, opts, plan)
    run.state.save()
    return lines


def announce_phase(run: Run) -> None:
    for line in apply(run, options(run)) or ["nothing changed"]:
        console.progress(PHASE, None, line)


def inputs(run: Run) -> Any:
    return as_dict(options(run))
