"""control-plane, kubeconfig and workers: kubeadm init, the admin kubeconfig, kubeadm join."""

from __future__ import annotations

import hashlib
import re
import shlex
import time

from v6kube import console, redact
from v6kube.errors import V6kubeError
from v6kube.phases.context import ADMIN_CONF, KUBECTL, Run
from v6kube.redact import Secret

KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
BOOTSTRAP_KUBELET_CONF = "/etc/kubernetes/bootstrap-kubelet.conf"
CA_CERT = "/etc/kubernetes/pki/ca.crt"
TOKEN_TTL = "1h0m0s"
TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
# What kubeadm init does after the API server answers, in its own order; each phase is safe to
# run again, so an init interrupted after admin.conf was written is finished with these.
FINISH_INIT = ("upload-config all", "mark-control-plane", "bootstrap-token", "kubelet-finalize all", "addon all")
# Only an init that got to its end made these (admin.conf's user has its rights through a binding
# kubeadm creates late, and cluster-info and kube-proxy come last).
INIT_COMPLETE = (f"{KUBECTL} -n kube-public get configmap cluster-info -o name --request-timeout=10s && "
                 f"{KUBECTL} -n kube-system get daemonset kube-proxy -o name --request-timeout=10s")
# Later phases that depend on this control plane's CA: redone after a new kubeadm init.
AFTER_INIT = ("kubeconfig", "calico", "calico-bgp", "workers", "announce")


def _ok(run: Run, command: str, phase: str = "control-plane") -> bool:
    return run.connection(run.control_plane).run(command, phase=phase, check=False, echo=False).ok


def api_answers(run: Run) -> bool:
    """admin.conf exists and the API server answers /readyz."""
    return _ok(run, f"test -f {ADMIN_CONF} && {KUBECTL} get --raw=/readyz --request-timeout=10s")


def init_complete(run: Run) -> bool:
    return _ok(run, INIT_COMPLETE)


def wait_api(run: Run) -> None:
    deadline = time.monotonic() + run.timeouts.api
    while not api_answers(run):
        if time.monotonic() >= deadline:
            raise V6kubeError(f"{run.control_plane}: {ADMIN_CONF} exists but the API server has not answered "
                              f"for {run.timeouts.api:g} s",
                              hint="look at 'journalctl -u kubelet' and 'crictl ps' there; if kubeadm init was "
                                   "interrupted, run 'kubeadm reset -f' on that node")
        console.progress("control-plane", run.control_plane, "waiting for the API server to answer")
        time.sleep(run.timeouts.poll)


def new_bootstrap_token() -> Secret:
    """A kubeadm bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}) made here, masked everywhere."""
    import secrets
    import string

    alphabet = string.ascii_lowercase + string.digits
    token = "".join(secrets.choice(alphabet) for _ in range(6)) + "." + \
        "".join(secrets.choice(alphabet) for _ in range(16))
    redact.register(token)
    return Secret(token)


def _delete_token(run: Run, token: Secret, phase: str) -> None:
    run.connection(run.control_plane).run(f"kubeadm token delete {shlex.quote(token.reveal().split('.')[0])}",
                                          phase=phase, secrets=[token], check=False, echo=False)


def control_plane(run: Run) -> None:
    from v6kube.planner import Secrets, render_init

    name = run.control_plane
    conn = run.connection(name)
    path = run.remote_path("kubeadm", "init.yaml")
    initialised = conn.run(f"test -f {ADMIN_CONF}", phase="control-plane", check=False, echo=False).ok
    if initialised:
        wait_api(run)  # kubelet may still be starting the API server
        if init_complete(run):
            console.progress("control-plane", name, f"already initialised ({ADMIN_CONF} exists, the API answers)")
            return
    token = new_bootstrap_token()  # in init.yaml (0600) only, never on a command line
    config = render_init(run.plan, Secrets(bootstrap_token=token), kubernetes_version=run.kubernetes_version)
    conn.run(f"mkdir -p {shlex.quote(run.remote_path('kubeadm'))}", phase="control-plane", echo=False)
    conn.upload(config, path, mode=0o600, phase="control-plane")
    try:
        if initialised:  # an init interrupted after admin.conf: finish it, phase by phase
            console.progress("control-plane", name, "kubeadm init was interrupted; finishing its last phases")
            for step in FINISH_INIT:
                conn.run(f"kubeadm init phase {step} --config {shlex.quote(path)}", phase="control-plane",
                         secrets=[token])
        else:
            console.progress("control-plane", name, f"kubeadm init, Kubernetes {run.kubernetes_version}")
            conn.run(f"kubeadm init --config {shlex.quote(path)} --skip-token-print", phase="control-plane",
                     secrets=[token])
            run.state.forget_phases(*AFTER_INIT)  # a new CA: what was done for an older one is redone
            run.state.save()
    finally:  # the init token was for this run only: joins get their own short-lived one
        _delete_token(run, token, "control-plane")


# --- the admin kubeconfig -----------------------------------------------------------------------


def server_url(run: Run) -> str:
    return f"https://{run.plan.api_endpoint}"


def ca_fingerprint(run: Run) -> str:
    """The SHA-256 of the control plane's CA certificate (what every node must share)."""
    out = run.connection(run.control_plane).run(f"sha256sum {CA_CERT}", phase="control-plane", echo=False)
    return out.stdout.split()[0]


def kubeconfig(run: Run) -> None:
    from v6kube import kubeconfig as kc
    from v6kube.state import write_private

    admin = run.connection(run.control_plane).download(ADMIN_CONF, phase="kubeconfig")
    text = kc.from_admin_conf(admin, run.cluster.name, server_url(run))
    path = run.local_path("kubeconfig")
    write_private(path, text)
    console.progress("kubeconfig", None, f"wrote {path} (context {run.cluster.name}, server {server_url(run)})")


def kubeconfig_written(run: Run) -> bool:
    """The local kubeconfig points at the control plane and trusts its current CA."""
    import base64

    import yaml

    path = run.local_path("kubeconfig")
    try:
        cluster = yaml.safe_load(path.read_text(encoding="utf-8"))["clusters"][0]["cluster"]
        ca = base64.b64decode(cluster["certificate-authority-data"])
    except (OSError, ValueError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return False
    return cluster.get("server") == server_url(run) and hashlib.sha256(ca).hexdigest() == ca_fingerprint(run)


# --- workers -----------------------------------------------------------------------------------


def ca_cert_hash(pem: bytes) -> str:
    """kubeadm's discovery hash: sha256 of the CA certificate's DER SubjectPublicKeyInfo."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise V6kubeError(f"{CA_CERT} on the control plane is not a PEM certificate") from None
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _joined(run: Run, names: list[str]) -> dict[str, bool]:
    """Joined: kubelet.conf exists and the node trusts the control plane's current CA."""
    fingerprint = ca_fingerprint(run)
    connections = run.connections(names)
    check = f"test -f {KUBELET_CONF} && sha256sum {CA_CERT}"

    def joined(name: str) -> bool:
        result = connections[name].run(check, phase="workers", check=False, echo=False)
        return result.ok and result.stdout.split()[:1] == [fingerprint]

    return run.on_nodes(names, joined)


# A join that stopped half-way (kubelet started, or another cluster's files) fails kubeadm's
# preflight checks when run again: such a node, not joined to this cluster, is reset first.
RESET_LEFTOVERS = (f"if [ -e {KUBELET_CONF} ] || [ -e {BOOTSTRAP_KUBELET_CONF} ] || [ -e {CA_CERT} ]; then "
                   "kubeadm reset -f; fi")


def _create_join_token(run: Run) -> Secret:
    """A fresh one-hour token made by kubeadm on the control plane; read from its output (never
    logged) so that it never appears on a command line."""
    out = run.connection(run.control_plane).run(
        f"kubeadm token create --ttl {TOKEN_TTL} --description {shlex.quote('v6kube join')}",
        phase="workers", echo=False, log_output=False).stdout.strip().splitlines()
    token = out[-1].strip() if out else ""
    if not TOKEN.match(token):
        raise V6kubeError(f"{run.control_plane}: kubeadm token create gave no token")
    redact.register(token)
    return Secret(token)


def workers(run: Run) -> None:
    from v6kube.planner import Secrets, render_join

    joined = _joined(run, run.workers())
    for name in (n for n, done in joined.items() if done):
        console.progress("workers", name, f"already joined ({KUBELET_CONF} exists, this cluster's CA)")
    todo = [n for n, done in joined.items() if not done]
    if not todo:
        return
    cp = run.connection(run.control_plane)
    token = _create_join_token(run)
    try:
        secrets = Secrets(bootstrap_token=token, ca_cert_hash=ca_cert_hash(cp.download(CA_CERT, phase="workers")))
        connections = run.connections(todo)

        def join(name: str) -> None:
            conn = connections[name]
            path = run.remote_path("kubeadm", "join.yaml")
            conn.run(f"mkdir -p {shlex.quote(run.remote_path('kubeadm'))}", phase="workers", echo=False)
            conn.upload(render_join(run.plan, run.plan.addresses.node(name), secrets), path, mode=0o600,
                        phase="workers")
            conn.run(RESET_LEFTOVERS, phase="workers")
            conn.run(f"kubeadm join --config {shlex.quote(path)}", phase="workers", secrets=[token])
            console.progress("workers", name, "joined")

        run.on_nodes(todo, join)
    finally:
        _delete_token(run, token, "workers")


def workers_joined(run: Run) -> bool:
    return all(_joined(run, run.workers()).values())


def has_workers(run: Run) -> bool:
    return bool(run.workers())
