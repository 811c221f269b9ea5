"""What v6kube manages on a node: the files, packages, units and settings the steps own."""

from __future__ import annotations

SYSCTL_FILE = "/etc/sysctl.d/90-v6kube.conf"
SYSCTLS = (
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv6.conf.default.forwarding", "1"),
    ("net.ipv6.conf.all.accept_ra", "2"),
    ("net.ipv6.conf.default.accept_ra", "2"),
)
MODULES_FILE = "/etc/modules-load.d/v6kube.conf"
MODULES = ("br_netfilter", "overlay")
KEYRINGS_DIR = "/etc/apt/keyrings"
DOCKER_KEYRING = f"{KEYRINGS_DIR}/docker.asc"
DOCKER_LIST = "/etc/apt/sources.list.d/docker.list"
# Armored keys as they are served (apt reads .asc keyrings): no gpg needed on the node.
KUBERNETES_KEYRING = f"{KEYRINGS_DIR}/kubernetes-apt-keyring.asc"
KUBERNETES_LIST = "/etc/apt/sources.list.d/kubernetes.list"
KUBERNETES_PACKAGES = ("kubelet", "kubeadm", "kubectl")
CONTAINERD_PACKAGE = "containerd.io"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
RESOLVED_DROPIN = "/etc/systemd/resolved.conf.d/v6kube-dns.conf"
RESOLV_CONF = "/etc/resolv.conf"
# The kubelet hands this file to pods (and CoreDNS) instead of the host's resolv.conf, which under
# systemd-resolved also lists the per-link (often IPv4) servers; kubeadm/init.yaml points at it.
KUBELET_RESOLV_CONF = "/etc/v6kube/resolv.conf"
PEER_ROUTES_SCRIPT = "/etc/v6kube/peer-routes.sh"
PEER_ROUTES_UNIT = "v6kube-peer-routes.service"
PEER_ROUTES_UNIT_FILE = f"/etc/systemd/system/{PEER_ROUTES_UNIT}"
MANAGED_FILES = (SYSCTL_FILE, MODULES_FILE, DOCKER_LIST, KUBERNETES_LIST, CONTAINERD_CONFIG,
                 RESOLVED_DROPIN, KUBELET_RESOLV_CONF, PEER_ROUTES_SCRIPT, PEER_ROUTES_UNIT_FILE)
WATCHED_UNITS = ("swap.target", PEER_ROUTES_UNIT)
# A fresh server's unattended-upgrades may hold dpkg's lock for minutes: wait for it, not fail.
APT_LOCK_WAIT = "-o DPkg::Lock::Timeout=600"
APT_INSTALL = (f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {APT_LOCK_WAIT} "
               "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold")
# Steps sent over SSH run one at a time per node: after a dropped connection the first copy of a
# step may still be running when it is sent again (flock -o: what the step starts keeps no lock).
STEP_LOCK = "/run/v6kube-prepare.lock"
