"""Facts: what a node looks like now. Each is a shell command plus a pure parser; `gather_facts`
runs them all in one go."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from ipaddress import IPv6Network, ip_network
from typing import Any, Callable, Mapping, Sequence

from v6kube.nodes.managed import (
    BASE_PACKAGES,
    CONTAINERD_PACKAGE,
    DOCKER_KEYRING,
    DOWNLOAD_HOSTS,
    KUBERNETES_KEYRING,
    KUBERNETES_PACKAGES,
    MANAGED_FILES,
    RESOLV_CONF,
    SYSCTLS,
    WATCHED_UNITS,
)
from v6kube.nodes.spec import SUPPORTED_OS, OSRelease

q = shlex.quote


@dataclass(frozen=True)
class Route:
    destination: IPv6Network
    via: str | None  # as `ip` prints it: the shell check compares this text too


def parse_os_release(text: str) -> OSRelease:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            try:
                words = shlex.split(value)
            except ValueError:
                words = [value.strip('"')]
            values[key.strip()] = words[0] if words else ""
    os_id = values.get("ID", "unknown")
    version = values.get("VERSION_ID", "")
    codename = values.get("VERSION_CODENAME") or SUPPORTED_OS.get(f"{os_id}-{version}", "")
    return OSRelease(os_id, version, codename, values.get("PRETTY_NAME", f"{os_id} {version}".strip()))


def parse_swaps(text: str) -> tuple[str, ...]:
    """Active swap devices from /proc/swaps (the first line is a header)."""
    return tuple(line.split()[0] for line in text.splitlines()[1:] if line.strip())


def parse_fstab_swaps(text: str) -> tuple[str, ...]:
    """Uncommented fstab lines whose type is swap (the shell check uses the same awk rule)."""
    lines = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("#") and fields[2] == "swap":
            lines.append(line)
    return tuple(lines)


def parse_sysctls(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def parse_accept_ra(text: str) -> dict[str, str]:
    """`grep -H . /proc/sys/net/ipv6/conf/*/accept_ra` -> {"net.ipv6.conf.<if>.accept_ra": value}."""
    values = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        parts = path.split("/")
        if sep and len(parts) == 8 and parts[-1] == "accept_ra":
            values[f"net.ipv6.conf.{parts[-2]}.accept_ra"] = value.strip()
    return values


def parse_lsmod(text: str) -> frozenset[str]:
    return frozenset(line.split()[0] for line in text.splitlines()
                     if line.strip() and not line.startswith("Module "))


def parse_builtin_modules(text: str) -> frozenset[str]:
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line.endswith(".ko"):
            names.add(line.rsplit("/", 1)[-1][:-3])
    return frozenset(names)


def parse_packages(text: str) -> dict[str, tuple[str, str]]:
    """`dpkg-query -f '${Package} ${db:Status-Status} ${Version}\\n'` -> {package: (status, version)}."""
    packages = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            packages[fields[0]] = (fields[1], fields[2] if len(fields) > 2 else "")
    return packages


def parse_lines(text: str) -> frozenset[str]:
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


FILE_HEADER = re.compile(r"^==> (?P<path>/\S*) <==\n(?P<content>.*?)\n<== end\n", re.S | re.M)


def parse_files(text: str) -> dict[str, str]:
    """Contents of the files that exist, from the `files` fact (a header and an end line around each)."""
    return {m["path"]: m["content"] for m in FILE_HEADER.finditer(text)}


def parse_nameservers(text: str) -> tuple[str, ...]:
    """Nameserver addresses as written (compared as text, like the shell check does)."""
    servers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    return tuple(servers)


ROUTE_TYPES = {"unicast", "unreachable", "blackhole", "prohibit", "throw", "local", "anycast", "multicast"}


def parse_routes(text: str) -> tuple[Route, ...]:
    routes = []
    for line in text.splitlines():
        if not line.strip() or line[0].isspace():
            continue  # blank, or a multipath "nexthop" continuation
        tokens = line.split()
        if tokens[0] in ROUTE_TYPES and len(tokens) > 1:
            tokens = tokens[1:]
        destination = "::/0" if tokens[0] == "default" else tokens[0]
        try:
            network = ip_network(destination if "/" in destination else f"{destination}/128", strict=False)
        except ValueError:
            continue
        if network.version != 6:
            continue
        via = tokens[tokens.index("via") + 1] if "via" in tokens[:-1] else None
        routes.append(Route(network, via))
    return tuple(routes)


def parse_units(text: str) -> dict[str, str]:
    states = {}
    for line in text.splitlines():
        unit, _, state = line.strip().partition(" ")
        if unit:
            states[unit] = state.strip()
    return states


def parse_download_hosts(text: str) -> dict[str, tuple[tuple[str, bool], ...]]:
    """`<host> <address> routed|unrouted` or `<host> none` lines -> {host: ((address, routed), ...)};
    a host without addresses maps to (). Hosts the output does not name were not checked."""
    hosts: dict[str, list[tuple[str, bool]]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] == "none":
            hosts.setdefault(fields[0], [])
        elif len(fields) == 3 and fields[2] in ("routed", "unrouted"):
            hosts.setdefault(fields[0], []).append((fields[1], fields[2] == "routed"))
    return {host: tuple(addresses) for host, addresses in hosts.items()}


@dataclass(frozen=True)
class Fact:
    name: str
    command: str
    parse: Callable[[str], Any]


def _files_command(paths: Sequence[str]) -> str:
    return ("for f in " + " ".join(q(p) for p in paths) + "; do "
            "if [ -f \"$f\" ]; then printf '==> %s <==\\n' \"$f\"; cat \"$f\"; printf '\\n<== end\\n'; fi; done")


# Each download host's addresses and whether the kernel has a route to each. `getent hosts` asks for
# IPv6 first and falls back to IPv4 only for a host without any; `getent ahostsv4` adds the IPv4
# addresses when the node has IPv4 itself (it filters by the families the node has). RES_OPTIONS
# bounds each lookup when the resolvers do not answer (glibc's default can wait 20 s and more).
DOWNLOAD_HOSTS_COMMAND = (
    "for h in " + " ".join(q(h) for h in DOWNLOAD_HOSTS) + "; do n=; "
    "for a in $({ RES_OPTIONS='timeout:2 attempts:1'; export RES_OPTIONS; getent hosts \"$h\"; "
    "getent ahostsv4 \"$h\"; } 2>/dev/null | awk '{ print $1 }' | sort -u); do "
    "n=1; if ip route get \"$a\" >/dev/null 2>&1; then echo \"$h $a routed\"; else echo \"$h $a unrouted\"; fi; "
    "done; [ -n \"$n\" ] || echo \"$h none\"; done")


FACTS = (
    Fact("os_release", "cat /etc/os-release", parse_os_release),
    Fact("swaps", "cat /proc/swaps", parse_swaps),
    Fact("fstab", "cat /etc/fstab", parse_fstab_swaps),
    Fact("sysctls", "sysctl " + " ".join(key for key, _ in SYSCTLS), parse_sysctls),
    # the files, not `sysctl -a`, which reads every sysctl of the machine
    Fact("accept_ra", "grep -H . /proc/sys/net/ipv6/conf/*/accept_ra", parse_accept_ra),
    Fact("modules", "lsmod", parse_lsmod),
    Fact("builtin_modules", 'cat "/lib/modules/$(uname -r)/modules.builtin"', parse_builtin_modules),
    Fact("packages", "dpkg-query -W -f='${Package} ${db:Status-Status} ${Version}\\n' "
         + " ".join((*BASE_PACKAGES, CONTAINERD_PACKAGE, *KUBERNETES_PACKAGES)), parse_packages),
    Fact("architecture", "dpkg --print-architecture", str.strip),
    Fact("holds", "apt-mark showhold", parse_lines),
    Fact("files", _files_command(MANAGED_FILES), parse_files),
    Fact("keyrings", "for f in " + " ".join((DOCKER_KEYRING, KUBERNETES_KEYRING))
         + "; do if [ -s \"$f\" ]; then echo \"$f\"; fi; done", parse_lines),
    Fact("resolv_conf_link", f"readlink {RESOLV_CONF}", str.strip),
    Fact("resolv_conf", f"cat {RESOLV_CONF}", parse_nameservers),
    Fact("routes", "ip -6 route show", parse_routes),
    Fact("units", "for u in " + " ".join(WATCHED_UNITS)
         + "; do printf '%s %s\\n' \"$u\" \"$(systemctl is-enabled \"$u\" 2>/dev/null)\"; done", parse_units),
    Fact("download_hosts", DOWNLOAD_HOSTS_COMMAND, parse_download_hosts),
)
FACT_MARKER = "@@v6kube-fact"


@dataclass(frozen=True)
class Facts:
    """What a node looks like now, parsed from the raw outputs of FACTS."""

    os: OSRelease
    swaps: tuple[str, ...] = ()
    fstab: tuple[str, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    accept_ra: Mapping[str, str] = field(default_factory=dict)  # per interface, as sysctl names them
    modules: frozenset[str] = frozenset()
    builtin_modules: frozenset[str] = frozenset()
    packages: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    architecture: str = ""  # dpkg's: amd64, arm64, ...
    holds: frozenset[str] = frozenset()
    files: Mapping[str, str] = field(default_factory=dict)
    keyrings: frozenset[str] = frozenset()
    resolv_conf_link: str = ""
    resolv_conf: tuple[str, ...] = ()  # the nameservers
    routes: tuple[Route, ...] = ()
    units: Mapping[str, str] = field(default_factory=dict)
    download_hosts: Mapping[str, tuple[tuple[str, bool], ...]] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Mapping[str, str]) -> Facts:
        """Parse raw fact outputs (by fact name); a missing fact counts as empty output."""
        unknown = set(raw) - {f.name for f in FACTS}
        if unknown:
            raise ValueError(f"unknown facts: {', '.join(sorted(unknown))}")
        return cls(**{fact.name if fact.name != "os_release" else "os": fact.parse(raw.get(fact.name, ""))
                      for fact in FACTS})


def gather_script() -> str:
    """One shell script printing every fact's output after a marker line."""
    parts = [f"printf '\\n{FACT_MARKER} %s\\n' {q(fact.name)}; {{ {fact.command}; }} 2>/dev/null" for fact in FACTS]
    return "\n".join(parts) + "\ntrue"


def split_gathered(output: str) -> dict[str, str]:
    raw: dict[str, str] = {}
    name = None
    chunks: list[str] = []
    for line in output.splitlines(keepends=True):
        if line.startswith(FACT_MARKER + " "):
            if name is not None:
                raw[name] = "".join(chunks)[:-1]  # drop the newline the next marker's printf added
            name, chunks = line[len(FACT_MARKER) + 1:].strip(), []
        elif name is not None:
            chunks.append(line)
    if name is not None:
        raw[name] = "".join(chunks)
    return raw


def gather_raw_facts(conn: Any, *, phase: str = "prepare") -> dict[str, str]:
    result = conn.run(gather_script(), phase=phase, idempotent=True, echo=False)  # facts: log only
    return split_gathered(result.stdout)


def gather_facts(conn: Any, *, phase: str = "prepare") -> Facts:
    return Facts.from_raw(gather_raw_facts(conn, phase=phase))
