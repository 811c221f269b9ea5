"""The one ordered list of steps (what `create` runs and what prepare.sh contains) and planning a
node: facts in, one StepResult per step out."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from v6kube.errors import DownloadHostUnreachable, UnsupportedOS
from v6kube.nodes.facts import Facts
from v6kube.nodes.managed import DOWNLOAD_HOSTS
from v6kube.nodes.package_steps import (
    base_packages_step,
    containerd_config_step,
    docker_repo_step,
    ensure_base_packages,
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
    ensure_networkd_keeps_routes,
    ensure_peer_routes,
    ensure_peer_routes_at_boot,
    ensure_resolvers_resolv_conf,
    ensure_resolvers_resolved,
    ensure_swap_off,
    ensure_sysctls,
    kernel_modules_step,
    kubelet_resolvers_step,
    networkd_keeps_routes_step,
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
    (networkd_keeps_routes_step, ensure_networkd_keeps_routes),
    (peer_routes_step, ensure_peer_routes),
    (peer_routes_at_boot_step, ensure_peer_routes_at_boot),
    (base_packages_step, ensure_base_packages),
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


def check_download_hosts(facts: Facts, node: str) -> None:
    """Every host the node downloads from must have an address the node has a route to: an
    IPv6-only node behind an IPv4-only host would otherwise fail deep in a step (curl, apt, a pull)."""
    problems = []
    for host in DOWNLOAD_HOSTS:
        addresses = facts.download_hosts.get(host)
        if addresses is None:
            continue  # not checked (the fact did not name it)
        if not addresses:
            problems.append(f"{host} does not resolve to any address this node could use")
        elif not any(routed for _, routed in addresses):
            shown = ", ".join(address for address, _ in addresses)
            family = "IPv4" if all(":" not in address for address, _ in addresses) else "IP"
            problems.append(f"no route to {host} (its {family} addresses: {shown})")
    if problems:
        raise DownloadHostUnreachable(
            f"{node}: cannot reach every host it downloads from: " + "; ".join(problems),
            hint="an IPv6-only node needs IPv4 (provider.public_ipv4) or NAT64/DNS64 for a host that "
                 "serves only IPv4, and working DNS; see the README's table of download hosts. "
                 "Nothing was changed on the node")


def plan_node(facts: Facts, spec: PrepareSpec) -> list[StepResult]:
    """Facts in, one StepResult per step out (pure). Raises UnsupportedOS, then
    DownloadHostUnreachable, before planning anything."""
    check_unsupported(facts, spec.node)
    check_download_hosts(facts, spec.node)
    if facts.architecture and facts.architecture != spec.architecture:
        spec = replace(spec, architecture=facts.architecture)  # the node's own architecture wins
    return [ensure(facts, spec) for _, ensure in STEPS]
