"""The phases `v6kube create` runs, in order. Reading this list is reading what create does."""

from __future__ import annotations

from typing import NamedTuple


class PhaseInfo(NamedTuple):
    name: str
    summary: str


CREATE_PHASES: tuple[PhaseInfo, ...] = (
    PhaseInfo("provision", "find or create the servers (find-then-create), wait until every one is active"),
    PhaseInfo("bgp", "enable BGP for the project, one IPv6 session per server, read each server's neighbours"),
    PhaseInfo("prepare", "prepare every node over SSH, in parallel: containerd, kubeadm/kubelet, swap, "
                         "sysctls, modules, IPv6 resolvers, routes to the BGP peers"),
    PhaseInfo("control-plane", "kubeadm init on the control-plane node with kubeadm/init.yaml"),
    PhaseInfo("calico", "install the Tigera operator, then calico/installation.yaml and calico/bgp.yaml"),
    PhaseInfo("workers", "kubeadm join on every worker with kubeadm/join-<node>.yaml, in parallel"),
    PhaseInfo("announce", "check that every BGP session is up and the routers learned the expected prefixes"),
)
