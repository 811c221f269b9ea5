"""The phases of each command, in order. Reading a list is reading what the command does.

Phase modules import their heavy dependencies (paramiko, requests, ...) inside functions, so
this list costs nothing to import (`plan` and `create --help` show it).
"""

from __future__ import annotations

from v6kube.phases import announce, calico, kubeadm, prepare, provision
from v6kube.workflow import Phase

PROVISION = Phase("provision", "find or create the servers (find-then-create), wait until every one is active",
                  provision.provision, confirm=provision.servers_active)
BGP = Phase("bgp", "enable BGP for the project, one IPv6 session per server, read each server's neighbours",
            provision.bgp, confirm=provision.bgp_known)
PREPARE = Phase("prepare", "prepare every node over SSH, in parallel: containerd, kubeadm/kubelet, swap, "
                           "sysctls, modules, IPv6 resolvers, routes to the BGP peers",
                prepare.prepare, inputs=prepare.inputs, confirm=prepare.nodes_prepared)
CONTROL_PLANE = Phase("control-plane", "kubeadm init on the control-plane node with kubeadm/init.yaml "
                                       "(the exact kubeadm version installed there)",
                      kubeadm.control_plane, confirm=kubeadm.api_answers)
KUBECONFIG = Phase("kubeconfig", "fetch the admin kubeconfig into the state directory (0600), server "
                                 "https://[control plane]:6443, context named after the cluster",
                   kubeadm.kubeconfig, confirm=kubeadm.kubeconfig_written)
CALICO = Phase("calico", "install the Tigera operator (CRDs, operator) and calico/installation.yaml, "
                         "wait until Calico is Available",
               calico.calico, confirm=calico.calico_available)
CALICO_BGP = Phase("calico-bgp", "calicoctl (checksummed) to the control plane, then calico/bgp.yaml: "
                                 "mesh off, one BGPPeer per node and peer, the MD5 password Secret",
                   calico.calico_bgp, confirm=calico.bgp_applied)
WORKERS = Phase("workers", "kubeadm join on every worker not joined yet, in parallel, with a fresh "
                           "short-lived token and the CA hash",
                kubeadm.workers, run_if=kubeadm.has_workers, confirm=kubeadm.workers_joined)
ANNOUNCE = Phase("announce", "the service addresses Calico advertises (the cluster file's announce:, or what "
                             "announce-services applied last), after checking each node's prefix budget",
                 announce.announce_phase, inputs=announce.inputs)

CREATE_PHASES: tuple[Phase, ...] = (PROVISION, BGP, PREPARE, CONTROL_PLANE, KUBECONFIG, CALICO, CALICO_BGP, WORKERS,
                                    ANNOUNCE)

# join-worker: the same phases for the new nodes only (prepare and workers act on them alone;
# calico-bgp applies every node's peers, the new ones included).
JOIN_PHASES: tuple[Phase, ...] = (PROVISION, BGP, PREPARE, CALICO_BGP, WORKERS)
