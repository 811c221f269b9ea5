"""The desired state of one node (PrepareSpec) and the operating systems v6kube prepares."""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any, Iterable

from v6kube.errors import UnsupportedOS, UsageError

# Supported operating systems ("<ID>-<VERSION_ID>" from /etc/os-release) and their codenames.
SUPPORTED_OS = {"ubuntu-22.04": "jammy", "ubuntu-24.04": "noble", "debian-12": "bookworm"}


@dataclass(frozen=True)
class PrepareSpec:
    """What one node should look like."""

    node: str
    os_id_hint: str | None  # e.g. "ubuntu_24_04" or "debian-12" (the provider's image); None: unknown
    kubernetes_minor: str  # "1.33"
    resolvers: tuple[IPv6Address, ...]
    gateway: IPv6Address
    peers: tuple[IPv6Address, ...]  # the BGP peers, reached by /128 routes via the gateway
    containerd_major: int = 2
    architecture: str = "amd64"  # dpkg's name; the node's own (a fact) wins when v6kube prepares it

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", self.node):
            raise UsageError(f"node name {self.node!r} is not a DNS label")
        if not re.fullmatch(r"1\.\d+", self.kubernetes_minor):
            raise UsageError(f"{self.node}: Kubernetes minor must look like 1.33, got {self.kubernetes_minor!r}")
        if not re.fullmatch(r"[a-z0-9]+", self.architecture):
            raise UsageError(f"{self.node}: {self.architecture!r} is not a dpkg architecture name")
        if self.containerd_major != 2:
            raise UsageError(f"{self.node}: containerd {self.containerd_major}.x is not supported; "
                             "v6kube installs containerd 2.x (config version 3)")
        object.__setattr__(self, "resolvers", tuple(IPv6Address(str(r)) for r in self.resolvers))
        object.__setattr__(self, "peers", tuple(IPv6Address(str(p)) for p in self.peers))
        object.__setattr__(self, "gateway", IPv6Address(str(self.gateway)))
        if self.gateway.is_link_local:
            raise UsageError(f"{self.node}: the gateway {self.gateway} is link-local; routes via it would need "
                             "an interface name, give the gateway's global address")
        if not self.resolvers:
            raise UsageError(f"{self.node}: at least one IPv6 resolver is needed")
        if not 1 <= len(self.resolvers) <= 3:
            raise UsageError(f"{self.node}: at most 3 resolvers (the C library reads no more)")


def spec_for(cluster: Any, node: str, *, gateway: IPv6Address, peers: Iterable[IPv6Address],
             os_id_hint: str | None = None) -> PrepareSpec:
    """The spec for one node of a cluster file (`config.Cluster`)."""
    return PrepareSpec(node=node, os_id_hint=os_id_hint, kubernetes_minor=cluster.kubernetes.version,
                       resolvers=tuple(cluster.kubernetes.dns_resolvers), gateway=gateway, peers=tuple(peers))


@dataclass(frozen=True)
class OSRelease:
    id: str
    version_id: str
    codename: str = ""
    pretty_name: str = ""

    @property
    def key(self) -> str:
        return f"{self.id}-{self.version_id}"

    @property
    def supported(self) -> bool:
        return self.key in SUPPORTED_OS

    @classmethod
    def from_key(cls, key: str) -> OSRelease:
        os_id, _, version = key.partition("-")
        return cls(os_id, version, SUPPORTED_OS.get(key, ""), key)


def os_key(hint: str) -> str:
    """Normalise an OS name: "ubuntu_24_04", "Ubuntu 24.04", "debian_12" -> "ubuntu-24.04", "debian-12"."""
    match = re.fullmatch(r"([a-z]+)[-_ ]?(\d+)(?:[._](\d+))?", hint.strip().lower())
    if not match:
        raise UnsupportedOS(f"unknown operating system {hint!r}; supported: {', '.join(SUPPORTED_OS)}")
    name, major, minor = match.groups()
    key = f"{name}-{major}.{minor}" if minor else f"{name}-{major}"
    if key not in SUPPORTED_OS:
        raise UnsupportedOS(f"{hint!r} is not supported; supported: {', '.join(SUPPORTED_OS)}")
    return key
