"""Pieces of the lifecycle that need no server: worker names, the CA hash, kubeconfig rewriting
and merging, the checksummed download cache (against a loopback HTTP server), credentials checked
first, and two clusters in one project kept apart."""

from __future__ import annotations

import hashlib
import http.server
import os
import stat
import subprocess
import sys
import threading
from ipaddress import IPv6Network

import pytest
import yaml

from v6kube import downloads, kubeconfig
from v6kube.lifecycle import next_worker_names
from v6kube.phases.calico import split_bgp_objects
from v6kube.phases.kubeadm import ca_cert_hash


def test_next_worker_names_number_on():
    assert next_worker_names(["worker-0", "worker-1"], 2) == ["worker-2", "worker-3"]
    assert next_worker_names(["w7"], 1) == ["w8"]
    assert next_worker_names([], 2) == ["worker-0", "worker-1"]


def test_ca_cert_hash_matches_openssl(tmp_path):
    key, crt = tmp_path / "ca.key", tmp_path / "ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-subj", "/CN=kubernetes", "-days", "1"], check=True, capture_output=True)
    # kubeadm's documented recipe: the SHA-256 of the DER public key
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(crt)], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True, capture_output=True).stdout
    assert ca_cert_hash(crt.read_bytes()) == "sha256:" + hashlib.sha256(der).hexdigest()


ADMIN_CONF = """apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority-data: Q0E=, server: "https://[2001:db8::3]:6443"}
  name: kubernetes
contexts:
- context: {cluster: kubernetes, user: kubernetes-admin}
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""


def test_kubeconfig_named_after_the_cluster_and_merged_without_touching_others(tmp_path):
    text = kubeconfig.from_admin_conf(ADMIN_CONF, "seed", "https://[2001:db8::3]:6443")
    doc = yaml.safe_load(text)
    assert doc["current-context"] == "seed" and doc["contexts"][0]["context"] == {"cluster": "seed", "user": "seed-admin"}
    assert doc["clusters"][0]["cluster"]["server"] == "https://[2001:db8::3]:6443"
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "mine",
                                      "clusters": [{"name": "mine", "cluster": {}}, {"name": "seed", "cluster": {"old": 1}}],
                                      "contexts": [{"name": "mine", "context": {}}], "users": []}))
    backup = kubeconfig.merge(text, target)
    assert backup is not None and backup.exists()
    merged = yaml.safe_load(target.read_text())
    assert [c["name"] for c in merged["clusters"]] == ["mine", "seed"]
    assert merged["clusters"][1]["cluster"]["server"] == "https://[2001:db8::3]:6443"
    assert merged["current-context"] == "mine" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert kubeconfig.unmerge("seed", target)
    left = yaml.safe_load(target.read_text())
    assert [c["name"] for c in left["clusters"]] == ["mine"] and [c["name"] for c in left["contexts"]] == ["mine"]
    assert not kubeconfig.unmerge("seed", target)
    assert yaml.safe_load(target.read_text())["current-context"] == "mine"
    kubeconfig.unmerge("mine", target)  # no context selected any more: a merge selects ours
    kubeconfig.merge(text, target)
    assert yaml.safe_load(target.read_text())["current-context"] == "seed"


def test_bgp_objects_split_by_who_applies_them():
    text = ("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: a}\n---\n"
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n")
    calico, kube = split_bgp_objects(text)
    assert [d["kind"] for d in yaml.safe_load_all(calico)] == ["BGPPeer"]
    assert [d["kind"] for d in yaml.safe_load_all(kube)] == ["Secret"]


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    (root / "v3.30.3").mkdir(parents=True)
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def test_download_checked_cached_and_refused_on_mismatch(server, tmp_path, monkeypatch):
    root, base, hits = server
    binary = b"#!/bin/sh\necho calicoctl\n"
    (root / "v3.30.3" / "calicoctl-linux-amd64").write_bytes(binary)
    (root / "v3.30.3" / "SHA256SUMS").write_text(f"{hashlib.sha256(binary).hexdigest()}  calicoctl-linux-amd64\n")
    monkeypatch.setenv("V6KUBE_CALICO_RELEASES_URL", base)
    monkeypatch.setenv("V6KUBE_CACHE_DIR", str(tmp_path / "cache"))
    artifact = downloads.calicoctl("3.30.3", "amd64")
    assert downloads.fetch(artifact) == binary
    assert (tmp_path / "cache" / "calico/v3.30.3/calicoctl-linux-amd64.sha256").read_text().split()[0] == \
        hashlib.sha256(binary).hexdigest()
    count = len(hits)
    assert downloads.fetch(artifact) == binary and len(hits) == count  # served from the cache

    (tmp_path / "cache" / "calico/v3.30.3/calicoctl-linux-amd64").write_bytes(b"tampered")  # a bad cached copy
    assert downloads.fetch(artifact) == binary and len(hits) > count

    (root / "v3.30.3" / "SHA256SUMS").write_text(f"{'0' * 64}  calicoctl-linux-amd64\n")
    monkeypatch.setenv("V6KUBE_CACHE_DIR", str(tmp_path / "cache2"))
    with pytest.raises(downloads.DownloadError, match="does not match the published"):
        downloads.fetch(artifact)
    assert not (tmp_path / "cache2" / "calico/v3.30.3/calicoctl-linux-amd64").exists()


def test_missing_secrets_are_a_usage_error_before_any_call(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("METAL_AUTH_TOKEN", "PACKET_AUTH_TOKEN", "V6KUBE_BGP_PASSWORD")}
    for example, needle in (("examples/static.yaml", "V6KUBE_BGP_PASSWORD"), ("examples/minimal.yaml", "METAL_AUTH_TOKEN")):
        result = subprocess.run([sys.executable, "-m", "v6kube", "create", example, "--state-dir", str(tmp_path / "s")],
                                capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 2 and needle in result.stderr, result.stderr
        assert not (tmp_path / "s").exists()


def test_a_second_cluster_in_the_same_project_gets_other_subnets(tmp_path):
    """Two clusters' provision and bgp phases against one fake Metal project: the second avoids the
    subnets the first recorded on its devices (v6kube-subnet tags), so their routes cannot collide."""
    from fakes.metal_api import FakeMetal

    from v6kube.config import Cluster
    from v6kube.lifecycle import create
    from v6kube.providers.hostkeys import generate_host_key
    from v6kube.providers.packet.client import MetalClient

    token = "two-clusters-token-0123456789abcdef"
    skip = ("prepare", "control-plane", "kubeconfig", "calico", "calico-bgp", "workers", "announce")
    subnets = {}
    with FakeMetal(token=token) as api:
        for name in ("one", "two"):
            cluster = Cluster.model_validate({"name": name, "provider": {"type": "packet", "project": api.project_id},
                                              "nodes": [{"name": f"{name}-cp", "role": "control-plane"}]})
            options = {"client": MetalClient(token, api.url), "ssh_public_key": generate_host_key()[0],
                       "poll_interval": 0.01}
            state = create(cluster, f"{name}.yaml", tmp_path / name, skip=skip, provider_options=options,
                           environ={"METAL_AUTH_TOKEN": token})
            subnets[name] = {k: IPv6Network(v) for k, v in state.fact("subnets").items()}
    one, two = subnets["one"], subnets["two"]
    assert not any(a.overlaps(b) for a in one.values() for b in two.values()), subnets
