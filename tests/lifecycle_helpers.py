"""Shared pieces of the end-to-end tests: a download server standing in for GitHub, cluster files
for testbed nodes, and running the real CLI in a subprocess."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from ipaddress import IPv6Network
from pathlib import Path

import yaml

from fakes.metal_api import FakeMetal
from testbed.kube_stubs import calicoctl_script
from testbed.lab import BGP_PASSWORD, Lab, Node

CALICO_VERSION = "3.30.3"
BGP_ENV = "V6KUBE_TEST_BGP_PASSWORD"
OPERATOR_CRDS = "---\n".join(
    f"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {name}.operator.tigera.io\n"
    "spec:\n  group: operator.tigera.io\n" for name in ("installations", "apiservers", "tigerastatuses"))
TIGERA_OPERATOR = """apiVersion: v1
kind: Namespace
metadata:
  name: tigera-operator
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tigera-operator
  namespace: tigera-operator
"""


class DownloadServer:
    """A loopback HTTP server laid out like GitHub's release downloads and raw manifests."""

    def __init__(self, lab: Lab, root: Path, *, corrupt_sums: bool = False):
        self.root = root
        self.requests: list[str] = []
        release = root / "releases" / f"v{CALICO_VERSION}"
        manifests = root / "raw" / f"v{CALICO_VERSION}" / "manifests"
        release.mkdir(parents=True)
        manifests.mkdir(parents=True)
        binary = calicoctl_script(lab.root, CALICO_VERSION).encode()
        (release / "calicoctl-linux-amd64").write_bytes(binary)
        digest = hashlib.sha256(binary).hexdigest()
        if corrupt_sums:
            digest = "0" * 64
        (release / "SHA256SUMS").write_text(f"{digest}  calicoctl-linux-amd64\n{'1' * 64}  calicoctl-linux-arm64\n")
        (manifests / "operator-crds.yaml").write_text(OPERATOR_CRDS)
        (manifests / "tigera-operator.yaml").write_text(TIGERA_OPERATOR)
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                server.requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def env(self, cache: Path) -> dict[str, str]:
        return {"V6KUBE_CALICO_RELEASES_URL": f"{self.base}/releases",
                "V6KUBE_CALICO_MANIFESTS_URL": f"{self.base}/raw",
                "V6KUBE_CACHE_DIR": str(cache)}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def static_cluster(lab: Lab, name: str, nodes: list[Node], *, pin_keys: bool = True) -> dict:
    block = str(IPv6Network(f"{lab.lan.network_address}/56", strict=False))
    return {
        "name": name,
        "provider": {"type": "static", "block": block, "local_asn": 65000, "peer_asn": 65530,
                     "peers": [str(p) for p in lab.peers], "bgp_password_env": BGP_ENV},
        "nodes": [{"name": n.name, "role": "control-plane" if i == 0 else "worker", "address": str(n.address),
                   "gateway": str(lab.gateway), **({"host_key": n.host_key} if pin_keys else {})}
                  for i, n in enumerate(nodes)],
        "ssh": {"private_key": str(lab.client_key), "connect_timeout": 20, "command_timeout": 120,
                "trust_on_first_use": not pin_keys},
    }


def write_cluster(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({BGP_ENV: BGP_PASSWORD, "V6KUBE_POLL_INTERVAL": "0.05", "NO_COLOR": "1", "COLUMNS": "200"})
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], *, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "v6kube", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "v6kube", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)


def phases_done(state_dir: Path) -> list[str]:
    try:
        return list(json.loads((state_dir / "state.json").read_text())["phases_done"])
    except (OSError, ValueError, KeyError):
        return []


def api_dir(lab: Lab, node: Node) -> Path:
    return lab.root / "kube-api" / str(node.address)


class Boot(threading.Thread):
    """Installs each new device's pinned host key on its testbed node and starts its sshd."""

    def __init__(self, lab, api, nodes):
        super().__init__(daemon=True)
        self.lab, self.api, self.nodes, self.booted, self.stop = lab, api, nodes, set(), threading.Event()

    def run(self):
        while not self.stop.is_set():
            with self.api.lock:
                devices = [(i, d["hostname"], d["userdata"]) for i, d in self.api.devices.items() if not d.get("deleted")]
            for device_id, hostname, userdata in devices:
                if device_id not in self.booted and hostname in self.nodes:  # a replacement boots anew
                    keys = yaml.safe_load(userdata)["ssh_keys"]
                    node = self.nodes[hostname]
                    self.lab.stop_sshd(node)
                    (node.dir / "ssh_host_ed25519_key").write_text(keys["ed25519_private"])
                    (node.dir / "ssh_host_ed25519_key.pub").write_text(keys["ed25519_public"] + "\n")
                    node.host_key = keys["ed25519_public"]
                    self.lab.start_sshd(node)
                    self.booted.add(device_id)
            time.sleep(0.05)


def fake_metal_for(lab: Lab, nodes: dict[str, Node], token: str, **options) -> FakeMetal:
    """A fake Metal API whose project /56 is the lab's and whose devices get the nodes' addresses
    (hostname = node name) and the lab router's addresses as BGP peers."""
    block = IPv6Network((lab.lan.network_address, 56), strict=False)
    addresses = {name: (str(n.address), str(lab.gateway), 64) for name, n in nodes.items()}
    return FakeMetal(token=token, block=str(block), addresses=addresses,
                     peer_ips=tuple(str(p) for p in lab.peers), **options)


PLACEHOLDER = "v6kube.placeholder00000"
SECRET_SHAPES = {
    "bootstrap token": re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"),
    "certificate key": re.compile(r"certificate[-_]?key\W{1,3}[0-9a-f]{64}", re.I),
    "private key": re.compile(r"PRIVATE KEY-----\s*(?:\\n)?[A-Za-z0-9+/=]{16,}"),
}


def leaks(text: str, *values: str) -> list[str]:
    """What in `text` is secret: the lab's BGP password, any of `values`, or a secret's shape."""
    found = [f"secret value {v[:4]}..." for v in (BGP_PASSWORD, *values) if v in text]
    for name, shape in SECRET_SHAPES.items():
        found += [f"{name}: {m.group(0)[:12]}..." for m in shape.finditer(text) if m.group(0) != PLACEHOLDER]
    return found
