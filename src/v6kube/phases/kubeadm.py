"""control-plane, kubeconfig and workers: kubeadm init, the admin kubeconfig, kubeadm join."""

from __future__ import annotations

import hashlib
import shlex
import time

from v6kube import console, redact
from v6kube.errors import V6kubeError
from v6kube.phases.context import ADMIN_CONF, KUBECTL, Run
from v6kube.redact import Secret

KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
CA_CERT = "/etc/kubernetes/pki/ca.crt"
TOKEN_TTL = "1h0m0s"


def api_answers(run: Run) -> bool:
    """admin.conf exists and the API server answers /readyz."""
    conn = run.connection(run.control_plane)
    check = f"test -f {ADMIN_CONF} && {KUBECTL} get --raw=/readyz --request-timeout=10s"
    return conn.run(check, phase="control-plane", check=False, echo=False).ok


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


def control_plane(run: Run) -> None:
    from v6kube.planner import Secrets, render_init

    name = run.control_plane
    conn = run.connection(name)
    if conn.run(f"test -f {ADMIN_CONF}", phase="control-plane", check=False, echo=False).ok:
        wait_api(run)  # initialised already; kubelet may still be starting the API server
        console.progress("control-plane", name, f"already initialised ({ADMIN_CONF} exists, the API answers)")
        return
    token = new_bootstrap_token()
    config = render_init(run.plan, Secrets(bootstrap_token=token), kubernetes_version=run.kubernetes_version)
    path = run.remote_path("kubeadm", "init.yaml")
    conn.run(f"mkdir -p {shlex.quote(run.remote_path('kubeadm'))}", phase="control-plane", echo=False)
    conn.upload(config, path, mode=0o600, phase="control-plane")
    console.progress("control-plane", name, f"kubeadm init, Kubernetes {run.kubernetes_version}")
    conn.run(f"kubeadm init --config {shlex.quote(path)} --skip-token-print", phase="control-plane",
             secrets=[token])
    # the token was for this run only: joins get their own short-lived one
    conn.run(f"kubeadm token delete {shlex.quote(token.reveal().split('.')[0])}", phase="control-plane",
             secrets=[token], check=False, echo=False)


# --- the admin kubeconfig -----------------------------------------------------------------------


def server_url(run: Run) -> str:
    return f"https://{run.plan.api_endpoint}"


def kubeconfig(run: Run) -> None:
    from v6kube import kubeconfig as kc
    from v6kube.state import write_private

    admin = run.connection(run.control_plane).download(ADMIN_CONF, phase="kubeconfig")
    text = kc.from_admin_conf(admin, run.cluster.name, server_url(run))
    path = run.local_path("kubeconfig")
    write_private(path, text)
    console.progress("kubeconfig", None, f"wrote {path} (context {run.cluster.name}, server {server_url(run)})")


def kubeconfig_written(run: Run) -> bool:
    import yaml

    path = run.local_path("kubeconfig")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        return doc["clusters"][0]["cluster"]["server"] == server_url(run)
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return False


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
    connections = run.connections(names)
    return run.on_nodes(names, lambda n: connections[n].run(f"test -f {KUBELET_CONF}", phase="workers",
                                                            check=False, echo=False).ok)


def workers(run: Run) -> None:
    from v6kube.planner import Secrets, render_join

    joined = _joined(run, run.workers())
    for name in (n for n, done in joined.items() if done):
        console.progress("workers", name, f"already joined ({KUBELET_CONF} exists)")
    todo = [n for n, done in joined.items() if not done]
    if not todo:
        return
    cp = run.connection(run.control_plane)
    token = new_bootstrap_token()
    cp.run(f"kubeadm token create {shlex.quote(token.reveal())} --ttl {TOKEN_TTL} "
           f"--description {shlex.quote('v6kube join')}", phase="workers", secrets=[token], echo=False)
    try:
        secrets = Secrets(bootstrap_token=token, ca_cert_hash=ca_cert_hash(cp.download(CA_CERT, phase="workers")))
        connections = run.connections(todo)

        def join(name: str) -> None:
            conn = connections[name]
            path = run.remote_path("kubeadm", "join.yaml")
            conn.run(f"mkdir -p {shlex.quote(run.remote_path('kubeadm'))}", phase="workers", echo=False)
            conn.upload(render_join(run.plan, run.plan.addresses.node(name), secrets), path, mode=0o600,
                        phase="workers")
            conn.run(f"kubeadm join --config {shlex.quote(path)}", phase="workers", secrets=[token])
            console.progress("workers", name, "joined")

        run.on_nodes(todo, join)
    finally:
        cp.run(f"kubeadm token delete {shlex.quote(token.reveal().split('.')[0])}", phase="workers",
               secrets=[token], check=False, echo=False)


def workers_joined(run: Run) -> bool:
    return all(_joined(run, run.workers()).values())


def has_workers(run: Run) -> bool:
    return bool(run.workers())
