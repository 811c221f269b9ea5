"""Node preparation as facts and steps (pyinfra style).

- A fact is a shell command plus a pure parser (`FACTS`); `gather_facts` runs them all in one go.
- A step (`Step`) is defined once: its shell commands, its shell-side check (true when nothing is
  left to do) and, for steps that only apply sometimes, a shell condition.
- Each `ensure_*` function decides the same thing in Python from parsed facts and returns a
  `StepResult`: the step's commands with the reason they run, or a no-op with the reason it is one.
- `apply` runs the commands over a connection; `prepare_nodes` does facts -> plan -> apply -> verify
  on several nodes at once; `render_prepare_script` writes the same steps as a bash script, each
  guarded by its check. One list (`STEPS`) feeds both, so the script and `create` cannot drift apart.

Every path written here is under /etc, and every value that reaches a shell goes through shlex.quote.

Choices worth knowing:
- containerd 2.x comes from Docker's apt repository (package containerd.io; keyring
  /etc/apt/keyrings/docker.asc, list /etc/apt/sources.list.d/docker.list): Debian 12 and Ubuntu
  ship containerd 1.x. Its config is written whole (version 3, SystemdCgroup = true).
- kubelet, kubeadm and kubectl come from pkgs.k8s.io for the chosen minor and are held.
- The /128 routes to the BGP peers are added live (`ip -6 route replace`) and restored at boot by
  a oneshot unit, v6kube-peer-routes.service, running /etc/v6kube/peer-routes.sh: it works the
  same under netplan (Ubuntu), ifupdown (Debian) and systemd-networkd, and retries while the
  network comes up.
- sysctls go to /etc/sysctl.d/90-v6kube.conf and only that file is applied (`sysctl -p FILE`).
- Resolvers: a systemd-resolved drop-in when resolved owns /etc/resolv.conf, else the file itself,
  rewritten in place (it may be a bind mount). Pods get /etc/v6kube/resolv.conf (IPv6 resolvers
  only) through the kubelet's resolvConf, set in kubeadm/init.yaml.
"""

from __future__ import annotations

import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network, ip_network
from typing import Any, Callable, Iterable, Mapping, Sequence

from v6kube import console
from v6kube.errors import NodeNotConverged, RemoteCommandFailed, UnsupportedOS, UsageError
from v6kube.render import render

q = shlex.quote

# Supported operating systems ("<ID>-<VERSION_ID>" from /etc/os-release) and their codenames.
SUPPORTED_OS = {"ubuntu-22.04": "jammy", "ubuntu-24.04": "noble", "debian-12": "bookworm"}

SYSCTL_FILE = "/etc/sysctl.d/90-v6kube.conf"
SYSCTLS = (
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv6.conf.default.forwarding", "1"),
    ("net.ipv6.conf.all.accept_ra", "2"),
    ("net.ipv6.conf.default.accept_ra", "2"),
)
MODULES_FILE = "/etc/modules-load.d/v6kube.conf"
MODULES = ("br_netfilter", "overlay")
KEYRINGS_DIR = "/etc/apt/keyrings"
DOCKER_KEYRING = f"{KEYRINGS_DIR}/docker.asc"
DOCKER_LIST = "/etc/apt/sources.list.d/docker.list"
# Armored keys as they are served (apt reads .asc keyrings): no gpg needed on the node.
KUBERNETES_KEYRING = f"{KEYRINGS_DIR}/kubernetes-apt-keyring.asc"
KUBERNETES_LIST = "/etc/apt/sources.list.d/kubernetes.list"
KUBERNETES_PACKAGES = ("kubelet", "kubeadm", "kubectl")
CONTAINERD_PACKAGE = "containerd.io"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
RESOLVED_DROPIN = "/etc/systemd/resolved.conf.d/v6kube-dns.conf"
RESOLV_CONF = "/etc/resolv.conf"
# The kubelet hands this file to pods (and CoreDNS) instead of the host's resolv.conf, which under
# systemd-resolved also lists the per-link (often IPv4) servers; kubeadm/init.yaml points at it.
KUBELET_RESOLV_CONF = "/etc/v6kube/resolv.conf"
PEER_ROUTES_SCRIPT = "/etc/v6kube/peer-routes.sh"
PEER_ROUTES_UNIT = "v6kube-peer-routes.service"
PEER_ROUTES_UNIT_FILE = f"/etc/systemd/system/{PEER_ROUTES_UNIT}"
MANAGED_FILES = (SYSCTL_FILE, MODULES_FILE, DOCKER_LIST, KUBERNETES_LIST, CONTAINERD_CONFIG,
                 RESOLVED_DROPIN, KUBELET_RESOLV_CONF, PEER_ROUTES_SCRIPT, PEER_ROUTES_UNIT_FILE)
WATCHED_UNITS = ("swap.target", PEER_ROUTES_UNIT)
# A fresh server's unattended-upgrades may hold dpkg's lock for minutes: wait for it, not fail.
APT_LOCK_WAIT = "-o DPkg::Lock::Timeout=600"
APT_INSTALL = (f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {APT_LOCK_WAIT} "
               "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold")
# Steps sent over SSH run one at a time per node: after a dropped connection the first copy of a
# step may still be running when it is sent again (flock -o: what the step starts keeps no lock).
STEP_LOCK = "/run/v6kube-prepare.lock"


# --- the desired state -----------------------------------------------------------------------------


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

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", self.node):
            raise UsageError(f"node name {self.node!r} is not a DNS label")
        if not re.fullmatch(r"1\.\d+", self.kubernetes_minor):
            raise UsageError(f"{self.node}: Kubernetes minor must look like 1.33, got {self.kubernetes_minor!r}")
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


# --- facts: a command and a pure parser --------------------------------------------------------------


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


@dataclass(frozen=True)
class Fact:
    name: str
    command: str
    parse: Callable[[str], Any]


def _files_command(paths: Sequence[str]) -> str:
    return ("for f in " + " ".join(q(p) for p in paths) + "; do "
            "if [ -f \"$f\" ]; then printf '==> %s <==\\n' \"$f\"; cat \"$f\"; printf '\\n<== end\\n'; fi; done")


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
         + " ".join((CONTAINERD_PACKAGE, *KUBERNETES_PACKAGES)), parse_packages),
    Fact("holds", "apt-mark showhold", parse_lines),
    Fact("files", _files_command(MANAGED_FILES), parse_files),
    Fact("keyrings", "for f in " + " ".join((DOCKER_KEYRING, KUBERNETES_KEYRING))
         + "; do if [ -s \"$f\" ]; then echo \"$f\"; fi; done", parse_lines),
    Fact("resolv_conf_link", f"readlink {RESOLV_CONF}", str.strip),
    Fact("resolv_conf", f"cat {RESOLV_CONF}", parse_nameservers),
    Fact("routes", "ip -6 route show", parse_routes),
    Fact("units", "for u in " + " ".join(WATCHED_UNITS)
         + "; do printf '%s %s\\n' \"$u\" \"$(systemctl is-enabled \"$u\" 2>/dev/null)\"; done", parse_units),
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
    holds: frozenset[str] = frozenset()
    files: Mapping[str, str] = field(default_factory=dict)
    keyrings: frozenset[str] = frozenset()
    resolv_conf_link: str = ""
    resolv_conf: tuple[str, ...] = ()  # the nameservers
    routes: tuple[Route, ...] = ()
    units: Mapping[str, str] = field(default_factory=dict)

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


# --- steps: commands and checks, defined once --------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    summary: str  # what holds once the step has run (also the no-op reason)
    check: str  # shell: true when there is nothing to do
    commands: tuple[str, ...]
    applies: str | None = None  # shell: false when the step is not for this node
    not_applicable: str = ""


@dataclass(frozen=True)
class StepResult:
    step: str
    commands: tuple[str, ...]  # empty: a no-op
    reason: str  # why the commands run, or why nothing needs to

    @property
    def changed(self) -> bool:
        return bool(self.commands)


def _call(function: str, *args: object) -> str:
    return " ".join([function, *(q(str(a)) for a in args)])


def _all(*checks: str) -> str:
    return " && ".join(checks)


def write_file(path: str, content: str, mode: str = "0644") -> tuple[str, ...]:
    """Commands that write a file atomically (a new name in the same directory, then rename).
    One command per line: under `set -e` a failure inside an && chain would not stop the script."""
    new = f"{path}.v6kube-new"
    directory = path.rsplit("/", 1)[0]
    return (f"install -d -m 0755 {q(directory)}",
            f"printf '%s' {q(content)} > {q(new)}",
            f"chmod {mode} {q(new)}",
            f"mv -f {q(new)} {q(path)}")


def _result(step: Step, problems: list[str]) -> StepResult:
    if problems:
        return StepResult(step.name, step.commands, "; ".join(problems))
    return StepResult(step.name, (), step.summary)


def _file_problem(facts: Facts, path: str, content: str) -> list[str]:
    current = facts.files.get(path)
    if current is None:
        return [f"{path} is missing"]
    if current != content:
        return [f"{path} differs from what v6kube writes"]
    return []


def _route_via(facts: Facts, destination: IPv6Network, gateway: IPv6Address) -> bool:
    return any(r.destination == destination and r.via == str(gateway) for r in facts.routes)


def _module_loaded(facts: Facts, module: str) -> bool:
    return module in facts.modules or module in facts.builtin_modules


def _package_installed(facts: Facts, package: str, prefix: str) -> bool:
    status, version = facts.packages.get(package, ("", ""))
    return status == "installed" and version.startswith(prefix)


def _resolved_in_use(facts: Facts) -> bool:
    return "run/systemd/resolve/" in facts.resolv_conf_link


# swap-off


def swap_off_step(spec: PrepareSpec, os: OSRelease) -> Step:
    rewrite = ("awk '{ if ($1 !~ /^#/ && $3 == \"swap\") print \"#\" $0; else print }' /etc/fstab "
               "> /etc/fstab.v6kube-new")
    return Step(
        name="swap-off",
        summary="swap is off now and stays off after a reboot",
        check=_all("swap_is_off", _call("unit_is", "swap.target", "masked")),
        commands=("swapoff -a", rewrite,
                  "cat /etc/fstab.v6kube-new > /etc/fstab",  # keeps the file's owner and mode
                  "rm -f /etc/fstab.v6kube-new",
                  "systemctl mask swap.target"),
    )


def ensure_swap_off(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = swap_off_step(spec, facts.os)
    problems = []
    if facts.swaps:
        problems.append(f"swap is on ({', '.join(facts.swaps)})")
    if facts.fstab:
        problems.append(f"/etc/fstab turns swap on at boot ({len(facts.fstab)} line(s))")
    if facts.units.get("swap.target") != "masked":
        problems.append("swap.target is not masked")
    return _result(step, problems)


# kernel-modules


def modules_conf(spec: PrepareSpec) -> str:
    return render("node/modules.conf.j2", modules=MODULES)


def kernel_modules_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = modules_conf(spec)
    return Step(
        name="kernel-modules",
        summary=f"{' and '.join(MODULES)} are loaded and load at boot",
        check=_all(_call("file_is", MODULES_FILE, content), *(_call("module_loaded", m) for m in MODULES)),
        commands=(*write_file(MODULES_FILE, content), *(f"modprobe {q(m)}" for m in MODULES)),
    )


def ensure_kernel_modules(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = kernel_modules_step(spec, facts.os)
    problems = _file_problem(facts, MODULES_FILE, modules_conf(spec))
    missing = [m for m in MODULES if not _module_loaded(facts, m)]
    if missing:
        problems.append(f"not loaded: {', '.join(missing)}")
    return _result(step, problems)


# sysctls


def sysctl_conf(spec: PrepareSpec) -> str:
    return render("node/sysctl.conf.j2", sysctls=SYSCTLS)


# all.accept_ra does not reach interfaces that exist already: with forwarding on, one still at 1
# ignores router advertisements, and a default route learned from them expires. Those go to 2
# (interfaces at 0 have their RAs handled elsewhere, e.g. by systemd-networkd, and stay).
RA_FIX = ('for f in /proc/sys/net/ipv6/conf/*/accept_ra; do '
          'if [ "$(cat "$f")" = 1 ]; then echo 2 > "$f"; fi; done')


def sysctls_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = sysctl_conf(spec)
    return Step(
        name="sysctls",
        summary="IPv6 forwarding is on (accept_ra 2), now and after a reboot",
        check=_all(_call("file_is", SYSCTL_FILE, content), *(_call("sysctl_is", k, v) for k, v in SYSCTLS),
                   "ra_kept"),
        # Only this file: `sysctl --system` would also re-apply every other file's global settings.
        commands=(*write_file(SYSCTL_FILE, content), f"sysctl -p {q(SYSCTL_FILE)}", RA_FIX),
    )


def ensure_sysctls(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = sysctls_step(spec, facts.os)
    problems = _file_problem(facts, SYSCTL_FILE, sysctl_conf(spec))
    wrong = [f"{k} = {facts.sysctls.get(k, '?')}" for k, v in SYSCTLS if facts.sysctls.get(k) != v]
    wrong += [f"{k} = 1" for k, v in sorted(facts.accept_ra.items()) if v == "1"]
    if wrong:
        problems.append("live values differ: " + ", ".join(wrong))
    return _result(step, problems)


# resolvers


def resolved_conf(spec: PrepareSpec) -> str:
    return render("node/resolved.conf.j2", resolvers=[str(r) for r in spec.resolvers])


def resolvers_resolved_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = resolved_conf(spec)
    return Step(
        name="resolvers-resolved",
        summary="systemd-resolved uses the IPv6 resolvers " + ", ".join(map(str, spec.resolvers)),
        check=_call("file_is", RESOLVED_DROPIN, content),
        commands=(*write_file(RESOLVED_DROPIN, content), "systemctl restart systemd-resolved"),
        applies="resolved_in_use",
        not_applicable="systemd-resolved does not manage /etc/resolv.conf",
    )


def ensure_resolvers_resolved(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = resolvers_resolved_step(spec, facts.os)
    if not _resolved_in_use(facts):
        return StepResult(step.name, (), step.not_applicable)
    return _result(step, _file_problem(facts, RESOLVED_DROPIN, resolved_conf(spec)))


def resolvers_resolv_conf_step(spec: PrepareSpec, os: OSRelease) -> Step:
    servers = [str(r) for r in spec.resolvers]
    new = f"{RESOLV_CONF}.v6kube-new"
    return Step(
        name="resolvers-resolv-conf",
        summary="/etc/resolv.conf names the IPv6 resolvers " + ", ".join(servers),
        check=_call("nameservers_are", *servers),
        commands=(
            "{ printf 'nameserver %s\\n' " + " ".join(q(s) for s in servers) + "; "
            f"grep -v '^[[:space:]]*nameserver[[:space:]]' {RESOLV_CONF} || true; }} > {new}",
            # Written in place, not renamed: /etc/resolv.conf may be a bind mount (containers, netns).
            f"cat {new} > {RESOLV_CONF}",
            f"rm -f {new}",
        ),
        applies="! resolved_in_use",
        not_applicable="systemd-resolved manages /etc/resolv.conf",
    )


def ensure_resolvers_resolv_conf(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = resolvers_resolv_conf_step(spec, facts.os)
    if _resolved_in_use(facts):
        return StepResult(step.name, (), step.not_applicable)
    wanted = tuple(str(r) for r in spec.resolvers)
    if facts.resolv_conf != wanted:
        shown = ", ".join(facts.resolv_conf) or "none"
        return _result(step, [f"/etc/resolv.conf names {shown}"])
    return _result(step, [])


def kubelet_resolv_conf(spec: PrepareSpec) -> str:
    return render("node/kubelet-resolv.conf.j2", resolvers=[str(r) for r in spec.resolvers])


def kubelet_resolvers_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = kubelet_resolv_conf(spec)
    return Step(
        name="kubelet-resolvers",
        summary=f"{KUBELET_RESOLV_CONF} (the pods' resolv.conf) names only the IPv6 resolvers",
        check=_call("file_is", KUBELET_RESOLV_CONF, content),
        commands=write_file(KUBELET_RESOLV_CONF, content),
    )


def ensure_kubelet_resolvers(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = kubelet_resolvers_step(spec, facts.os)
    return _result(step, _file_problem(facts, KUBELET_RESOLV_CONF, kubelet_resolv_conf(spec)))


# peer routes


def _peer_networks(spec: PrepareSpec) -> list[IPv6Network]:
    return [IPv6Network(f"{peer}/128") for peer in spec.peers]


def peer_routes_step(spec: PrepareSpec, os: OSRelease) -> Step:
    return Step(
        name="peer-routes",
        summary="the BGP peers are routed via the gateway " + str(spec.gateway),
        check=_all(*(_call("route_via", net, spec.gateway) for net in _peer_networks(spec))),
        commands=tuple(f"ip -6 route replace {q(str(net))} via {q(str(spec.gateway))}" for net in _peer_networks(spec)),
    )


def ensure_peer_routes(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = peer_routes_step(spec, facts.os)
    missing = [str(net) for net in _peer_networks(spec) if not _route_via(facts, net, spec.gateway)]
    return _result(step, [f"no route via {spec.gateway} to {', '.join(missing)}"] if missing else [])


def peer_routes_script(spec: PrepareSpec) -> str:
    return render("node/peer-routes.sh.j2", peers=[str(p) for p in spec.peers], gateway=str(spec.gateway))


def peer_routes_unit(spec: PrepareSpec) -> str:
    return render("node/v6kube-peer-routes.service.j2", script=PEER_ROUTES_SCRIPT)


def peer_routes_at_boot_step(spec: PrepareSpec, os: OSRelease) -> Step:
    script, unit = peer_routes_script(spec), peer_routes_unit(spec)
    return Step(
        name="peer-routes-at-boot",
        summary=f"{PEER_ROUTES_UNIT} restores the peer routes at boot",
        check=_all(_call("file_is", PEER_ROUTES_SCRIPT, script), _call("file_is", PEER_ROUTES_UNIT_FILE, unit),
                   _call("unit_is", PEER_ROUTES_UNIT, "enabled")),
        commands=(*write_file(PEER_ROUTES_SCRIPT, script, "0755"), *write_file(PEER_ROUTES_UNIT_FILE, unit),
                  "systemctl daemon-reload", f"systemctl enable {PEER_ROUTES_UNIT}"),
    )


def ensure_peer_routes_at_boot(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = peer_routes_at_boot_step(spec, facts.os)
    problems = _file_problem(facts, PEER_ROUTES_SCRIPT, peer_routes_script(spec))
    problems += _file_problem(facts, PEER_ROUTES_UNIT_FILE, peer_routes_unit(spec))
    if facts.units.get(PEER_ROUTES_UNIT) != "enabled":
        problems.append(f"{PEER_ROUTES_UNIT} is not enabled")
    return _result(step, problems)


# apt repositories


def _fetch_key(url: str, keyring: str) -> tuple[str, ...]:
    new = f"{keyring}.v6kube-new"
    return (f"install -d -m 0755 {q(KEYRINGS_DIR)}", f"curl -fsSL --retry 5 -o {q(new)} {q(url)}",
            f"chmod 0644 {q(new)}", f"mv -f {q(new)} {q(keyring)}")


def docker_list(os: OSRelease) -> str:
    return render("node/docker.list.j2", os_id=os.id, codename=os.codename, keyring=DOCKER_KEYRING)


def docker_repo_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = docker_list(os)
    return Step(
        name="docker-repo",
        summary=f"apt has the Docker repository for {os.id} {os.codename} (containerd 2.x)",
        check=_all(_call("nonempty", DOCKER_KEYRING), _call("file_is", DOCKER_LIST, content)),
        commands=(*_fetch_key(f"https://download.docker.com/linux/{os.id}/gpg", DOCKER_KEYRING),
                  *write_file(DOCKER_LIST, content)),
    )


def ensure_docker_repo(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = docker_repo_step(spec, facts.os)
    problems = [] if DOCKER_KEYRING in facts.keyrings else [f"{DOCKER_KEYRING} is missing"]
    return _result(step, problems + _file_problem(facts, DOCKER_LIST, docker_list(facts.os)))


def kubernetes_list(spec: PrepareSpec) -> str:
    return render("node/kubernetes.list.j2", minor=spec.kubernetes_minor, keyring=KUBERNETES_KEYRING)


def kubernetes_repo_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = kubernetes_list(spec)
    url = f"https://pkgs.k8s.io/core:/stable:/v{spec.kubernetes_minor}/deb/Release.key"
    return Step(
        name="kubernetes-repo",
        summary=f"apt has the pkgs.k8s.io repository for Kubernetes {spec.kubernetes_minor}",
        check=_all(_call("nonempty", KUBERNETES_KEYRING), _call("file_is", KUBERNETES_LIST, content)),
        commands=(*_fetch_key(url, KUBERNETES_KEYRING), *write_file(KUBERNETES_LIST, content)),
    )


def ensure_kubernetes_repo(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = kubernetes_repo_step(spec, facts.os)
    problems = [] if KUBERNETES_KEYRING in facts.keyrings else [f"{KUBERNETES_KEYRING} is missing"]
    return _result(step, problems + _file_problem(facts, KUBERNETES_LIST, kubernetes_list(spec)))


# packages


def _wanted_packages(spec: PrepareSpec) -> list[tuple[str, str]]:
    """(package, version prefix) pairs."""
    return [(CONTAINERD_PACKAGE, f"{spec.containerd_major}.")] + [
        (p, f"{spec.kubernetes_minor}.") for p in KUBERNETES_PACKAGES]


def packages_step(spec: PrepareSpec, os: OSRelease) -> Step:
    wanted = _wanted_packages(spec)
    return Step(
        name="packages",
        summary="containerd " + f"{spec.containerd_major}.x and kubelet, kubeadm, kubectl "
                f"{spec.kubernetes_minor} are installed",
        check=_all(*(_call("package_installed", p, prefix) for p, prefix in wanted)),
        commands=(f"apt-get update -q {APT_LOCK_WAIT}",
                  APT_INSTALL + " " + " ".join(q(f"{p}={prefix}*") for p, prefix in wanted)),
    )


def ensure_packages(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = packages_step(spec, facts.os)
    problems = []
    for package, prefix in _wanted_packages(spec):
        status, version = facts.packages.get(package, ("", ""))
        if status != "installed":
            problems.append(f"{package} is not installed")
        elif not version.startswith(prefix):
            problems.append(f"{package} {version} is installed, {prefix}* wanted")
    return _result(step, problems)


def packages_held_step(spec: PrepareSpec, os: OSRelease) -> Step:
    return Step(
        name="packages-held",
        summary="kubelet, kubeadm and kubectl are held (upgrades go through kubeadm)",
        check=_all(*(_call("package_held", p) for p in KUBERNETES_PACKAGES)),
        commands=("apt-mark hold " + " ".join(KUBERNETES_PACKAGES),),
    )


def ensure_packages_held(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = packages_held_step(spec, facts.os)
    loose = [p for p in KUBERNETES_PACKAGES if p not in facts.holds]
    return _result(step, [f"not held: {', '.join(loose)}"] if loose else [])


# containerd


def containerd_config(spec: PrepareSpec) -> str:
    return render("node/containerd-config.toml.j2")


def containerd_config_step(spec: PrepareSpec, os: OSRelease) -> Step:
    content = containerd_config(spec)
    return Step(
        name="containerd-config",
        summary="containerd uses the systemd cgroup driver (config version 3)",
        check=_call("file_is", CONTAINERD_CONFIG, content),
        commands=(*write_file(CONTAINERD_CONFIG, content), "systemctl restart containerd"),
    )


def ensure_containerd_config(facts: Facts, spec: PrepareSpec) -> StepResult:
    step = containerd_config_step(spec, facts.os)
    return _result(step, _file_problem(facts, CONTAINERD_CONFIG, containerd_config(spec)))


# The one ordered list: what `create` runs and what prepare.sh contains.
STEPS: tuple[tuple[Callable[[PrepareSpec, OSRelease], Step], Callable[[Facts, PrepareSpec], StepResult]], ...] = (
    (swap_off_step, ensure_swap_off),
    (kernel_modules_step, ensure_kernel_modules),
    (sysctls_step, ensure_sysctls),
    (resolvers_resolved_step, ensure_resolvers_resolved),
    (resolvers_resolv_conf_step, ensure_resolvers_resolv_conf),
    (kubelet_resolvers_step, ensure_kubelet_resolvers),
    (peer_routes_step, ensure_peer_routes),
    (peer_routes_at_boot_step, ensure_peer_routes_at_boot),
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


def plan_node(facts: Facts, spec: PrepareSpec) -> list[StepResult]:
    """Facts in, one StepResult per step out (pure). Raises UnsupportedOS first if it must."""
    check_unsupported(facts, spec.node)
    return [ensure(facts, spec) for _, ensure in STEPS]


# --- running the plan -----------------------------------------------------------------------------------


def step_script(result: StepResult) -> str:
    """A step's commands as one remote command under the node's step lock; `set -e` stops at the
    first failing command."""
    script = "set -eu\n" + "\n".join(result.commands)
    return f"flock -o -w 900 {STEP_LOCK} sh -c {q(script)}"


def check_script(step: Step) -> str:
    """A step's shell check as a script (helpers included): exit 0 when there is nothing to do,
    3 when the step does not apply, 1 otherwise."""
    condition = f"if {step.applies}; then :; else exit 3; fi\n" if step.applies else ""
    return render("node/helpers.sh") + condition + f"if {step.check}; then exit 0; fi\nexit 1\n"


def apply(conn: Any, results: Sequence[StepResult], *, phase: str = "prepare") -> None:
    """Run the commands of the steps that have any; report the no-ops with their reasons."""
    node = conn.node
    for result in results:
        if not result.changed:
            console.progress(phase, node, f"{result.step}: ok ({result.reason})")
            continue
        console.progress(phase, node, f"{result.step}: {result.reason}")
        try:
            # Steps are safe to repeat, so a dropped connection just runs the step again.
            conn.run(step_script(result), phase=phase, idempotent=True)
        except RemoteCommandFailed as exc:  # name the step, not its whole script (that is in the log)
            raise RemoteCommandFailed(node, f"step {result.step}", exc.exit_status, exc.output) from None


def _verify(conn: Any, spec: PrepareSpec, phase: str) -> None:
    left = [r for r in plan_node(gather_facts(conn, phase=phase), spec) if r.changed]
    if left:
        details = "; ".join(f"{r.step}: {r.reason}" for r in left)
        raise NodeNotConverged(f"{spec.node}: still not as wanted after preparing: {details}",
                               hint="see the node's log in the state directory's logs/")


def prepare_nodes(connections: Mapping[str, Any], specs: Mapping[str, PrepareSpec], *,
                  phase: str = "prepare") -> dict[str, list[StepResult]]:
    """Prepare several nodes at once (one thread and one connection per node).

    Facts are read and planned on every node before anything changes anywhere, so an unsupported
    OS on one node stops the run with nothing changed. If a node fails, the others still finish;
    then the first failure (in the specs' order) is raised.
    """
    missing = [name for name in specs if name not in connections]
    if missing:
        raise UsageError(f"no connection for node(s): {', '.join(missing)}")
    names = list(specs)
    if not names:
        return {}
    workers = min(32, len(names))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool:
        planned = _on_every_node(pool, names, lambda n: plan_node(gather_facts(connections[n], phase=phase), specs[n]))

        def run(name: str) -> list[StepResult]:
            apply(connections[name], planned[name], phase=phase)
            if any(r.changed for r in planned[name]):  # nothing ran: the facts just read are still true
                _verify(connections[name], specs[name], phase)
            console.progress(phase, name, "prepared")
            return planned[name]

        return _on_every_node(pool, names, run)


def _on_every_node(pool: ThreadPoolExecutor, names: list[str], work: Callable[[str], Any]) -> dict[str, Any]:
    futures = {name: pool.submit(work, name) for name in names}
    results, errors = {}, []
    for name in names:
        try:
            results[name] = futures[name].result()
        except Exception as exc:  # all nodes finish; the first failure is raised below
            errors.append((name, exc))
    for name, exc in errors[1:]:
        console.error(str(exc))
    if errors:
        raise errors[0][1]
    return results


# --- the preparation script ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    name: str
    summary: str
    step: Step | None = None
    by_os: tuple[tuple[str, Step], ...] = ()


def render_prepare_script(spec: PrepareSpec) -> str:
    """The bash script `v6kube plan` writes to nodes/<node>/prepare.sh: the same steps, each
    guarded by its check. For one OS when the spec names it, else for every supported OS."""
    keys = [os_key(spec.os_id_hint)] if spec.os_id_hint else list(SUPPORTED_OS)
    per_os = [steps_for(spec, OSRelease.from_key(key)) for key in keys]
    blocks = []
    for variants in zip(*per_os):
        first = variants[0]
        if all(v == first for v in variants):
            blocks.append(_Block(first.name, first.summary, step=first))
        else:
            blocks.append(_Block(first.name, "depends on the operating system", by_os=tuple(zip(keys, variants))))
    return render("node/prepare.sh.j2", spec=spec, oses=keys, blocks=blocks, helpers=render("node/helpers.sh"))
