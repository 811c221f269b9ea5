"""destroy: every server the cluster owns deleted (API providers), or each static node reset."""

from __future__ import annotations

import shlex

from v6kube import console
from v6kube.phases.context import REMOTE_DIR, Run
from v6kube.providers.base import Server

CNI_FILES = ("/etc/cni/net.d/10-calico.conflist", "/etc/cni/net.d/calico-kubeconfig")


def servers_to_delete(run: Run) -> list[Server]:
    """The provider's servers with the cluster's tag, plus every id in the state the search did
    not return (a failed server the API no longer lists is still billable)."""
    found = {s.id: s for s in run.provider.find_servers()}
    for name, entry in run.state.data["servers"].items():
        if entry.get("id") and entry["id"] not in found and entry["id"] != name:
            found[entry["id"]] = Server(id=entry["id"], hostname=name, role=entry.get("role", "worker"),
                                        state="unknown")
    return list(found.values())


def reset_script() -> str:
    """Undo what v6kube did on a node, each part only when it is there. Packages stay (held),
    and so do the apt sources they came from; /etc/resolv.conf keeps the IPv6 resolvers."""
    from v6kube.nodes.managed import (CONTAINERD_CONFIG, MODULES_FILE, NETWORKD_DROPIN, PEER_ROUTES_UNIT,
                                      PEER_ROUTES_UNIT_FILE, RESOLVED_DROPIN, SYSCTL_FILE)

    files = " ".join(shlex.quote(f) for f in (SYSCTL_FILE, MODULES_FILE, CONTAINERD_CONFIG, RESOLVED_DROPIN,
                                               NETWORKD_DROPIN, PEER_ROUTES_UNIT_FILE, "/usr/local/bin/calicoctl",
                                               *CNI_FILES))
    return "\n".join([
        "set -eu",
        "if [ -e /etc/kubernetes/kubelet.conf ] || [ -e /etc/kubernetes/admin.conf ]; then kubeadm reset -f; fi",
        f"if [ -e {PEER_ROUTES_UNIT_FILE} ]; then systemctl disable --now {PEER_ROUTES_UNIT} || true; fi",
        f"for f in {files}; do if [ -e \"$f\" ]; then rm -f \"$f\"; fi; done",
        f"if [ -e {REMOTE_DIR} ]; then rm -rf {REMOTE_DIR}; fi",
    ]) + "\n"


def reset_nodes(run: Run) -> None:
    connections = run.connections()
    script = reset_script()

    def reset(name: str) -> None:
        connections[name].run(script, phase="destroy", idempotent=True)
        console.progress("destroy", name, "reset (kubeadm reset, v6kube's files removed; packages kept)")

    run.on_nodes(list(connections), reset)


def destroy(run: Run) -> None:
    if run.provider.name == "static":
        reset_nodes(run)
        return
    servers = servers_to_delete(run)
    if not servers:
        console.progress("destroy", None, "no server left at the provider")
        run.provider.delete_cluster_resources()
        return
    for server in servers:
        console.progress("destroy", server.hostname, f"deleting server {server.id}")
    run.provider.delete_servers(servers)
    for server in servers:
        run.state.forget_server(server.hostname)
    run.state.save()
    run.provider.delete_cluster_resources()
