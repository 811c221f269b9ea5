"""The one ordered list of steps (what `create` runs and what prepare.sh contains) and planning a
node: facts in, one StepResult per step out."""

from __future__ import annotations

from typing import Callable

from v6kube.errors import UnsupportedOS
from v6kube.nodes.facts import Facts
from v6kube.nodes.package_steps import (
    containerd_config_step,
    docker_repo_step,
    ensure_containerd_config,
    ensure_docker_repo,
    ensure_kubernetes_repo,
    ensure_packages,
    ensure_packages_held,
    kubernetes_repo_step,
    packages_held_step,
    packages_step,
)
from v6kube.nodes.spec import OSRelease, PrepareSpec
from v6kube.nodes.step import Step, StepResult
from v6kube.nodes.system_steps import (
    ensure_kernel_modules,
    ensure_kubelet_resolvers,
    ensure_peer_routes,
    ensure_peer_routes_at_boot,
    ensure_resolvers_resolv_conf,
    ensure_resolvers_resolved,
    ensure_swap_off,
    ensure_sysctls,
    kernel_modules_step,
    kubelet_resolvers_step,
    peer_routes_at_boot_step,
    peer_routes_step,
    resolvers_resolv_conf_step,
    resolvers_resolved_step,
    swap_off_step,
    sysctls_step,
)

# The one ordered list: what `create` runs and what prepare.sh contains.
STEPS: tuple[tuple[Callable[[PrepareSpec, OSRelease], Step], Callable[[Facts, PrepareSpec], StepResult]], ...] = (
    (swap_off_step, ensure_swap_off),
    (kernel_modules_step, ensure_kernel_modules),
    (sysctls_step, ensure_sysctls),
    (resolvers_resolved_step, ensure_resolvers_resolved),
    (resolvers_resolv_conf_step, ensure_resolvers_resolv_conf),
    (kubelet_resolvers_step, ensure_kubelet_resolvers),
    (peer_routes_step, ensure_peer_routes),
    (peer_routes_at_boot_step, ensure_peer_routes_at_boot),
    (docker_repo_step, ensure_docker_repo),
    (kubernetes_repo_step, ensure_kubernetes_repo),
    (packages_step, ensure_packages),
    (packages_held_step, ensure_packages_held),
    (containerd_config_step, ensure_containerd_config),
)


def steps_for(spec: PrepareSpec, os: OSRelease) -> list[Step]:
    return [build(spec, os) for build, _ in STEPS]


def check_unsupported(facts: Facts, node: str) -> None:
    if not facts.os.supported:
        raise UnsupportedOS(
            f"{node}: {facts.os.pretty_name or facts.os.key} is not supported; v6kube prepares "
            "Ubuntu 22.04, Ubuntu 24.04 and Debian 12",
            hint="reinstall the server with a supported image; nothing was changed on it")


def plan_node(facts: Facts, spec: PrepareSpec) -> list[StepResult]:
    """Facts in, one StepResult per step out (pure). Raises UnsupportedOS first if it must."""
    check_unsupported(facts, spec.node)
    return [ensure(facts, spec) for _, ensure in STEPS]
