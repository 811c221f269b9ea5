"""The cluster file: one YAML format for every provider, validated field by field.

`load_cluster()` reports every problem at once (ConfigError, exit 2) and never touches the network.
Structure and per-field checks come from the pydantic models. Checks across fields (duplicates,
roles, addressing) run even when some fields are invalid: on the fields that are valid, so one run
lists every problem.
"""

from __future__ import annotations

import os
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from v6kube import addressing, config_messages, yamlfile
from v6kube.config_values import (
    check_pod_subnet,
    check_service_subnet,
    check_static_block,
    DEFAULT_RESOLVERS,
    DNSLabel,
    ENV_NAME,
    MAX_NODES,
    MAX_TIMEOUT,
    parse_gateway,
    parse_kubernetes_version,
    parse_peer,
    parse_project_id,
    parse_resolver,
    parse_server_address,
    RoutableNetwork,
    SECRET_KEYS,
    V6Address,
    V6Network,
)
from v6kube.errors import ConfigError, Problem

ASN = Annotated[int, Field(ge=1, le=4294967294, strict=True)]
AutoOrNetwork = Union[Literal["auto"], RoutableNetwork]
Resolver = Annotated[V6Address, AfterValidator(parse_resolver)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- providers ------------------------------------------------------------------------------


class PacketProvider(Model):
    """Packet / Equinix Metal. The API token comes only from METAL_AUTH_TOKEN or PACKET_AUTH_TOKEN."""

    type: Literal["packet"]
    project: Annotated[str, BeforeValidator(parse_project_id)]
    metro: Annotated[str, Field(pattern=r"^[a-z]{2}$")] = "da"
    plan: Annotated[str, Field(min_length=1)] = "c3.small.x86"
    operating_system: Literal["ubuntu_22_04", "ubuntu_24_04", "debian_12"] = "ubuntu_24_04"
    billing_cycle: Literal["hourly", "daily", "monthly", "yearly"] = "hourly"
    api_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    # Name of the environment variable holding the BGP MD5 password used when v6kube enables BGP.
    bgp_password_env: Annotated[str, Field(pattern=ENV_NAME.pattern)] | None = None
    # A public IPv4 per server, only so that SSH works from machines without IPv6 (the cluster
    # itself is IPv6-only); false asks for none.
    public_ipv4: bool = True


class StaticProvider(Model):
    """Servers you already own, behind a router that speaks BGP."""

    type: Literal["static"]
    block: Annotated[V6Network, AfterValidator(check_static_block)]  # the prefix the router accepts from the cluster
    local_asn: ASN = 65000
    peer_asn: ASN = 65530
    peers: Annotated[list[Annotated[V6Address, AfterValidator(parse_peer)]], Field(min_length=1, max_length=16)]
    multihop: bool = True
    max_prefix: Annotated[int, Field(ge=1, le=100000)] = 10
    bgp_password_env: Annotated[str, Field(pattern=ENV_NAME.pattern)] | None = None


class PhoenixnapProvider(Model):
    """phoenixNAP Bare Metal Cloud. Credentials come only from PNAP_CLIENT_ID / PNAP_CLIENT_SECRET."""

    type: Literal["phoenixnap"]
    location: Literal["PHX", "ASH", "SGP", "NLD", "CHI", "SEA", "AUS"] = "PHX"
    server_type: Annotated[str, Field(pattern=r"^[a-z0-9]+\.[a-z0-9]+\.[a-z0-9]+$")] = "s1.c1.medium"
    os: Annotated[str, Field(pattern=r"^[a-z]+/[a-z0-9+]+$")] = "ubuntu/noble"
    pricing_model: Literal["HOURLY", "ONE_MONTH_RESERVATION", "TWELVE_MONTHS_RESERVATION"] = "HOURLY"
    asn: ASN = 65401  # the cluster's (tenant) ASN in the location's BGP peer group
    # Name of the environment variable holding the peer group's password (8..32 characters);
    # without it a new peer group gets a generated one (the API returns it).
    bgp_password_env: Annotated[str, Field(pattern=ENV_NAME.pattern)] | None = None
    loadbalancer_block: bool = False  # one more /64 for LoadBalancer addresses
    api_url: Annotated[str, Field(pattern=r"^https?://")] | None = None  # root of bmc/v1, networks/v1, ips/v1


ProviderConfig = Annotated[Union[PacketProvider, StaticProvider, PhoenixnapProvider], Field(discriminator="type")]
PROVIDERS: dict[str, type[Model]] = {"packet": PacketProvider, "static": StaticProvider,
                                     "phoenixnap": PhoenixnapProvider}


# --- the rest of the cluster ----------------------------------------------------------------


class Node(Model):
    name: DNSLabel
    role: Literal["control-plane", "worker"]
    address: Annotated[V6Address, AfterValidator(parse_server_address)] | None = None  # static only: the server's IPv6 address
    prefix_length: Annotated[int, Field(ge=32, le=128, strict=True)] = 64  # static only: its on-link prefix
    gateway: Annotated[V6Address, AfterValidator(parse_gateway)] | None = None  # static only: its IPv6 default gateway
    public_ipv4: IPv4Address | None = None  # static only: used with ssh.address_family ipv4/auto
    host_key: Annotated[str, Field(pattern=r"^(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/=]+")] | None = None


class SSH(Model):
    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]*$")] = "root"
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    private_key: str | None = "~/.ssh/id_ed25519"  # None: use the SSH agent
    address_family: Literal["auto", "ipv6", "ipv4"] = "auto"
    trust_on_first_use: bool = False
    connect_timeout: Annotated[float, Field(gt=0, le=MAX_TIMEOUT)] = 900.0  # deadline for a booting server to answer
    command_timeout: Annotated[float, Field(gt=0, le=MAX_TIMEOUT)] = 1800.0


class Kubernetes(Model):
    # Validators live in the annotations (not in @field_validator) so that one field can be
    # validated alone: see _salvage().
    version: Annotated[str, BeforeValidator(parse_kubernetes_version)] = "1.33"
    pod_subnet: Annotated[AutoOrNetwork, AfterValidator(check_pod_subnet)] = "auto"
    service_subnet: Annotated[AutoOrNetwork, AfterValidator(check_service_subnet)] = "auto"
    dns_resolvers: Annotated[list[Resolver], Field(min_length=1, max_length=3)] = Field(
        default_factory=lambda: [IPv6Address(a) for a in DEFAULT_RESOLVERS]
    )

    @property
    def minor(self) -> int:
        return int(self.version.split(".")[1])


class Calico(Model):
    version: Annotated[str, Field(pattern=r"^3\.\d+\.\d+$")] = "3.30.3"
    block_size: Annotated[int, Field(ge=116, le=128, strict=True)] = 122


class Announce(Model):
    service_cluster_ips: bool = True
    service_external_ips: Annotated[list[RoutableNetwork], Field(max_length=64)] = Field(default_factory=list)
    service_loadbalancer_ips: Annotated[list[RoutableNetwork], Field(max_length=64)] = Field(default_factory=list)


class Cluster(Model):
    name: DNSLabel
    provider: ProviderConfig
    nodes: Annotated[list[Node], Field(min_length=1, max_length=MAX_NODES)]
    ssh: SSH = Field(default_factory=SSH)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)
    calico: Calico = Field(default_factory=Calico)
    announce: Announce = Field(default_factory=Announce)

    @property
    def control_plane(self) -> Node:
        return next(n for n in self.nodes if n.role == "control-plane")

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "worker"]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


# --- loading and reporting ------------------------------------------------------------------


def load_cluster(path: str | os.PathLike[str]) -> Cluster:
    """Read, parse and validate a cluster file (`-` is stdin). Raises ConfigError with every problem
    found; a file that is too large, not UTF-8, not a file or hostile YAML is one such problem."""
    source = yamlfile.source_name(path)
    return parse_cluster(yamlfile.decode(yamlfile.read_bytes(path), source), source)


def parse_cluster(text: str, source: str = "<cluster>") -> Cluster:
    raw = yamlfile.load_yaml(text, source)
    if not isinstance(raw, dict):
        raise ConfigError(source, [Problem("(file)", f"the cluster file must be a YAML mapping, not {config_messages.show(raw)}",
                                           "start from examples/minimal.yaml: name:, provider: and nodes: at the top")])

    problems = _secret_keys(raw, "")
    raw = _without_secret_keys(raw)
    try:
        cluster = Cluster.model_validate(raw)
    except ValidationError as exc:
        invalid = config_messages.problems_from(exc, raw, Cluster, PROVIDERS)
        # The checks across fields still run, on the fields that are valid. A field reported as
        # invalid is None for them; it is not reported a second time (say, as missing).
        paths = {p.path for p in invalid}
        across = [p for p in check_cluster(_salvage_cluster(raw)) if p.path not in paths]
        raise ConfigError(source, problems + invalid + across) from None
    problems += check_cluster(cluster)
    if problems:
        raise ConfigError(source, problems)
    return cluster


def check_cluster(cluster: Cluster) -> list[Problem]:
    """Checks across fields. `cluster` may be salvaged from an invalid file (see _salvage): a None
    node or value is invalid and already reported, so the checks that need it are skipped."""
    problems: list[Problem] = []
    nodes = [(i, n) for i, n in enumerate(cluster.nodes) if n is not None]
    roles = [n.role if n is not None else None for n in cluster.nodes]
    if roles and None not in roles and roles.count("control-plane") != 1:  # every role known
        problems.append(Problem("nodes", f"exactly one node must have role control-plane, found {roles.count('control-plane')}",
                                "v6kube builds a single control-plane cluster"))
    seen_names: dict[str, int] = {}
    seen_addresses: dict[IPv6Address, int] = {}
    provider = cluster.provider
    is_static = isinstance(provider, StaticProvider)
    for i, node in nodes:
        if node.name is not None:
            if node.name in seen_names:
                problems.append(Problem(f"nodes[{i}].name", f"duplicate node name {node.name!r} (also nodes[{seen_names[node.name]}])",
                                        "give every node its own name"))
            seen_names.setdefault(node.name, i)
        if node.address is not None:
            if node.address in seen_addresses:
                problems.append(Problem(f"nodes[{i}].address",
                                        f"duplicate address {node.address} (also nodes[{seen_addresses[node.address]}])",
                                        "every server has its own address"))
            seen_addresses.setdefault(node.address, i)
        if is_static:
            for key in ("address", "gateway"):
                if getattr(node, key) is None:
                    problems.append(Problem(f"nodes[{i}].{key}", "required with provider static",
                                            "the server's IPv6 address and its default gateway"))
            problems += _off_link(i, node, nodes)
        elif provider is not None:
            for key in ("address", "gateway", "public_ipv4"):
                if getattr(node, key) is not None:
                    problems.append(Problem(f"nodes[{i}].{key}", f"not allowed with provider {provider.type}",
                                            "the Packet API assigns addresses; remove this key"))
    if is_static:
        if provider.local_asn is not None and provider.local_asn == provider.peer_asn:
            problems.append(Problem("provider.peer_asn", "equals local_asn; the upstream router must be an eBGP peer",
                                    "give the cluster its own AS number in provider.local_asn, e.g. 65000"))
        seen_peers: dict[IPv6Address, int] = {}
        for i, peer in enumerate(provider.peers or []):
            if peer in seen_peers:
                problems.append(Problem(f"provider.peers[{i}]", f"duplicate peer {peer} (also provider.peers[{seen_peers[peer]}])",
                                        "list each BGP peer address once"))
            seen_peers.setdefault(peer, i)
    problems += addressing.check_cluster_addressing(cluster)
    return problems


def _off_link(i: int, node: Node, nodes: list[tuple[int, Node]]) -> list[Problem]:
    """A gateway must be on the node's link. Which field is wrong: when another node uses the same
    gateway on its own link, this node's address (or prefix_length) is; otherwise the gateway."""
    if None in (node.address, node.gateway, node.prefix_length) or node.gateway.is_link_local:
        return []  # a link-local gateway (fe80::1) is on every link
    if node.gateway in _link(node):
        return []
    for j, other in nodes:
        if other is not node and other.gateway == node.gateway and None not in (other.address, other.prefix_length) \
                and node.gateway in _link(other):
            return [Problem(f"nodes[{i}].address", f"{node.address}/{node.prefix_length} is not on the link of its "
                            f"gateway {node.gateway} ({_link(other)}, as nodes[{j}] is)",
                            "check the address and prefix_length")]
    return [Problem(f"nodes[{i}].gateway", f"{node.gateway} is not on the node's link {_link(node)}",
                    "the gateway must be inside the node's address/prefix_length, or link-local (fe80::/10)")]


def _link(node: Node) -> IPv6Network:
    return IPv6Network((node.address, node.prefix_length), strict=False)


# --- an invalid file's valid parts, for the checks across fields ----------------------------


def _salvage_cluster(raw: dict) -> Cluster:
    """The cluster file with every invalid value replaced by None (not validated as a whole)."""
    provider_model = config_messages.provider_model(raw, PROVIDERS)
    raw_nodes = raw.get("nodes")
    return Cluster.model_construct(
        name=None,
        provider=_salvage(provider_model, raw["provider"]) if provider_model else None,
        nodes=[_salvage(Node, n) for n in raw_nodes] if isinstance(raw_nodes, list) else [],
        kubernetes=_salvage(Kubernetes, raw.get("kubernetes", {})),
        calico=_salvage(Calico, raw.get("calico", {})),
        announce=_salvage(Announce, raw.get("announce", {})),
    )


def _salvage(model: type[Model], raw: Any) -> Any:
    """`raw` as `model`, each field validated alone: an invalid or missing required one is None,
    a missing optional one takes its default. None when `raw` is not a mapping."""
    if not isinstance(raw, dict):
        return None
    values = {}
    for name, field in model.model_fields.items():
        if name in raw:
            try:
                values[name] = _field_adapter(model, name).validate_python(raw[name])
            except ValidationError:
                values[name] = None
        elif field.is_required():
            values[name] = None
    return model.model_construct(**values)


@lru_cache(maxsize=None)
def _field_adapter(model: type[Model], name: str) -> TypeAdapter:
    field = model.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, field])


def _secret_keys(node: Any, path: str) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and SECRET_KEYS.search(key) and not key.endswith("_env"):
                problems.append(Problem(here, "secrets must not be written in the cluster file",
                                        "set the API token in METAL_AUTH_TOKEN (or PACKET_AUTH_TOKEN) and name "
                                        "the BGP password's environment variable in bgp_password_env"))
            else:
                problems += _secret_keys(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _secret_keys(value, f"{path}[{i}]")
    return problems


def _without_secret_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_secret_keys(v) for k, v in node.items()
                if not (isinstance(k, str) and SECRET_KEYS.search(k) and not k.endswith("_env"))}
    if isinstance(node, list):
        return [_without_secret_keys(v) for v in node]
    return node
