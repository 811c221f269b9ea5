"""A lab of IPv6-only "servers" on this machine: network namespaces with real OpenSSH servers and a
BIRD router standing in for the provider's BGP routers (see reference/testbed.md, Option B).

Layout (all inside the namespace the test process runs in, which must have no route out):

    test process --- bridge (LAN prefix ::fe) ---+--- node netns  (::11, ::12, ...; own /etc overlay,
                                                 |                 /run tmpfs, hostname, sshd)
                                                 +--- router netns (gateway ::1 on the LAN; the BGP
                                                                    peers ...:ffff::e/f on lo; one
                                                                    BIRD per peer, AS 65530, MD5)

The peer /128s are not on the LAN: a node reaches them only through a route via the gateway.
Each node has a "holder" process that owns its mount and UTS namespaces (overlay /etc, tmpfs /run),
so sshd can be started late, stopped and restarted without losing the node's /etc.
Every process the lab starts is killed by PID on close(), as are all processes left in its namespaces.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

from testbed.kube_stubs import write_fixtures
from testbed.stubs import install_stubs
from v6kube.nodes.managed import DOWNLOAD_HOSTS

PREFIX = IPv6Network("fd6b:7636::/48")  # exists only inside the testbed
BGP_PASSWORD = "Abcdef12345"
ROUTER_ASN = 65530
NODE_ASN = 65000
SSHD = "/usr/sbin/sshd"
REQUIRED_COMMANDS = ("ip", SSHD, "ssh-keygen", "bird", "unshare", "nsenter")
_SESSIONS_IN_USE: set[int] = set()

OS_RELEASES = {
    "debian-12": None,  # the host's own /etc/os-release (this machine runs Debian 12)
    "ubuntu-22.04": 'PRETTY_NAME="Ubuntu 22.04.5 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
                    'VERSION="22.04.5 LTS (Jammy Jellyfish)"\nVERSION_CODENAME=jammy\nID=ubuntu\n'
                    'ID_LIKE=debian\nUBUNTU_CODENAME=jammy\n',
    "ubuntu-24.04": 'PRETTY_NAME="Ubuntu 24.04.3 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
                    'VERSION="24.04.3 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\n'
                    'ID_LIKE=debian\nUBUNTU_CODENAME=noble\nLOGO=ubuntu-logo\n',
    "rocky-9": 'NAME="Rocky Linux"\nVERSION="9.4 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
               'VERSION_ID="9.4"\nPRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n',
}


def missing_prerequisites() -> list[str]:
    """Why the testbed cannot run here (empty when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (network namespaces)")
    for command in REQUIRED_COMMANDS:
        if shutil.which(command) is None:
            problems.append(f"{command} is not installed")
    if not problems:
        routes = _run(["ip", "route", "show", "default"]).stdout + _run(["ip", "-6", "route", "show", "default"]).stdout
        if routes.strip():
            problems.append("this network namespace has a default route: run the tests through "
                            "tests/run-in-netns so nothing can leave the machine")
    return problems


def _run(argv: list[str], *, check: bool = False, input: str | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _wait_for(condition, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"testbed: {what} not ready after {timeout} s")
        time.sleep(interval)


def _listening(pid: int, address: IPv6Address | IPv4Address, port: int) -> bool:
    """Whether the netns of `pid` has a TCP socket listening on address:port (read from /proc)."""
    if address.version == 6:
        path, packed = f"/proc/{pid}/net/tcp6", address.packed
        want = "".join(packed[i:i + 4][::-1].hex().upper() for i in range(0, 16, 4))
    else:
        path, want = f"/proc/{pid}/net/tcp", address.packed[::-1].hex().upper()
    try:
        lines = Path(path).read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        local, state = line.split()[1], line.split()[3]
        host, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port and host == want:
            return True
    return False


@dataclass
class Node:
    name: str
    ns: str
    address: IPv6Address
    dir: Path
    os: str
    resolved: bool = False  # /etc/resolv.conf is systemd-resolved's stub
    ipv4: IPv4Address | None = None
    holder: subprocess.Popen | None = None
    sshd: subprocess.Popen | None = None
    host_key: str = ""  # "ssh-ed25519 AAAA..."

    @property
    def bin_dir(self) -> Path:
        return self.dir / "bin"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def etc_upper(self) -> Path:
        return self.dir / "etc-upper"

    @property
    def sshd_log(self) -> Path:
        return self.dir / "sshd.log"


@dataclass
class Lab:
    root: Path
    token: str
    session: int
    lan: IPv6Network
    gateway: IPv6Address
    runner_address: IPv6Address
    peers: tuple[IPv6Address, IPv6Address]
    bridge: str
    client_key: Path
    nodes: dict[str, Node] = field(default_factory=dict)
    router_ns: str = ""
    _birds: list[subprocess.Popen] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)
    _links: list[str] = field(default_factory=list)
    _count: int = 0
    _ipv4_ready: bool = False
    _closed: bool = False

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, session: int | None = None) -> Lab:
        """A new lab. Its addresses come from `session` (default: this process's PID), so that
        labs in different test runs never share a prefix; pass a number for fixed addresses."""
        token = f"{os.getpid() % 0x10000:04x}{secrets.token_hex(1)}"
        if session is None:  # from the PID, and distinct from the other labs of this process
            session = os.getpid() % 0xFFFF + 1
            while session in _SESSIONS_IN_USE:
                session = session % 0xFFFF + 1
        _SESSIONS_IN_USE.add(session)
        lan = IPv6Network(f"fd6b:7636:{session:x}:1::/64")
        root = Path(tempfile.mkdtemp(prefix=f"v6k-testbed-{os.getpid()}-"))
        lab = cls(root=root, token=token, session=session, lan=lan, gateway=lan[1], runner_address=lan[0xfe],
                  peers=(IPv6Address(f"fd6b:7636:{session:x}:ffff::e"), IPv6Address(f"fd6b:7636:{session:x}:ffff::f")),
                  bridge=f"v6kb{token}", client_key=root / "client_ed25519")
        atexit.register(lab.close)  # in case a caller forgets; close() runs only once
        try:
            lab._start()
        except BaseException:
            lab.close()
            raise
        return lab

    def _start(self) -> None:
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "v6kube-testbed", "-f", str(self.client_key)], check=True)
        # sshd reads authorized_keys as the user logging in (the sudo tests log in as non-root users).
        self.root.chmod(0o755)
        shutil.copy(f"{self.client_key}.pub", self.root / "authorized_keys")
        (self.root / "authorized_keys").chmod(0o644)
        _run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        self._links.append(self.bridge)
        _run(["ip", "addr", "add", f"{self.runner_address}/64", "dev", self.bridge, "nodad"], check=True)
        _run(["ip", "link", "set", self.bridge, "up"], check=True)
        self._start_router()

    def _new_ns(self, suffix: str) -> str:
        ns = f"v6kt{os.getpid()}-{self.token}-{suffix}"
        _run(["ip", "netns", "add", ns], check=True)
        self._namespaces.append(ns)
        _run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        return ns

    def _attach(self, ns: str, link: str, address: IPv6Address) -> None:
        _run(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns], check=True)
        self._links.append(link)
        _run(["ip", "link", "set", link, "master", self.bridge, "up"], check=True)
        _run(["ip", "-n", ns, "addr", "add", f"{address}/64", "dev", "eth0", "nodad"], check=True)
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)

    def _start_router(self) -> None:
        self.router_ns = self._new_ns("rtr")
        self._attach(self.router_ns, f"v6k{self.token}r", self.gateway)
        for peer in self.peers:
            _run(["ip", "-n", self.router_ns, "addr", "add", f"{peer}/128", "dev", "lo"], check=True)
        for i, peer in enumerate(self.peers):
            name = "e" if i == 0 else "f"
            conf = self.root / f"bird-{name}.conf"
            conf.write_text(f"""router id 192.0.2.{14 + i};
log "{self.root}/bird-{name}.log" all;
protocol device {{ }}
protocol direct {{ ipv6; interface "eth0"; }}
protocol bgp nodes {{
  local {peer} as {ROUTER_ASN};
  neighbor range {self.lan} as {NODE_ASN};
  dynamic name "n";
  multihop 2; strict bind yes; passive on;
  password "{BGP_PASSWORD}";
  hold time 9; keepalive time 3;
  ipv6 {{ import all; export none; }};
}}
""")
            bird = subprocess.Popen(
                ["ip", "netns", "exec", self.router_ns, "bird", "-f", "-c", str(conf),
                 "-s", str(self.root / f"bird-{name}.ctl"), "-P", str(self.root / f"bird-{name}.pid")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.root / f"bird-{name}.err", "w"))
            self._birds.append(bird)
        for bird, peer in zip(self._birds, self.peers):
            _wait_for(lambda: bird.poll() is not None or _listening(bird.pid, peer, 179), 10, f"BIRD on {peer}")
            if bird.poll() is not None:
                raise RuntimeError(f"BIRD for {peer} exited: {(self.root / 'bird-e.err').read_text()}")

    def add_node(self, name: str | None = None, *, os_name: str = "debian-12", resolved: bool = False,
                 swap_in_fstab: bool = True, start_sshd: bool = True, ipv4: bool = False,
                 sudo_secure_path: bool = True, minimal: bool = False, networkd: bool = False,
                 download_hosts: dict[str, str] | None = None) -> Node:
        """A fresh node: its own netns, /etc overlay, /run, hostname, host key and stubs.

        minimal: the image lacks curl and ca-certificates. networkd: systemd-networkd runs (the
        systemctl stub's stand-in, which drops foreign routes when it starts). download_hosts:
        addresses for the hosts nodes download from, in the node's /etc/hosts (default: each on an
        unused address of the LAN, so the node has a route to it)."""
        self._count += 1
        index = self._count
        name = name or f"n{index}"
        directory = self.root / "nodes" / name
        node = Node(name=name, ns=self._new_ns(name), address=self.lan[0x10 + index], dir=directory, os=os_name,
                    resolved=resolved)
        for sub in ("etc-upper", "etc-work", "home"):
            (directory / sub).mkdir(parents=True)
        install_stubs(node.bin_dir, node.state_dir)
        write_fixtures(self.root)
        if not minimal:  # what a stock cloud image has installed
            (node.state_dir / "dpkg").mkdir()
            (node.state_dir / "dpkg" / "curl").write_text("7.88.1-10+deb12u8\n")
            (node.state_dir / "dpkg" / "ca-certificates").write_text("20230311\n")
        if networkd:
            (node.state_dir / "systemd" / "active").mkdir(parents=True)
            (node.state_dir / "systemd" / "active" / "systemd-networkd.service").touch()
        self._attach(node.ns, f"v6k{self.token}{index}", node.address)
        if ipv4:
            node.ipv4 = IPv4Address(f"192.0.2.{10 + index}")
            self._enable_ipv4()
            _run(["ip", "-n", node.ns, "addr", "add", f"{node.ipv4}/24", "dev", "eth0"], check=True)
        self.nodes[name] = node
        hosts = {host: str(self.lan[0xd0 + i]) for i, host in enumerate(DOWNLOAD_HOSTS)}
        hosts.update(download_hosts or {})
        self._seed_etc(node, resolved=resolved, swap_in_fstab=swap_in_fstab, sudo_secure_path=sudo_secure_path,
                       hosts=hosts)
        key = directory / "ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)], check=True)
        node.host_key = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        self._write_sshd_config(node)
        self._start_holder(node, resolved=resolved)
        if start_sshd:
            self.start_sshd(node)
        return node

    def _enable_ipv4(self) -> None:
        if not self._ipv4_ready:
            _run(["ip", "addr", "add", "192.0.2.254/24", "dev", self.bridge], check=True)
            self._ipv4_ready = True

    def _seed_etc(self, node: Node, *, resolved: bool, swap_in_fstab: bool, sudo_secure_path: bool,
                  hosts: dict[str, str]) -> None:
        """Files the node starts with, written into the overlay's upper dir before it is mounted."""
        upper = node.etc_upper
        # root's home is private to the node: the host's ~/.bashrc must not change the node's PATH.
        passwd = []
        for line in Path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "root":
                fields[5] = str(node.dir / "home")
            passwd.append(":".join(fields))
        (upper / "passwd").write_text("\n".join(passwd) + "\n")
        (upper / "hostname").write_text(f"{node.name}\n")
        (upper / "hosts").write_text(f"127.0.0.1 localhost\n::1 localhost\n{node.address} {node.name}\n"
                                     + "".join(f"{address} {host}\n" for host, address in hosts.items()))
        release = OS_RELEASES[node.os]
        if release is not None:
            (upper / "os-release").write_text(release)
        fstab = Path("/etc/fstab").read_text() if Path("/etc/fstab").exists() else ""
        if swap_in_fstab:
            fstab += "/swap.img\tnone\tswap\tsw\t0\t0\n"
        (upper / "fstab").write_text(fstab)
        if resolved:
            (upper / "resolv.conf").symlink_to("../run/systemd/resolve/stub-resolv.conf")
        else:
            (upper / "resolv.conf").write_text("# from the provider's DHCP\nnameserver 192.0.2.53\nsearch example.net\n")
        if sudo_secure_path:
            sudoers = upper / "sudoers.d"
            sudoers.mkdir()
            (sudoers / "v6kube-testbed").write_text(
                f'Defaults secure_path="{node.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n')
            (sudoers / "v6kube-testbed").chmod(0o440)

    def _write_sshd_config(self, node: Node) -> None:
        listen = f"ListenAddress {node.address}\n" + (f"ListenAddress {node.ipv4}\n" if node.ipv4 else "")
        (node.dir / "sshd_config").write_text(f"""Port 22
{listen}HostKey {node.dir}/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile {self.root}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxStartups 100
MaxSessions 100
SetEnv PATH={node.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
Subsystem sftp internal-sftp
""")

    def _start_holder(self, node: Node, *, resolved: bool) -> None:
        ready = node.dir / "holder.ready"
        run_setup = "mkdir -p /run/sshd"
        if resolved:
            run_setup += (" && mkdir -p /run/systemd/resolve && "
                          "printf 'nameserver 127.0.0.53\\noptions edns0 trust-ad\\n' > /run/systemd/resolve/stub-resolv.conf")
        # Swap is machine-wide: the node gets its own /proc/swaps (none active), so a host with
        # swap on does not leave the swap-off step unable to converge (the swapoff stub does nothing).
        swaps = node.dir / "swaps"
        swaps.write_text("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
        script = (f"hostname {node.name} && "
                  f"mount -t overlay overlay -o lowerdir=/etc,upperdir={node.etc_upper},workdir={node.dir / 'etc-work'} /etc && "
                  f"mount --bind {swaps} /proc/swaps && "
                  f"mount -t tmpfs -o mode=0755 tmpfs /run && "
                  # the node's own /usr/local/bin (v6kube installs calicoctl there), not the host's
                  f"mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin && {run_setup} && touch {ready} && exec sleep infinity")
        node.holder = subprocess.Popen(
            ["ip", "netns", "exec", node.ns, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(node.dir / "holder.err", "w"))
        _wait_for(lambda: ready.exists() or node.holder.poll() is not None, 10, f"{node.name} namespaces")
        if node.holder.poll() is not None:
            raise RuntimeError(f"{node.name}: holder exited: {(node.dir / 'holder.err').read_text()}")

    # -- operating nodes --------------------------------------------------------------------------

    def start_sshd(self, node: Node) -> None:
        assert node.holder is not None
        node.sshd = subprocess.Popen(
            ["nsenter", "-t", str(node.holder.pid), "-m", "-u", "-n", "--", SSHD, "-D", "-e",
             "-f", str(node.dir / "sshd_config"), "-E", str(node.sshd_log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda: node.sshd.poll() is not None or _listening(node.holder.pid, node.address, 22),
                  10, f"{node.name} sshd")
        if node.sshd.poll() is not None:
            raise RuntimeError(f"{node.name}: sshd exited: {node.sshd_log.read_text()}")

    def stop_sshd(self, node: Node) -> None:
        """Stop the listening sshd (sessions already open keep running, as with a real restart)."""
        if node.sshd is not None and node.sshd.poll() is None:
            node.sshd.terminate()
            node.sshd.wait(5)
        node.sshd = None

    def session_pids(self, node: Node) -> list[int]:
        """PIDs of the node's sshd session processes (every sshd in its netns but the listener)."""
        listener = node.sshd.pid if node.sshd else None
        pids = []
        for pid in self._ns_pids(node.ns):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm == "sshd" and pid != listener:
                pids.append(pid)
        return pids

    def kill_sessions(self, node: Node) -> int:
        """Kill the node's SSH sessions: every connection to it drops at once."""
        pids = self.session_pids(node)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def node_exec(self, node: Node, command: str, *, check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command inside the node (its netns, mount ns with the overlay /etc, hostname)."""
        assert node.holder is not None
        result = _run(["nsenter", "-t", str(node.holder.pid), "-m", "-u", "-n", "--", "sh", "-c", command])
        if check and result.returncode != 0:
            raise RuntimeError(f"{node.name}: {command} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def popen_in(self, node: Node, argv: list[str]) -> subprocess.Popen:
        """Start a process inside the node (killed with the node's namespaces at the latest)."""
        assert node.holder is not None
        return subprocess.Popen(["nsenter", "-t", str(node.holder.pid), "-m", "-u", "-n", "--", *argv],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_listening(self, node: Node, port: int = 22, timeout: float = 15) -> None:
        """Wait until something in the node listens on its address:port."""
        assert node.holder is not None
        _wait_for(lambda: _listening(node.holder.pid, node.address, port), timeout,
                  f"{node.name}: a listener on port {port}")

    def read_file(self, node: Node, path: str) -> str | None:
        result = self.node_exec(node, f"cat {shlex.quote(path)}", check=False)
        return result.stdout if result.returncode == 0 else None

    def tcp_connect_md5(self, node: Node, peer: IPv6Address, *, port: int = 179,
                        password: str = BGP_PASSWORD, timeout: float = 3.0) -> tuple[bool, str]:
        """From inside the node, open a TCP connection from its address to peer:port, signed with
        TCP-MD5 as a BGP speaker would. Returns (connected, source address or error)."""
        script = _MD5_CONNECT.format(peer=str(peer), port=port, source=str(node.address),
                                     password=password, timeout=timeout)
        result = _run(["ip", "netns", "exec", node.ns, "python3", "-c", script], timeout=timeout + 10)
        text = (result.stdout or result.stderr).strip()
        return result.returncode == 0, text

    def etc_hash(self, node: Node) -> str:
        """A hash of everything the node changed in its /etc (the overlay's upper dir)."""
        digest = hashlib.sha256()
        for path in sorted(node.etc_upper.rglob("*")):
            rel = path.relative_to(node.etc_upper)
            st = path.lstat()
            digest.update(f"{rel}\0{st.st_mode:o}\0".encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
            elif not path.is_dir():
                digest.update(f"dev{st.st_rdev}".encode())  # overlay whiteouts
        return digest.hexdigest()

    def calls(self, node: Node) -> list[str]:
        """Every stub call on the node, in order ("apt-get install -y ...")."""
        log = node.state_dir / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def simulate_boot(self, node: Node) -> None:
        """What a reboot would re-apply from the node's /etc: forget the live routes and sysctls,
        then run what systemd would at boot (enabled units' ExecStart, /etc/sysctl.d/*v6kube*)."""
        for peer in self.peers:
            self.node_exec(node, f"ip -6 route del {peer}/128 2>/dev/null || true")
        self.node_exec(node, "for k in all default; do sysctl -qw net.ipv6.conf.$k.forwarding=0 "
                             "net.ipv6.conf.$k.accept_ra=1; done")
        self.node_exec(node, "for f in /etc/sysctl.d/*v6kube*.conf; do [ -f \"$f\" ] && sysctl -q -p \"$f\"; done; true")
        # Only units the node enabled itself (links in its upper dir): /etc/systemd/system on the
        # host also holds the host's own units (sshd, bird, ...), which must not start in a node.
        for link in sorted(node.etc_upper.glob("systemd/system/*.wants/*")):
            unit = f"/etc/systemd/system/{link.name}"
            self.node_exec(node, f"exe=$(sed -n 's/^ExecStart=//p' {shlex.quote(unit)} | head -n 1); sh -c \"$exe\"")

    def add_user(self, node: Node, user: str, *, uid: int, sudo: str | None) -> None:
        """A login user in the node's own /etc (passwd, shadow, group, sudoers.d); `sudo` is the
        sudoers rule, e.g. "ALL=(ALL) NOPASSWD:ALL", or None for no sudo at all."""
        q = shlex.quote
        commands = [
            f"echo {q(f'{user}:x:{uid}:{uid}::/:/bin/sh')} >> /etc/passwd",
            f"echo {q(f'{user}:*:19000:0:99999:7:::')} >> /etc/shadow",
            f"echo {q(f'{user}:x:{uid}:')} >> /etc/group",
        ]
        if sudo is not None:
            commands.append(f"install -d -m 0750 /etc/sudoers.d && echo {q(f'{user} {sudo}')} > /etc/sudoers.d/{user} "
                            f"&& chmod 0440 /etc/sudoers.d/{user}")
        self.node_exec(node, " && ".join(commands))

    def remove_node(self, node: Node) -> None:
        self._kill_ns(node.ns)
        for proc in (node.sshd, node.holder):
            if proc is not None and proc.poll() is None:
                proc.kill()
            if proc is not None:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        _run(["ip", "netns", "del", node.ns])
        if node.ns in self._namespaces:
            self._namespaces.remove(node.ns)
        self.nodes.pop(node.name, None)
        shutil.rmtree(node.dir, ignore_errors=True)

    # -- teardown ---------------------------------------------------------------------------------

    @staticmethod
    def _ns_pids(ns: str) -> list[int]:
        result = _run(["ip", "netns", "pids", ns])
        return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []

    def _kill_ns(self, ns: str) -> None:
        """Kill every process in one of the lab's namespaces (all were started by the lab or by
        commands the tests ran there), by PID: TERM, then KILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self._ns_pids(ns)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.02)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for node in list(self.nodes.values()):
            try:
                self.remove_node(node)
            except Exception:
                pass
        for ns in list(self._namespaces):
            self._kill_ns(ns)
        for bird in self._birds:
            if bird.poll() is None:
                bird.kill()
            bird.wait(5)
        for ns in self._namespaces:
            _run(["ip", "netns", "del", ns])
        self._namespaces.clear()
        for link in self._links:
            _run(["ip", "link", "del", link])
        self._links.clear()
        shutil.rmtree(self.root, ignore_errors=True)
        _SESSIONS_IN_USE.discard(self.session)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


_MD5_CONNECT = """
import socket, struct, sys
peer, port, source, password = {peer!r}, {port}, {source!r}, {password!r}
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
# struct tcp_md5sig: sockaddr_storage addr; u8 flags; u8 prefixlen; u16 keylen; int ifindex; u8 key[80]
addr = struct.pack("=HHI16sI", socket.AF_INET6, 0, 0, socket.inet_pton(socket.AF_INET6, peer), 0).ljust(128, b"\\0")
key = password.encode()
s.setsockopt(socket.IPPROTO_TCP, 14, addr + struct.pack("=BBHi", 0, 0, len(key), 0) + key.ljust(80, b"\\0"))
s.bind((source, 0))
s.settimeout({timeout})
try:
    s.connect((peer, port))
except OSError as exc:
    print(f"{{type(exc).__name__}}: {{exc}}")
    sys.exit(1)
print(s.getsockname()[0])
s.close()
"""


def target_for(node: Node, *, host_key: str | None = "pinned", public_ipv4: IPv4Address | None = None):
    """The v6kube SSH target for a node; by default pinned to the node's real host key."""
    from v6kube.ssh import Target

    return Target(node.name, node.address, node.host_key if host_key == "pinned" else host_key,
                  public_ipv4 if public_ipv4 is not None else node.ipv4)
