"""Values in the cluster file: IPv6 addresses and prefixes (which kinds each field accepts),
names, versions and the limits they keep. Each parser raises ValueError (a FieldProblem with a
hint) whose message becomes the field's problem; config.py builds the models from them."""

from __future__ import annotations

import re
import uuid
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from v6kube import addressing, config_messages
from v6kube.errors import Problem

MIN_MINOR = 31  # kubeadm v1beta4 needs Kubernetes 1.31 or newer
MAX_MINOR = 37  # the newest minor we render and test for
DEFAULT_RESOLVERS = ("2001:4860:4860::8888", "2001:4860:4860::8844")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
K8S_VERSION = re.compile(r"1\.(0|[1-9][0-9]*)")  # a minor, no leading zeros: "1.031" is not 1.31
GLOBAL_UNICAST = IPv6Network("2000::/3")
UNIQUE_LOCAL = IPv6Network("fc00::/7")
MULTICAST = IPv6Network("ff00::/8")
LINK_LOCAL = IPv6Network("fe80::/10")
BLOCK_PREFIX_MIN = 40  # a cluster block is a /40 or smaller: a /32 is an ISP's allocation
BLOCK_PREFIX_MAX = 112  # ... and a /112 or larger: it must hold the pod and service subnets
MAX_TIMEOUT = 86400.0  # seconds: a day
MAX_NODES = 5000  # the most Kubernetes supports in one cluster
# Keys that would hold a secret; secrets come from the environment, never from the file.
SECRET_KEYS = re.compile(r"(^|_)(token|password|passwd|secret|md5|api_key|apikey|auth)$", re.I)


# --- value parsers: a ValueError message becomes the problem's text -------------------------


class FieldProblem(ValueError):
    """A field's value is wrong, with a hint on how to fix it (pydantic keeps the exception)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def _show(value: Any) -> str:
    return config_messages.show(value)


def _raise_first(problems: list[Problem]) -> None:
    if problems:
        raise FieldProblem(problems[0].message, problems[0].hint)


def parse_ipv6_address(value: Any) -> IPv6Address:
    if isinstance(value, IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an IPv6 address as a quoted string, got {_show(value)}")
    try:
        parsed = ip_address(value.strip().strip("[]"))
    except ValueError:
        raise ValueError(f"{_show(value)} is not an IPv6 address") from None
    if isinstance(parsed, IPv4Address):
        raise ValueError(f"{_show(value)} is IPv4; an IPv6 address is required here")
    return parsed


def parse_ipv6_network(value: Any) -> IPv6Network:
    if isinstance(value, IPv6Network):
        return value
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"expected an IPv6 prefix such as \"2001:db8::/64\", got {_show(value)}")
    try:
        net = ip_network(value.strip(), strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ip_network(value.strip(), strict=False)
            raise ValueError(f"{_show(value)} has host bits set; did you mean {str(fixed)!r}?") from None
        raise ValueError(f"{_show(value)} is not an IPv6 prefix") from None
    if net.version != 6:
        raise ValueError(f"{_show(value)} is IPv4; an IPv6 prefix is required here")
    return net


def _dns_label(value: Any) -> str:
    if not isinstance(value, str) or not DNS_LABEL.fullmatch(value):  # not match: "$" allows a final "\n"
        raise ValueError(
            f"{_show(value)} is not a DNS label (lower-case letters, digits and '-', at most 63, "
            "no underscores, no leading or trailing '-')"
        )
    return value


def _kind(address: IPv6Address) -> str:
    """What an address that is neither global unicast nor a ULA is, in words."""
    if address.ipv4_mapped is not None:
        return f"the IPv4-mapped form of {address.ipv4_mapped}"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "the loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address"
    return "not a global unicast address"


def _routable(address: IPv6Address) -> bool:
    return address in GLOBAL_UNICAST or address in UNIQUE_LOCAL


def parse_resolver(address: IPv6Address) -> IPv6Address:
    """A DNS resolver the nodes send queries to: global unicast (2000::/3) or a ULA (fc00::/7)."""
    if _routable(address):
        return address
    raise FieldProblem(f"{address} is {_kind(address)}",
                       "a resolver must be a global unicast IPv6 address the nodes can reach; a ULA (fc00::/7) is fine")


def parse_server_address(address: IPv6Address) -> IPv6Address:
    if _routable(address):
        return address
    raise FieldProblem(f"{address} is {_kind(address)}",
                       "a server's address is global unicast (2000::/3), or a ULA (fc00::/7) in a lab")


def parse_gateway(address: IPv6Address) -> IPv6Address:
    if _routable(address) or (address.is_link_local and not address.is_multicast):
        return address
    raise FieldProblem(f"{address} is {_kind(address)}",
                       "a gateway is a global unicast, ULA or link-local (fe80::/10) address on the server's link")


def parse_peer(address: IPv6Address) -> IPv6Address:
    if _routable(address):
        return address
    raise FieldProblem(f"{address} is {_kind(address)}",
                       "a BGP peer is the router's global unicast or ULA address")


def _routable_network(net: IPv6Network) -> IPv6Network:
    """A prefix the cluster announces or uses: global unicast, or a ULA (fc00::/7) for labs."""
    if net.subnet_of(GLOBAL_UNICAST) or net.subnet_of(UNIQUE_LOCAL):
        return net
    if net.prefixlen < 7:
        raise FieldProblem(f"{net} is far too large", "name the cluster's own prefix, e.g. \"2001:db8:0:2a00::/56\"")
    kind = ("a multicast prefix" if net.subnet_of(MULTICAST) else "a link-local prefix" if net.subnet_of(LINK_LOCAL)
            else "not a global unicast prefix")
    raise FieldProblem(f"{net} is {kind}",
                       "use a global unicast prefix (2000::/3), or a ULA (fc00::/7) in a lab")


def check_block(net: IPv6Network, *, ula: bool = True, longest: int = BLOCK_PREFIX_MAX) -> IPv6Network:
    """The announced block: routable, and a size a cluster can use (a /32 or a /7 is not one).
    Raises FieldProblem. `ula`: a ULA is accepted (static labs); `longest`: the longest prefix."""
    if not ula and net.subnet_of(UNIQUE_LOCAL):
        raise FieldProblem(f"{net} is a ULA (fc00::/7), not a global prefix",
                           "pass the project's global IPv6 block, e.g. its /56")
    _routable_network(net)
    if net.prefixlen < BLOCK_PREFIX_MIN:
        raise FieldProblem(f"{net} is too large for a cluster block (at most a /{BLOCK_PREFIX_MIN})",
                           "name the prefix routed to the cluster, typically a /48 to a /64")
    if net.prefixlen > longest:
        raise FieldProblem(f"{net} is too small for a cluster block (at least a /{longest})",
                           "the block must hold the pod and service subnets")
    return net


def check_static_block(net: IPv6Network) -> IPv6Network:
    return check_block(net)


def parse_project_id(value: Any) -> str:
    if isinstance(value, str):
        try:
            if str(uuid.UUID(value)) == value.lower():
                return value
        except ValueError:
            pass
    raise FieldProblem(f"{config_messages.show(value)} is not a project UUID",
                       "the project's UUID, e.g. \"0c6a1d3e-2b4f-4d8a-9c71-5e3f2a1b7c90\" (the Metal console shows it)")


def parse_kubernetes_version(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise FieldProblem(f"{_show(value)} is a number, not a version (YAML reads an unquoted 1.30 as 1.3)",
                           'quote it, e.g. "1.33"')
    if not isinstance(value, str) or not K8S_VERSION.fullmatch(value):
        raise FieldProblem(f"{_show(value)} is not a Kubernetes minor version",
                           'write 1.<minor> without leading zeros or a patch number, e.g. "1.33"')
    minor = int(value.split(".")[1])
    if not MIN_MINOR <= minor <= MAX_MINOR:
        raise FieldProblem(f"Kubernetes {value} is not supported: v6kube renders kubeadm v1beta4, "
                           f"which needs 1.{MIN_MINOR} or newer (supported: 1.{MIN_MINOR} to 1.{MAX_MINOR})")
    return value


def check_pod_subnet(value: IPv6Network | str) -> IPv6Network | str:
    if value != "auto":
        _raise_first(addressing.check_pod_size(value))
    return value


def check_service_subnet(value: IPv6Network | str) -> IPv6Network | str:
    if value != "auto":
        _raise_first(addressing.check_service_size(value))
    return value


V6Address = Annotated[IPv6Address, BeforeValidator(parse_ipv6_address)]
V6Network = Annotated[IPv6Network, BeforeValidator(parse_ipv6_network)]
RoutableNetwork = Annotated[V6Network, AfterValidator(_routable_network)]
DNSLabel = Annotated[str, BeforeValidator(_dns_label)]
