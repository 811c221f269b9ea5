"""Node preparation as facts and steps (pyinfra style).

- A fact is a shell command plus a pure parser (`FACTS`); `gather_facts` runs them all in one go.
- A step (`Step`) is defined once: its shell commands, its shell-side check (true when nothing is
  left to do) and, for steps that only apply sometimes, a shell condition.
- Each `ensure_*` function decides the same thing in Python from parsed facts and returns a
  `StepResult`: the step's commands with the reason they run, or a no-op with the reason it is one.
- `apply` runs the commands over a connection; `prepare_nodes` does facts -> plan -> apply -> verify
  on several nodes at once; `render_prepare_script` writes the same steps as a bash script, each
  guarded by its check. One list (`STEPS`) feeds both, so the script and `create` cannot drift apart.

Every path written here is under /etc, and every value that reaches a shell goes through shlex.quote.

Choices worth knowing:
- Before anything changes: the OS is supported, and every host the node downloads from
  (managed.DOWNLOAD_HOSTS) has an address the node has a route to.
- curl and ca-certificates are installed first when a minimal image lacks them; nothing needs gpg.
- containerd 2.x comes from Docker's apt repository (package containerd.io; keyring
  /etc/apt/keyrings/docker.asc, deb822 source /etc/apt/sources.list.d/docker.sources, an old
  docker.list removed): Debian 12 and Ubuntu ship containerd 1.x. Its config is written whole
  (version 3, SystemdCgroup = true, the pause image of the minor pinned).
- kubelet, kubeadm and kubectl come from pkgs.k8s.io for the chosen minor and are held; a new
  minor unholds, installs and holds them again.
- The /128 routes to the BGP peers are added live (`ip -6 route replace`) and restored at boot by
  a oneshot unit, v6kube-peer-routes.service, running /etc/v6kube/peer-routes.sh: it works the
  same under netplan (Ubuntu), ifupdown (Debian) and systemd-networkd, and retries while the
  network comes up. systemd-networkd is told to keep routes it did not make
  (ManageForeignRoutes=no), or a restart of it would delete them.
- sysctls go to /etc/sysctl.d/90-v6kube.conf and only that file is applied (`sysctl -p FILE`).
- Resolvers: a systemd-resolved drop-in when resolved owns /etc/resolv.conf, else the file itself,
  rewritten in place (it may be a bind mount). Pods get /etc/v6kube/resolv.conf (IPv6 resolvers
  only) through the kubelet's resolvConf, set in kubeadm/init.yaml.
"""

from v6kube.nodes.apply import apply, check_script, prepare_nodes, step_script
from v6kube.nodes.facts import FACTS, Facts, gather_facts, gather_raw_facts
from v6kube.nodes.managed import KUBELET_RESOLV_CONF
from v6kube.nodes.plan import STEPS, plan_node, steps_for
from v6kube.nodes.script import render_prepare_script
from v6kube.nodes.spec import SUPPORTED_OS, OSRelease, PrepareSpec, os_key, spec_for
from v6kube.nodes.step import Step, StepResult

__all__ = [
    "FACTS", "KUBELET_RESOLV_CONF", "STEPS", "SUPPORTED_OS", "Facts", "OSRelease", "PrepareSpec", "Step",
    "StepResult", "apply", "check_script", "gather_facts", "gather_raw_facts", "os_key", "plan_node",
    "prepare_nodes", "render_prepare_script", "spec_for", "step_script", "steps_for",
]
