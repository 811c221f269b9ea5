"""The provider protocol and its models (DESIGN section 2).

A provider answers: which servers exist, make the missing ones, wait until they are ready, each
server's IPv6 address and gateway, BGP neighbours per server, the block the cluster may announce,
and delete servers. Adding a provider means adding one module that implements `Provider`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Any, Callable, Mapping, Protocol, Sequence, TypeVar

from v6kube import console
from v6kube.errors import UsageError
from v6kube.redact import Secret

T = TypeVar("T")

CONTROL_PLANE = "control-plane"
WORKER = "worker"


@dataclass(frozen=True)
class ServerSpec:
    """A server the cluster wants: its hostname, role and the SSH host key to install at boot."""

    name: str
    role: str  # CONTROL_PLANE | WORKER
    host_public_key: str | None = None  # "ssh-ed25519 AAAA..." pinned for this server
    host_private_key: Secret | None = None  # OpenSSH PEM, injected via cloud-init, never logged
    # The cluster's pod and service subnets: recorded with the provider so that another cluster in
    # the same project can see them (find_taken_subnets) and choose others.
    subnets: tuple[IPv6Network, ...] = ()


# Each provider's own words for a server that is up, or that failed (Packet and static: active /
# failed; phoenixNAP: powered-on / error). Server.ready and Server.failed read them.
READY_STATES = frozenset({"active", "powered-on"})
FAILED_STATES = frozenset({"failed", "error"})


@dataclass(frozen=True)
class Server:
    id: str
    hostname: str
    role: str
    state: str  # provider's word: queued, provisioning, active, failed, powered-on, error, ...
    ipv6: IPv6Address | None = None
    ipv6_gateway: IPv6Address | None = None
    ipv6_prefixlen: int | None = None
    ipv4_public: IPv4Address | None = None
    host_public_key: str | None = None

    @property
    def ready(self) -> bool:
        return self.state in READY_STATES

    @property
    def failed(self) -> bool:
        return self.state in FAILED_STATES


@dataclass(frozen=True)
class BGPNeighbor:
    """One BGP session's facts for one server (one address family)."""

    peer_ips: tuple[IPv6Address, ...]
    peer_asn: int
    local_asn: int
    local_ip: IPv6Address | None
    multihop: bool = True
    password: Secret | None = None
    routes_in: tuple[IPv6Network, ...] = ()


@dataclass(frozen=True)
class BGPProject:
    """Project-wide BGP facts: the local ASN, the MD5 password and the per-server prefix limit."""

    local_asn: int
    password: Secret | None = None
    max_prefix: int = 10


@dataclass(frozen=True)
class ProviderFacts:
    """What create needs from the provider before rendering anything."""

    block: IPv6Network
    bgp: BGPProject
    servers: tuple[Server, ...] = ()
    neighbors: dict[str, BGPNeighbor] = field(default_factory=dict)  # by hostname


def password_from_env(variable: str | None, environ: Mapping[str, str]) -> Secret | None:
    """The BGP password from the variable the cluster file names (provider.bgp_password_env)."""
    if not variable:
        return None
    value = environ.get(variable)
    if not value:
        raise UsageError(f"environment variable {variable} (provider.bgp_password_env) is not set",
                         hint=f"export {variable}=<the BGP MD5 password>, or remove bgp_password_env")
    return Secret(value)


class Provider(Protocol):
    name: str

    def find_servers(self) -> list[Server]:
        """The servers the cluster owns (by cluster tag / name). Never creates anything."""

    def ensure_servers(self, specs: Sequence[ServerSpec],
                       recorded_ids: Mapping[str, str] | None = None) -> list[Server]:
        """Find-then-create: create only the servers that do not exist yet; return all of them.

        `recorded_ids` (hostname -> id, from the state file): a server whose recorded id may still
        exist (not listed, but its id does not answer "gone") is never created a second time."""

    def wait_servers(self, servers: Sequence[Server], timeout: float) -> list[Server]:
        """Wait (one poll loop for all) until every server is active; raise on failure or deadline."""

    def ensure_bgp(self) -> BGPProject:
        """Enable BGP for the project if needed and return the project's BGP facts."""

    def ensure_bgp_session(self, server: Server) -> BGPNeighbor:
        """Make sure the server has an IPv6 BGP session and return its neighbour facts."""

    def ensure_bgp_sessions(self, servers: Sequence[Server]) -> dict[str, BGPNeighbor]:
        """ensure_bgp_session for many servers at once; neighbour facts by hostname."""

    def find_block(self) -> IPv6Network:
        """The IPv6 block the cluster may announce (a /56 on Packet)."""

    def find_taken_subnets(self) -> list[IPv6Network]:
        """The pod and service subnets other v6kube clusters use in the same project / location."""

    def record_subnets(self, servers: Sequence[Server], subnets: Sequence[IPv6Network]) -> None:
        """Record the cluster's pod and service subnets where other clusters' runs read them
        (find_taken_subnets). Safe to repeat."""

    def delete_servers(self, servers: Sequence[Server]) -> None:
        """Delete servers (a Server built from only an id and a hostname is enough); gone = success."""

    def delete_cluster_resources(self) -> None:
        """After delete_servers: delete what else the cluster owns at the provider (phoenixNAP: its
        public network and IPv6 blocks; Packet and static: nothing). Safe to repeat."""


def run_parallel(work: Callable[[Any], T], items: Sequence[Any], max_workers: int = 16,
                 name: str = "provider") -> list[T]:
    """work(item) for every item, concurrently; every item finishes, then the first failure is raised."""
    if len(items) == 1:
        return [work(items[0])]
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items)), thread_name_prefix=name) as pool:
        futures = [pool.submit(work, item) for item in items]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        if len(errors) > 1:
            console.warn(f"{len(errors)} of {len(items)} operations failed; the first error follows")
        raise errors[0]
    return [f.result() for f in futures]
