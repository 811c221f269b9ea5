"""The cluster file: one YAML format for every provider, validated field by field.

`load_cluster()` reports every problem at once (ConfigError, exit 2) and never touches the network.
Structure and per-field checks come from the pydantic models. Checks across fields (duplicates,
roles, addressing) run even when some fields are invalid: on the fields that are valid, so one run
lists every problem.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from v6kube import addressing
from v6kube.errors import ConfigError, Problem

MIN_MINOR = 31  # kubeadm v1beta4 needs Kubernetes 1.31 or newer
MAX_MINOR = 37  # the newest minor we render and test for
DEFAULT_RESOLVERS = ("2001:4860:4860::8888", "2001:4860:4860::8844")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
K8S_VERSION = re.compile(r"1\.(0|[1-9][0-9]*)")  # a minor, no leading zeros: "1.031" is not 1.31
GLOBAL_UNICAST = IPv6Network("2000::/3")
UNIQUE_LOCAL = IPv6Network("fc00::/7")
# Keys that would hold a secret; secrets come from the environment, never from the file.
SECRET_KEYS = re.compile(r"(^|_)(token|password|passwd|secret|md5|api_key|apikey|auth)$", re.I)


# --- value parsers: a ValueError message becomes the problem's text -------------------------


class FieldProblem(ValueError):
    """A field's value is wrong, with a hint on how to fix it (pydantic keeps the exception)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def _raise_first(problems: list[Problem]) -> None:
    if problems:
        raise FieldProblem(problems[0].message, problems[0].hint)


def parse_ipv6_address(value: Any) -> IPv6Address:
    if isinstance(value, IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an IPv6 address as a quoted string, got {value!r}")
    try:
        parsed = ip_address(value.strip().strip("[]"))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv6 address") from None
    if isinstance(parsed, IPv4Address):
        raise ValueError(f"{value!r} is IPv4; an IPv6 address is required here")
    return parsed


def parse_ipv6_network(value: Any) -> IPv6Network:
    if isinstance(value, IPv6Network):
        return value
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"expected an IPv6 prefix such as \"2001:db8::/64\", got {value!r}")
    try:
        net = ip_network(value.strip(), strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ip_network(value.strip(), strict=False)
            raise ValueError(f"{value!r} has host bits set; did you mean {str(fixed)!r}?") from None
        raise ValueError(f"{value!r} is not an IPv6 prefix") from None
    if net.version != 6:
        raise ValueError(f"{value!r} is IPv4; an IPv6 prefix is required here")
    return net


def _dns_label(value: Any) -> str:
    if not isinstance(value, str) or not DNS_LABEL.fullmatch(value):  # not match: "$" allows a final "\n"
        raise ValueError(
            f"{value!r} is not a DNS label (lower-case letters, digits and '-', at most 63, "
            "no underscores, no leading or trailing '-')"
        )
    return value


def _resolver(address: IPv6Address) -> IPv6Address:
    """A DNS resolver the nodes send queries to: global unicast (2000::/3) or a ULA (fc00::/7)."""
    if address in GLOBAL_UNICAST or address in UNIQUE_LOCAL:
        return address
    if address.ipv4_mapped is not None:
        kind = f"the IPv4-mapped form of {address.ipv4_mapped}"
    elif address.is_unspecified:
        kind = "the unspecified address"
    elif address.is_loopback:
        kind = "the loopback address"
    elif address.is_multicast:
        kind = "a multicast address"
    elif address.is_link_local:
        kind = "a link-local address"
    else:
        kind = "not a global unicast address"
    raise FieldProblem(f"{address} is {kind}",
                       "a resolver must be a global unicast IPv6 address the nodes can reach; a ULA (fc00::/7) is fine")


def _kubernetes_version(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise FieldProblem(f"{value!r} is a number, not a version (YAML reads an unquoted 1.30 as 1.3)",
                           'quote it, e.g. "1.33"')
    if not isinstance(value, str) or not K8S_VERSION.fullmatch(value):
        raise FieldProblem(f"{value!r} is not a Kubernetes minor version",
                           'write 1.<minor> without leading zeros or a patch number, e.g. "1.33"')
    minor = int(value.split(".")[1])
    if not MIN_MINOR <= minor <= MAX_MINOR:
        raise FieldProblem(f"Kubernetes {value} is not supported: v6kube renders kubeadm v1beta4, "
                           f"which needs 1.{MIN_MINOR} or newer (supported: 1.{MIN_MINOR} to 1.{MAX_MINOR})")
    return value


def _pod_subnet(value: IPv6Network | str) -> IPv6Network | str:
    if value != "auto":
        _raise_first(addressing.check_pod_size(value))
    return value


def _service_subnet(value: IPv6Network | str) -> IPv6Network | str:
    if value != "auto":
        _raise_first(addressing.check_service_size(value))
    return value


V6Address = Annotated[IPv6Address, BeforeValidator(parse_ipv6_address)]
V6Network = Annotated[IPv6Network, BeforeValidator(parse_ipv6_network)]
DNSLabel = Annotated[str, BeforeValidator(_dns_label)]
ASN = Annotated[int, Field(ge=1, le=4294967294, strict=True)]
AutoOrNetwork = Union[Literal["auto"], V6Network]
Resolver = Annotated[V6Address, AfterValidator(_resolver)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- providers ------------------------------------------------------------------------------


class PacketProvider(Model):
    """Packet / Equinix Metal. The API token comes only from METAL_AUTH_TOKEN or PACKET_AUTH_TOKEN."""

    type: Literal["packet"]
    project: Annotated[str, Field(min_length=1)]
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
    block: V6Network  # the prefix the router accepts from the cluster
    local_asn: ASN = 65000
    peer_asn: ASN = 65530
    peers: Annotated[list[V6Address], Field(min_length=1)]
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
    address: V6Address | None = None  # static only: the server's IPv6 address
    prefix_length: Annotated[int, Field(ge=1, le=128)] = 64  # static only: its on-link prefix
    gateway: V6Address | None = None  # static only: its IPv6 default gateway
    public_ipv4: IPv4Address | None = None  # static only: used with ssh.address_family ipv4/auto
    host_key: Annotated[str, Field(pattern=r"^(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/=]+")] | None = None


class SSH(Model):
    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]*$")] = "root"
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    private_key: str | None = "~/.ssh/id_ed25519"  # None: use the SSH agent
    address_family: Literal["auto", "ipv6", "ipv4"] = "auto"
    trust_on_first_use: bool = False
    connect_timeout: Annotated[float, Field(gt=0)] = 900.0  # deadline for a booting server to answer
    command_timeout: Annotated[float, Field(gt=0)] = 1800.0


class Kubernetes(Model):
    # Validators live in the annotations (not in @field_validator) so that one field can be
    # validated alone: see _salvage().
    version: Annotated[str, BeforeValidator(_kubernetes_version)] = "1.33"
    pod_subnet: Annotated[AutoOrNetwork, AfterValidator(_pod_subnet)] = "auto"
    service_subnet: Annotated[AutoOrNetwork, AfterValidator(_service_subnet)] = "auto"
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
    service_external_ips: list[V6Network] = Field(default_factory=list)
    service_loadbalancer_ips: list[V6Network] = Field(default_factory=list)


class Cluster(Model):
    name: DNSLabel
    provider: ProviderConfig
    nodes: Annotated[list[Node], Field(min_length=1)]
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
    """Read, parse and validate a cluster file. Raises ConfigError with every problem found."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [Problem("(file)", f"cannot read the cluster file: {exc.strerror}")]) from None
    return parse_cluster(text, source)


def parse_cluster(text: str, source: str = "<cluster>") -> Cluster:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(source, [Problem(where, f"YAML syntax: {problem}",
                                           "quote IPv6 literals, e.g. \"2001:db8::1\"")]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, [Problem("(file)", "the cluster file must be a YAML mapping")])

    problems = _secret_keys(raw, "")
    raw = _without_secret_keys(raw)
    try:
        cluster = Cluster.model_validate(raw)
    except ValidationError as exc:
        invalid = _problems_from(exc, raw)
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
                problems.append(Problem(f"nodes[{i}].name", f"duplicate node name {node.name!r} (also nodes[{seen_names[node.name]}])"))
            seen_names.setdefault(node.name, i)
        if node.address is not None:
            if node.address in seen_addresses:
                problems.append(Problem(f"nodes[{i}].address",
                                        f"duplicate address {node.address} (also nodes[{seen_addresses[node.address]}])"))
            seen_addresses.setdefault(node.address, i)
        if is_static:
            for key in ("address", "gateway"):
                if getattr(node, key) is None:
                    problems.append(Problem(f"nodes[{i}].{key}", "required with provider static",
                                            "the server's IPv6 address and its default gateway"))
            if None not in (node.address, node.gateway, node.prefix_length):
                lan = IPv6Network((node.address, node.prefix_length), strict=False)
                if node.gateway not in lan:
                    problems.append(Problem(f"nodes[{i}].gateway",
                                            f"{node.gateway} is not on the node's link {lan}"))
        elif provider is not None:
            for key in ("address", "gateway", "public_ipv4"):
                if getattr(node, key) is not None:
                    problems.append(Problem(f"nodes[{i}].{key}", "not allowed with provider packet",
                                            "the Packet API assigns addresses; remove this key"))
    if is_static:
        if provider.local_asn is not None and provider.local_asn == provider.peer_asn:
            problems.append(Problem("provider.peer_asn", "equals local_asn; the upstream router must be an eBGP peer"))
        seen_peers: dict[IPv6Address, int] = {}
        for i, peer in enumerate(provider.peers or []):
            if peer in seen_peers:
                problems.append(Problem(f"provider.peers[{i}]", f"duplicate peer {peer} (also provider.peers[{seen_peers[peer]}])",
                                        "list each BGP peer address once"))
            seen_peers.setdefault(peer, i)
    problems += addressing.check_cluster_addressing(cluster)
    return problems


# --- an invalid file's valid parts, for the checks across fields ----------------------------


def _salvage_cluster(raw: dict) -> Cluster:
    """The cluster file with every invalid value replaced by None (not validated as a whole)."""
    provider_model = _provider_model(raw)
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


def _problems_from(exc: ValidationError, raw: dict) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = _clean_loc(err["loc"])
        path = _format_loc(loc)
        message = err["msg"].removeprefix("Value error, ")
        hint = getattr(err.get("ctx", {}).get("error"), "hint", None)  # a FieldProblem's hint
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            message = f"unknown key {key!r}"
            other = _other_provider(loc, raw)
            choices = _fields_at(loc[:-1], raw)
            close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
            if other and key in PROVIDERS[other].model_fields:
                message = f"{key!r} is only valid with provider type {other}"
                hint = "remove it, or change provider.type"
            elif close:
                hint = f"did you mean {close[0]!r}?"
            elif choices:
                hint = f"known keys: {', '.join(sorted(choices))}"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
            message = "provider.type must be 'packet', 'static' or 'phoenixnap'"
        elif err["type"] == "literal_error":
            message = message.replace("Input should be", "must be")
        problems.append(Problem(path, message, hint))
    return problems


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union branch names (provider.static.peers -> provider.peers)."""
    out: list = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] == "provider" and part in PROVIDERS:
            continue
        if isinstance(part, str) and (part.startswith("function-") or part in ("literal['auto']", "lax-or-strict")):
            continue
        out.append(part)
    return tuple(out)


def _format_loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(file)"


def _provider_model(raw: dict) -> type[Model] | None:
    """The model of the provider type the file names, if it names a known one."""
    provider = raw.get("provider")
    kind = provider.get("type") if isinstance(provider, dict) else None
    return PROVIDERS.get(kind) if isinstance(kind, str) else None


def _other_provider(loc: tuple, raw: dict) -> str | None:
    """For a key directly under `provider`: the provider type that is not the chosen one."""
    chosen = _provider_model(raw)
    if len(loc) != 2 or loc[0] != "provider" or chosen is None:
        return None
    return next(name for name, model in PROVIDERS.items() if model is not chosen)


def _fields_at(loc: tuple, raw: dict) -> list[str]:
    """The keys a mapping at `loc` may hold (for 'did you mean'); under provider, those of its type."""
    model: Any = Cluster
    for part in loc:
        if isinstance(part, int):
            continue
        if model is Cluster and part == "provider":
            model = _provider_model(raw)
            if model is None:
                return []
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))
