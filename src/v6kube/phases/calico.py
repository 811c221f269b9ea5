"""calico and calico-bgp: the Tigera operator and Calico, then the BGP objects.

Manifests and calicoctl are downloaded on this machine (github.com has no IPv6), checked and
uploaded to the control plane; every kubectl and calicoctl runs there with admin.conf.
"""

from __future__ import annotations

import hashlib
import shlex
import time

from v6kube import console, downloads
from v6kube.errors import V6kubeError
from v6kube.phases.context import ADMIN_CONF, KUBECTL, Run

CALICOCTL = "/usr/local/bin/calicoctl"
CALICO_ENV = f"DATASTORE_TYPE=kubernetes KUBECONFIG={ADMIN_CONF}"
AVAILABLE = "'{.status.conditions[?(@.type==\"Available\")].status}'"
ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}
MANIFESTS = ("operator-crds.yaml", "tigera-operator.yaml")


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _apply_server_side(run: Run, name: str, text: str | bytes) -> None:
    """Upload and apply a manifest with server-side apply (the CRDs are too large for client-side
    apply's annotation; server-side apply is idempotent, unlike `kubectl create`)."""
    conn = run.connection(run.control_plane)
    path = run.remote_path("calico", name)
    conn.upload(text, path, mode=0o600, phase="calico")
    conn.run(f"{KUBECTL} apply --server-side --force-conflicts -f {shlex.quote(path)}", phase="calico")


def calico_available(run: Run) -> bool:
    conn = run.connection(run.control_plane)
    result = conn.run(f"{KUBECTL} get tigerastatus calico -o jsonpath={AVAILABLE}", phase="calico",
                      check=False, echo=False)
    return result.ok and result.stdout.strip() == "True"


def calico(run: Run) -> None:
    from v6kube.planner import render_installation

    version = run.cluster.calico.version
    conn = run.connection(run.control_plane)
    conn.run(f"mkdir -p {shlex.quote(run.remote_path('calico'))}", phase="calico", echo=False)
    for name in MANIFESTS:
        _apply_server_side(run, name, downloads.fetch(downloads.calico_manifest(version, name)))
    _apply_server_side(run, "installation.yaml", render_installation(run.plan))
    wait_calico(run)


def wait_calico(run: Run) -> None:
    deadline = time.monotonic() + run.timeouts.calico
    while not calico_available(run):
        if time.monotonic() >= deadline:
            raise V6kubeError(f"Calico did not become Available within {run.timeouts.calico:g} s",
                              hint=f"look at 'kubectl get tigerastatus' and the pods in calico-system "
                                   f"(kubeconfig: {run.local_path('kubeconfig')})")
        console.progress("calico", None, "waiting for tigerastatus/calico to be Available")
        time.sleep(run.timeouts.poll)
    console.progress("calico", None, f"Calico {run.cluster.calico.version} is Available")


# --- calico-bgp ----------------------------------------------------------------------------------


def ensure_calicoctl(run: Run) -> None:
    """calicoctl of calico.version on the control plane, checked against the release's SHA-256."""
    conn = run.connection(run.control_plane)
    machine = conn.run("uname -m", phase="calico-bgp", echo=False).stdout.strip()
    arch = ARCHES.get(machine)
    if arch is None:
        raise V6kubeError(f"{run.control_plane}: no calicoctl build for machine type {machine!r}")
    binary = downloads.fetch(downloads.calicoctl(run.cluster.calico.version, arch))
    want = _digest(binary)
    have = conn.run(f"sha256sum {CALICOCTL} 2>/dev/null || true", phase="calico-bgp", echo=False).stdout.split()
    if have[:1] == [want]:
        return
    console.progress("calico-bgp", run.control_plane, f"installing calicoctl {run.cluster.calico.version}")
    conn.upload(binary, CALICOCTL, mode=0o755, phase="calico-bgp")


def split_bgp_objects(text: str) -> tuple[str, str]:
    """bgp.yaml in two: Calico objects (projectcalico.org/v3, applied with calicoctl: without the
    Calico API server kubectl does not know them) and Kubernetes ones (the password Secret and its
    Role/RoleBinding, applied with kubectl)."""
    import yaml

    calico, kube = [], []
    for doc in yaml.safe_load_all(text):
        if doc:
            (calico if doc.get("apiVersion") == "projectcalico.org/v3" else kube).append(doc)
    dump = lambda docs: yaml.safe_dump_all(docs, sort_keys=False) if docs else ""  # noqa: E731
    return dump(calico), dump(kube)


def node_status_objects(names: list[str]) -> str:
    """A CalicoNodeStatus per node: calico-node then reports its BIRD's sessions and routes there,
    which `status` reads without logging in to every node."""
    import yaml

    docs = [{"apiVersion": "projectcalico.org/v3", "kind": "CalicoNodeStatus", "metadata": {"name": f"v6kube-{name}"},
             "spec": {"node": name, "classes": ["Agent", "BGP", "Routes"], "updatePeriodSeconds": 30}}
            for name in names]
    return yaml.safe_dump_all(docs, sort_keys=False)


def _marker(run: Run) -> str:
    return run.remote_path("calico", "bgp.applied")


def _rendered_bgp(run: Run) -> str:
    from v6kube.planner import render_bgp

    return render_bgp(run.plan, run.secrets)


def calico_bgp(run: Run) -> None:
    ensure_calicoctl(run)
    conn = run.connection(run.control_plane)
    text = _rendered_bgp(run)
    calico_objects, kube_objects = split_bgp_objects(text)
    calico_objects += "---\n" + node_status_objects([n.name for n in run.cluster.nodes])
    secrets = [run.secrets.bgp_password] if run.secrets.bgp_password else []
    if kube_objects:
        path = run.remote_path("calico", "bgp-secret.yaml")
        conn.upload(kube_objects, path, mode=0o600, phase="calico-bgp")
        conn.run(f"{KUBECTL} apply -f {shlex.quote(path)}", phase="calico-bgp", secrets=secrets)
    path = run.remote_path("calico", "bgp.yaml")
    conn.upload(calico_objects, path, mode=0o600, phase="calico-bgp")
    conn.run(f"{CALICO_ENV} {CALICOCTL} apply -f {shlex.quote(path)}", phase="calico-bgp", secrets=secrets)
    conn.upload(_digest(text) + "\n", _marker(run), mode=0o600, phase="calico-bgp")


def bgp_applied(run: Run) -> bool:
    """The BGP objects last applied are the ones this run would apply (a marker holding their digest)."""
    conn = run.connection(run.control_plane)
    result = conn.run(f"cat {_marker(run)}", phase="calico-bgp", check=False, echo=False, log_output=False)
    return result.ok and result.stdout.strip() == _digest(_rendered_bgp(run))
