"""One node's SSH connection: reused across steps, reopened when it drops, root or `sudo -n`.

How it connects (address, boot wait, host key, authentication) is dial.py; running one command
on a channel is channel.py; file transfers are files.py; the node's log is nodelog.py.
"""

from __future__ import annotations

import logging
import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Iterable

from v6kube.errors import RemoteCommandFailed, SSHError, SudoPasswordRequired
from v6kube.redact import Secret
from v6kube.ssh import files
from v6kube.ssh.channel import run_command
from v6kube.ssh.dial import Dialer
from v6kube.ssh.nodelog import NodeLog
from v6kube.ssh.output import CommandResult, _mask, _secret_values
from v6kube.ssh.retries import MAX_RERUNS, _Dropped, _NotStarted, _paramiko
from v6kube.ssh.targets import SSHOptions, Target

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

# paramiko logs banner and reset errors through `logging`; without a handler Python's last-resort
# handler would print them to stderr, around the console. We report those errors ourselves.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class SSHConnection:
    """One node's connection, reused across steps and reopened when the transport dropped.

    `lock` serialises use of the transport; `transport()`, `discard()` and `sftp()` are for files.py.
    """

    def __init__(self, target: Target, options: SSHOptions):
        self.node = target.node
        self.target = target
        self.options = options
        self.log = NodeLog(target.node, options.log_dir)
        self.lock = threading.RLock()
        self._dialer = Dialer(target, options, self.log)
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._sudo_checked = False

    @property
    def host_key(self) -> str | None:
        return self._dialer.seen

    @property
    def trusted_on_first_use(self) -> bool:
        """Whether the key seen was accepted only because trust on first use is on."""
        return self._dialer.tofu

    @property
    def is_root(self) -> bool:
        return self.options.user == "root"

    @property
    def address(self) -> IPv6Address | IPv4Address | None:
        return self._dialer.address

    def open(self, phase: str = "ssh") -> SSHConnection:
        """Connect, waiting (until the connect deadline) for a server that is still booting."""
        with self.lock:
            self.transport(phase)
        return self

    def run(self, command: str, *, phase: str = "ssh", timeout: float | None = None, check: bool = True,
            secrets: Iterable[str | Secret] = (), idempotent: bool = False,
            log_output: bool = True, echo: bool = True) -> CommandResult:
        masks = _secret_values(secrets)
        shown = _mask(command, masks)
        limit = timeout if timeout is not None else self.options.command_timeout
        reruns = 0
        while True:
            with self.lock:
                transport = self.transport(phase)
                try:
                    result = run_command(transport, self.log, self._wrap(command), shown, phase, limit, masks,
                                         log_output, echo)
                    break
                except _NotStarted:
                    self.discard()
                    if reruns >= MAX_RERUNS:
                        raise SSHError(f"{self.node}: the connection kept dropping before {shown} could start") from None
                    reruns += 1
                    self.log.note(phase, "connection lost before the command started; reconnecting")
                except _Dropped:
                    self.discard()
                    if not idempotent or reruns >= MAX_RERUNS:
                        raise SSHError(f"{self.node}: the connection dropped while running: {shown}; "
                                       "it may or may not have finished",
                                       hint="run v6kube again: its steps check first, so repeating them is safe") from None
                    reruns += 1
                    self.log.note(phase, f"connection dropped; reconnecting to run it again: {shown}", loud=True)
        if not self.is_root and result.exit_status == 1 and "password is required" in result.stderr:
            raise _sudo_error(self.node, self.options.user)
        if check and not result.ok:
            output = _mask(result.stderr.strip() or result.stdout.strip(), masks)
            raise RemoteCommandFailed(self.node, shown, result.exit_status, output)
        return result

    def upload(self, data: bytes | str, path: str, *, mode: int = 0o644, owner: str = "root",
               group: str = "root", phase: str = "ssh") -> None:
        files.upload(self, data, path, mode=mode, owner=owner, group=group, phase=phase)

    def download(self, path: str, *, phase: str = "ssh") -> bytes:
        return files.download(self, path, phase=phase)

    def close(self) -> None:
        with self.lock:
            self.discard()

    def __enter__(self) -> SSHConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SSHConnection({self.node!r}, {self.options.user}@{self.target.address})"

    # -- the transport (hold `lock`) ----------------------------------------------------------------

    def transport(self, phase: str) -> paramiko.Transport:
        """The live transport, connecting (again) if there is none."""
        if self._transport is not None and self._transport.is_active():
            return self._transport
        if self._transport is not None:
            self.discard()
            self.log.note(phase, "connection lost; reconnecting")
        self._transport = self._dialer.connect(phase)
        if not self.is_root and not self._sudo_checked:
            self._check_sudo(phase)
        return self._transport

    def discard(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # the transport is gone anyway
                pass
            self._sftp = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            assert self._transport is not None
            self._sftp = _paramiko().SFTPClient.from_transport(self._transport)
        return self._sftp

    def _check_sudo(self, phase: str) -> None:
        assert self._transport is not None
        try:
            result = run_command(self._transport, self.log, "LC_ALL=C sudo -n true", "sudo -n true", phase, 60.0,
                                 (), True, False)
        except (_Dropped, _NotStarted):
            raise SSHError(f"{self.node}: the connection dropped while checking sudo") from None
        if result.ok:
            self._sudo_checked = True
            return
        if "password is required" in result.stderr:
            raise _sudo_error(self.node, self.options.user)
        raise SSHError(f"{self.node}: {self.options.user} cannot use sudo: "
                       f"{result.stderr.strip() or f'exit status {result.exit_status}'}",
                       hint="connect as root, or give this user passwordless sudo")

    def _wrap(self, command: str) -> str:
        if self.is_root:
            return command
        # LC_ALL=C: sudo's "a password is required" is recognised by its English text.
        return f"LC_ALL=C sudo -n -- sh -c {shlex.quote(command)}"


def _sudo_error(node: str, user: str) -> SudoPasswordRequired:
    return SudoPasswordRequired(
        f"{node}: user {user} needs a password for sudo; v6kube runs commands with `sudo -n` "
        "and never types a password",
        hint=f"allow passwordless sudo, e.g. '{user} ALL=(ALL) NOPASSWD:ALL' in /etc/sudoers.d/{user}, "
        "or connect as root")


def connect(target: Target, options: SSHOptions, *, phase: str = "ssh") -> SSHConnection:
    """Open a connection to one node, waiting until the connect deadline while it boots."""
    return SSHConnection(target, options).open(phase)


def open_connections(targets: Iterable[Target], options: SSHOptions, *,
                     phase: str = "ssh") -> dict[str, SSHConnection]:
    """Connect to every target at once. On any failure the others are closed and the first error
    (in the targets' order) is raised."""
    targets = list(targets)
    if not targets:
        return {}
    connections = {t.node: SSHConnection(t, options) for t in targets}
    with ThreadPoolExecutor(max_workers=min(32, len(targets)), thread_name_prefix="ssh") as pool:
        futures = {name: pool.submit(conn.open, phase) for name, conn in connections.items()}
    errors = [future.exception() for future in futures.values() if future.exception() is not None]
    if errors:
        for conn in connections.values():
            conn.close()
        raise errors[0]
    return connections
