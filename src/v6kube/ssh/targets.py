"""Where and how to connect: one Target per node, the SSH options, the address to dial."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping

from v6kube.errors import SSHError

if TYPE_CHECKING:  # pragma: no cover
    from v6kube.config import SSH, Cluster

AddressFamily = Literal["auto", "ipv6", "ipv4"]


@dataclass(frozen=True)
class Target:
    """One node to connect to."""

    node: str
    address: IPv6Address
    host_key: str | None = None  # pinned "ssh-ed25519 AAAA..."; None: only with trust_on_first_use
    public_ipv4: IPv4Address | None = None  # used with address_family ipv4, or auto without IPv6

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", IPv6Address(str(self.address)))
        if self.public_ipv4 is not None:
            object.__setattr__(self, "public_ipv4", IPv4Address(str(self.public_ipv4)))


@dataclass(frozen=True)
class SSHOptions:
    user: str = "root"
    port: int = 22
    private_key: Path | None = None  # None: the SSH agent's keys
    address_family: AddressFamily = "auto"
    trust_on_first_use: bool = False
    connect_timeout: float = 900.0  # deadline for a booting server to answer
    command_timeout: float = 1800.0
    keepalive: int = 15
    log_dir: Path | None = None  # the state directory's logs/: one <node>.log each

    @classmethod
    def from_config(cls, ssh: SSH, log_dir: Path | None = None) -> SSHOptions:
        key = Path(ssh.private_key).expanduser() if ssh.private_key else None
        return cls(user=ssh.user, port=ssh.port, private_key=key, address_family=ssh.address_family,
                   trust_on_first_use=ssh.trust_on_first_use, connect_timeout=ssh.connect_timeout,
                   command_timeout=ssh.command_timeout, log_dir=log_dir)


def targets_for(cluster: Cluster, servers: Iterable[Any] = (),
                host_keys: Mapping[str, str] | None = None) -> list[Target]:
    """The SSH targets for a cluster's nodes.

    Addresses come from the cluster file (static) or the provider's servers (`hostname`, `ipv6`,
    `ipv4_public`, `host_public_key`). The pinned key is, in order: the cluster file's host_key,
    the one recorded in the state (`host_keys`), the one the provider installed.
    """
    by_name = {server.hostname: server for server in servers}
    recorded = host_keys or {}
    targets = []
    for node in cluster.nodes:
        server = by_name.get(node.name)
        address = node.address or (server.ipv6 if server else None)
        if address is None:
            raise SSHError(f"{node.name}: no IPv6 address known for this node",
                           hint="the provider has not reported it yet; run the provision phase first")
        host_key = node.host_key or recorded.get(node.name) or (server.host_public_key if server else None)
        public_ipv4 = node.public_ipv4 or (server.ipv4_public if server else None)
        targets.append(Target(node.name, address, host_key, public_ipv4))
    return targets


def _where(address: IPv6Address | IPv4Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def choose_address(target: Target, family: AddressFamily) -> IPv6Address | IPv4Address:
    """The address to dial first: IPv6 unless told ipv4. (With `auto`, a connect that finds no
    IPv6 route here, ENETUNREACH, moves on to the public IPv4 address if there is one.)"""
    if family == "ipv4":
        if target.public_ipv4 is None:
            raise SSHError(f"{target.node}: ssh.address_family is ipv4 but the node has no public IPv4 address")
        return target.public_ipv4
    return target.address
