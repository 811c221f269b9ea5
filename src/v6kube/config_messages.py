"""Validation problems in a user's words: pydantic's errors become Problems with a field path, a
message that names the value, and a hint saying what the field holds. No validator jargon ("Input
should be ...", "String should match pattern ...") reaches the user.
"""

from __future__ import annotations

import datetime
import difflib
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from v6kube.errors import Problem

# What each field holds, by its path without list indexes. Every field of every model has one
# (tests/test_config.py checks); it is the hint when a value is wrong.
FIELD_HINTS = {
    "name": "the cluster's name, a DNS label such as seed (a-z, 0-9 and '-', at most 63)",
    "provider": "a mapping with type: packet, static or phoenixnap and that provider's keys (see examples/)",
    "provider.type": "the provider: packet, static or phoenixnap",
    "provider.project": "the Packet project's UUID, e.g. \"0c6a1d3e-2b4f-4d8a-9c71-5e3f2a1b7c90\"",
    "provider.metro": "a two-letter metro code such as da, ny or sv",
    "provider.plan": "a server plan slug such as c3.small.x86",
    "provider.operating_system": "ubuntu_22_04, ubuntu_24_04 or debian_12",
    "provider.billing_cycle": "hourly, daily, monthly or yearly",
    "provider.api_url": "the provider API's base URL, http(s), e.g. \"https://api.equinix.com/metal/v1\"",
    "provider.bgp_password_env": "the NAME of the environment variable holding the BGP password, e.g. V6KUBE_BGP_PASSWORD",
    "provider.public_ipv4": "true or false",
    "provider.block": "the IPv6 prefix the router accepts from the cluster, quoted, e.g. \"2001:db8:0:2a00::/56\"",
    "provider.local_asn": "the cluster's AS number, 1 to 4294967294 (private: 64512 to 65534), e.g. 65000",
    "provider.peer_asn": "the router's AS number, 1 to 4294967294, e.g. 65530",
    "provider.peers": "the router's BGP addresses: a list of quoted IPv6 addresses",
    "provider.multihop": "true or false",
    "provider.max_prefix": "how many prefixes the router accepts from each server, 1 to 100000",
    "provider.location": "phoenixNAP: a location code, PHX, ASH, SGP, NLD, CHI, SEA or AUS",
    "provider.server_type": "phoenixNAP: a server type such as s1.c1.medium",
    "provider.os": "phoenixNAP: an image such as ubuntu/noble or debian/bookworm",
    "provider.pricing_model": "phoenixNAP: HOURLY, ONE_MONTH_RESERVATION or TWELVE_MONTHS_RESERVATION",
    "provider.asn": "phoenixNAP: the cluster's AS number in the location's peer group, e.g. 65401",
    "provider.loadbalancer_block": "phoenixNAP: true or false (one more /64 for LoadBalancer addresses)",
    "nodes": "a list of servers, each with name and role",
    "nodes.name": "the node's name, a DNS label such as worker-0",
    "nodes.role": "control-plane (exactly one node) or worker",
    "nodes.address": "the server's IPv6 address, quoted, e.g. \"2001:db8:0:2a00::3\"",
    "nodes.prefix_length": "the prefix length of the server's link, 32 to 128 (usually 64)",
    "nodes.gateway": "the server's IPv6 default gateway, quoted, e.g. \"2001:db8:0:2a00::1\" or \"fe80::1\"",
    "nodes.public_ipv4": "an IPv4 address for SSH only, e.g. \"203.0.113.10\"",
    "nodes.host_key": "the server's public SSH host key: \"ssh-ed25519 AAAA...\" as in its /etc/ssh/*.pub",
    "ssh": "a mapping with the SSH login settings",
    "ssh.user": "a login name such as root or ubuntu (lower-case letters, digits, '_' and '-')",
    "ssh.port": "a TCP port, 1 to 65535",
    "ssh.private_key": "the path of an SSH private key, e.g. \"~/.ssh/id_ed25519\", or null for the SSH agent",
    "ssh.address_family": "auto, ipv6 or ipv4",
    "ssh.trust_on_first_use": "true or false",
    "ssh.connect_timeout": "seconds, more than 0 and at most 86400",
    "ssh.command_timeout": "seconds, more than 0 and at most 86400",
    "kubernetes": "a mapping with the Kubernetes settings",
    "kubernetes.version": "the Kubernetes minor, quoted, e.g. \"1.33\"",
    "kubernetes.pod_subnet": "auto, or a quoted IPv6 prefix inside the block, e.g. \"2001:db8:0:2a01::/64\"",
    "kubernetes.service_subnet": "auto, or a quoted IPv6 prefix /108 to /120 inside the block",
    "kubernetes.dns_resolvers": "1 to 3 quoted IPv6 resolver addresses",
    "calico": "a mapping with the Calico settings",
    "calico.version": "a Calico release such as \"3.30.3\"",
    "calico.block_size": "Calico's IPAM block size, a whole number from 116 to 128 (default 122)",
    "announce": "a mapping with what the nodes announce over BGP",
    "announce.service_cluster_ips": "true or false",
    "announce.service_external_ips": "a list of quoted IPv6 prefixes inside the block",
    "announce.service_loadbalancer_ips": "a list of quoted IPv6 prefixes inside the block",
}
DEFAULT_HINT = "see the table of keys in the README, or examples/packet.yaml"


def hint_for(path: str) -> str:
    return FIELD_HINTS.get(re.sub(r"\[\d+\]", "", path), DEFAULT_HINT)


def show(value: Any) -> str:
    """A value as the user wrote it, short: 'abc', 12, true, null, a list, a mapping."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:40] + "..."
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:60] + "..."
        return repr(text)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (bytes, bytearray)):
        return "binary data (!!binary)"
    if isinstance(value, (set, frozenset)):
        return "a set (!!set)"
    if isinstance(value, datetime.datetime):
        return f"the time {value.isoformat()} (YAML reads this unquoted value as a time)"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()} (YAML reads this unquoted value as a date)"
    return f"a {type(value).__name__}"


def _message(err: dict) -> str | None:
    """The user's words for one pydantic error; None when the caller builds it."""
    kind, ctx = err["type"], err.get("ctx") or {}
    value = show(err.get("input"))
    if kind in ("int_type", "int_parsing", "int_from_float"):
        raw = err.get("input")
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            return f"{value} is text: write the number without quotes"
        return f"{value} is not a whole number"
    if kind in ("float_type", "float_parsing"):
        return f"{value} is not a number"
    if kind == "finite_number":
        return f"{value} is not a finite number"
    if kind in ("bool_type", "bool_parsing"):
        return f"{value} is not true or false"
    if kind in ("string_type", "str_type"):
        return f"{value} is not text" if value != "null" else "is empty"
    if kind == "string_pattern_mismatch":
        return f"{value} does not have the right form"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"must hold at least {ctx.get('min_length')} item{'s' if ctx.get('min_length') != 1 else ''}"
    if kind == "too_long":
        return f"holds {ctx.get('actual_length')} items, more than the {ctx.get('max_length')} allowed"
    if kind == "greater_than_equal":
        return f"{value} is too small: the least allowed is {ctx.get('ge')}"
    if kind == "greater_than":
        return f"{value} is too small: it must be more than {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"{value} is too large: the most allowed is {ctx.get('le')}"
    if kind == "less_than":
        return f"{value} is too large: it must be less than {ctx.get('lt')}"
    if kind == "list_type":
        return f"{value} is not a list (write one item per line, each starting with '- ')"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{value} is not a mapping (write key: value lines under it)"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"{value} is not one of: {expected}"
    if kind == "ip_v4_address":
        return f"{value} is not an IPv4 address"
    if kind == "missing":
        return "required key is missing"
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
    return None


def problems_from(exc: ValidationError, raw: dict, cluster_model: type[BaseModel],
                  providers: dict[str, type[BaseModel]]) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False, include_input=True):
        loc = clean_loc(err["loc"], providers)
        path = format_loc(loc)
        hint = getattr((err.get("ctx") or {}).get("error"), "hint", None)  # a FieldProblem's hint
        message = _message(err)
        if err["type"] == "extra_forbidden":
            message, hint = _unknown_key(loc, raw, cluster_model, providers)
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            got = (raw.get("provider") or {}).get("type") if isinstance(raw.get("provider"), dict) else None
            message = f"{show(got)} is not a provider type" if got is not None else "required key is missing"
            path = "provider.type"
            hint = f"the provider: {' or '.join(providers)}"
        elif message is None:
            message = f"{show(err.get('input'))} is not valid here"
        problems.append(Problem(path, message, hint or hint_for(path)))
    return problems


def _unknown_key(loc: tuple, raw: dict, cluster_model: type[BaseModel],
                 providers: dict[str, type[BaseModel]]) -> tuple[str, str]:
    key = str(loc[-1])
    shown = key if len(key) <= 40 else key[:40] + "..."
    others = _other_providers(loc, raw, providers, key)
    if others:
        return f"{shown!r} is only valid with provider type {' or '.join(others)}", "remove it, or change provider.type"
    choices = _fields_at(loc[:-1], raw, cluster_model, providers)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    if close:
        return f"unknown key {shown!r}", f"did you mean {close[0]!r}?"
    if choices:
        return f"unknown key {shown!r}", f"known keys: {', '.join(sorted(choices))}"
    return f"unknown key {shown!r}", "remove it"


def clean_loc(loc: tuple, providers: dict[str, Any]) -> tuple:
    """Drop pydantic's union branch names (provider.static.peers -> provider.peers)."""
    out: list = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] == "provider" and part in providers:
            continue
        if isinstance(part, str) and (part.startswith(("function-", "literal[")) or part == "lax-or-strict"):
            continue
        out.append(part)
    return tuple(out)


def format_loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(file)"


def provider_model(raw: dict, providers: dict[str, type[BaseModel]]) -> type[BaseModel] | None:
    """The model of the provider type the file names, if it names a known one."""
    provider = raw.get("provider")
    kind = provider.get("type") if isinstance(provider, dict) else None
    return providers.get(kind) if isinstance(kind, str) else None


def _other_providers(loc: tuple, raw: dict, providers: dict[str, type[BaseModel]], key: str) -> list[str]:
    """For a key directly under `provider`: the other provider types that have it."""
    chosen = provider_model(raw, providers)
    if len(loc) != 2 or loc[0] != "provider" or chosen is None:
        return []
    return [name for name, model in providers.items() if model is not chosen and key in model.model_fields]


def _fields_at(loc: tuple, raw: dict, cluster_model: type[BaseModel],
               providers: dict[str, type[BaseModel]]) -> list[str]:
    """The keys a mapping at `loc` may hold (for 'did you mean'); under provider, those of its type."""
    model: Any = cluster_model
    for part in loc:
        if isinstance(part, int):
            continue
        if model is cluster_model and part == "provider":
            model = provider_model(raw, providers)
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
