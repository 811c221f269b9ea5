"""Metal devices as data: ownership tags, the cloud-init that pins a host key, Device -> Server.

Ownership: a device belongs to the cluster when it carries the tag `v6kube-cluster:<name>` (plus
`v6kube` and `v6kube-role:<role>`). The cluster's pod and service subnets ride along as
`v6kube-subnet:<cidr>` tags, so another cluster in the same project can avoid them. The API
declares tags as free strings; cluster-api-provider-packet uses the same `prefix:value` shape.
Nothing here calls the API.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Any, Iterable, Iterator, Mapping

from v6kube.errors import ProviderError, UsageError
from v6kube.providers.base import CONTROL_PLANE, WORKER, Server
from v6kube.providers.hostkeys import userdata_host_key

MD5_RULE = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)[a-zA-Z\d]{10,20}$")
OWNER_TAG = "v6kube"
CLUSTER_PREFIX = "v6kube-cluster:"
SUBNET_PREFIX = "v6kube-subnet:"
GONE_STATES = frozenset({"deprovisioning", "deleted"})
PENDING_STATES = frozenset({"queued", "provisioning", "reinstalling", "powering_on"})


def cluster_tag(cluster_name: str) -> str:
    return f"{CLUSTER_PREFIX}{cluster_name}"


def role_tag(role: str) -> str:
    return f"v6kube-role:{role}"


def subnet_tag(subnet: IPv6Network) -> str:
    return f"{SUBNET_PREFIX}{subnet}"


def subnets_of(tags: Iterable[str]) -> list[IPv6Network]:
    """The subnets a device's tags record (tags that do not parse are someone else's: skipped)."""
    found = []
    for tag in tags:
        if isinstance(tag, str) and tag.startswith(SUBNET_PREFIX):
            try:
                found.append(IPv6Network(tag[len(SUBNET_PREFIX):]))
            except ValueError:
                continue
    return found


def validate_md5_password(value: str, variable: str) -> None:
    """The API's own rule for the BGP MD5 password, checked before any call (the value is never shown)."""
    if not MD5_RULE.match(value):
        raise UsageError(
            f"the BGP password in {variable} does not meet the Metal API's rule",
            hint="10 to 20 letters and digits, no punctuation, with at least one lower-case letter, "
            "one upper-case letter and one digit",
        )


def management_address(device: Mapping[str, Any], family: int) -> Mapping[str, Any] | None:
    for entry in device.get("ip_addresses") or []:
        if entry.get("address_family") == family and entry.get("public") and entry.get("management"):
            return entry
    return None


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """Data the API should not have sent is a provider error naming the call, not a crash."""
    try:
        yield
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ProviderError(f"unexpected answer from the Metal API for {what}: {detail}",
                            hint="run the command again; if it persists, report it with --debug output") from None


def server_from_device(device: Mapping[str, Any], host_public_key: str | None = None) -> Server:
    name = device.get("hostname") or "?"
    with reading(f"{name} (device {device.get('id')})"):
        tags = device.get("tags") or []
        role = CONTROL_PLANE if role_tag(CONTROL_PLANE) in tags else WORKER
        v6 = management_address(device, 6)
        v4 = management_address(device, 4)
        return Server(
            id=device["id"],
            hostname=device.get("hostname") or "",
            role=role,
            state=device.get("state") or "unknown",
            ipv6=IPv6Address(v6["address"]) if v6 and v6.get("address") else None,
            ipv6_gateway=IPv6Address(v6["gateway"]) if v6 and v6.get("gateway") else None,
            ipv6_prefixlen=v6.get("cidr") if v6 else None,
            ipv4_public=IPv4Address(v4["address"]) if v4 and v4.get("address") else None,
            host_public_key=host_public_key or userdata_host_key(device.get("userdata")),
        )


def v6(value: str) -> IPv6Address:
    # The API may zero-pad ("fc00:0000:...:000e"); ipaddress normalises it.
    return IPv6Address(value.strip())


def v6_routes(entries: Iterable[Mapping[str, Any]]) -> tuple[IPv6Network, ...]:
    routes = []
    for route in entries:
        network = ipaddress.ip_network(route.get("route", ""), strict=False)
        if network.version == 6:
            routes.append(network)
    return tuple(routes)
