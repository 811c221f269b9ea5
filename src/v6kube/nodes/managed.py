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
# Docker documents a deb822 source today; the one-line list of older instructions is removed.
DOCKER_SOURCES = "/etc/apt/sources.list.d/docker.sources"
DOCKER_LIST = "/etc/apt/sources.list.d/docker.list"
# Armored keys as they are served (apt reads .asc keyrings): no gpg needed on the node.
KUBERNETES_KEYRING = f"{KEYRINGS_DIR}/kubernetes-apt-keyring.asc"
KUBERNETES_LIST = "/etc/apt/sources.list.d/kubernetes.list"
KUBERNETES_PACKAGES = ("kubelet", "kubeadm", "kubectl")
# What the steps themselves use (curl fetches the apt keys over HTTPS); minimal cloud images may lack them.
BASE_PACKAGES = ("curl", "ca-certificates")
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
# systemd-networkd deletes every route it did not configure when it starts (ManageForeignRoutes=yes
# by default), the peer routes and Calico's routes with them; this drop-in tells it to leave them.
NETWORKD_DROPIN = "/etc/systemd/networkd.conf.d/v6kube-foreign-routes.conf"
NETWORKD_UNIT = "systemd-networkd.service"
MANAGED_FILES = (SYSCTL_FILE, MODULES_FILE, DOCKER_SOURCES, DOCKER_LIST, KUBERNETES_LIST, CONTAINERD_CONFIG,
                 RESOLVED_DROPIN, KUBELET_RESOLV_CONF, PEER_ROUTES_SCRIPT, PEER_ROUTES_UNIT_FILE, NETWORKD_DROPIN)
WATCHED_UNITS = ("swap.target", PEER_ROUTES_UNIT)
# A fresh server's unattended-upgrades may hold dpkg's lock for minutes: wait for it, not fail.
APT_LOCK_WAIT = "-o DPkg::Lock::Timeout=600"
APT_INSTALL = (f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {APT_LOCK_WAIT} "
               "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold")
# Steps sent over SSH run one at a time per node: after a dropped connection the first copy of a
# step may still be running when it is sent again (flock -o: what the step starts keeps no lock).
STEP_LOCK = "/run/v6kube-prepare.lock"

# Hosts every node downloads from itself: apt repositories (pkgs.k8s.io redirects to its CDN host),
# the kubeadm images (registry.k8s.io; it redirects blobs to a regional mirror it chooses) and the
# Calico images the operator pulls (quay.io). README "Downloads on the nodes" says which serve IPv6.
DOWNLOAD_HOSTS = ("download.docker.com", "pkgs.k8s.io", "prod-cdn.packages.k8s.io", "registry.k8s.io", "quay.io")

# The sandbox (pause) image kubeadm of each minor expects (cmd/kubeadm/app/constants PauseVersion);
# containerd pins the same one, so kubeadm's preflight finds no inconsistent sandbox image.
PAUSE_VERSIONS = {"1.31": "3.10", "1.32": "3.10", "1.33": "3.10", "1.34": "3.10.1"}
LATEST_PAUSE_VERSION = "3.10.1"  # 1.35 and later, until kubeadm moves on


def pause_image(minor: str) -> str:
    return f"registry.k8s.io/pause:{PAUSE_VERSIONS.get(minor, LATEST_PAUSE_VERSION)}"
