"""The paramiko implementation: one node's connection, reused across steps and reopened when it drops."""

from __future__ import annotations

import base64
import errno
import logging
import os
import posixpath
import secrets as random_tokens
import shlex
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from v6kube import console
from v6kube.errors import HostKeyMismatch, RemoteCommandFailed, SSHError, SudoPasswordRequired
from v6kube.redact import Secret, redact
from v6kube.ssh.hostkeys import _key_blob, _key_types_for, describe_key, same_key
from v6kube.ssh.output import CommandResult, _LineStream, _mask, _secret_values
from v6kube.ssh.retries import (
    ATTEMPT_TIMEOUT,
    MAX_RERUNS,
    MAX_RETRY_DELAY,
    RETRY_ERRNOS,
    _Dropped,
    _NoRoute,
    _NotStarted,
    _NotUpYet,
    _paramiko,
    _reason,
    _transport_died,
    _watchdog,
)
from v6kube.ssh.targets import SSHOptions, Target, _where, choose_address

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

# paramiko logs banner and reset errors through `logging`; without a handler Python's last-resort
# handler would print them to stderr, around the console. We report those errors ourselves.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class SSHConnection:
    """One node's connection, reused across steps and reopened when the transport dropped."""

    _keys_lock = threading.Lock()
    _loaded_keys: dict[Path, Any] = {}

    def __init__(self, target: Target, options: SSHOptions):
        self.node = target.node
        self.target = target
        self.options = options
        self._pinned = target.host_key
        self._tofu = False
        self._seen: str | None = None
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._address: IPv6Address | IPv4Address | None = None
        self._sudo_checked = False
        self._lock = threading.RLock()
        self._log_lock = threading.Lock()
        self._log_path = options.log_dir / f"{target.node}.log" if options.log_dir else None
        if self._pinned is not None:
            _key_blob(self._pinned)  # a malformed pinned key is an error before any connect

    # -- public ---------------------------------------------------------------------------------

    @property
    def host_key(self) -> str | None:
        return self._seen

    @property
    def trusted_on_first_use(self) -> bool:
        """Whether the key seen was accepted only because trust on first use is on."""
        return self._tofu

    @property
    def is_root(self) -> bool:
        return self.options.user == "root"

    @property
    def address(self) -> IPv6Address | IPv4Address | None:
        return self._address

    def open(self, phase: str = "ssh") -> SSHConnection:
        """Connect, waiting (until the connect deadline) for a server that is still booting."""
        with self._lock:
            self._ensure_transport(phase)
        return self

    def run(self, command: str, *, phase: str = "ssh", timeout: float | None = None, check: bool = True,
            secrets: Iterable[str | Secret] = (), idempotent: bool = False,
            log_output: bool = True, echo: bool = True) -> CommandResult:
        masks = _secret_values(secrets)
        shown = _mask(command, masks)
        reruns = 0
        while True:
            with self._lock:
                self._ensure_transport(phase)
                try:
                    result = self._exec(self._wrap(command), shown, phase, timeout, masks, log_output, echo)
                    break
                except _NotStarted:
                    self._discard_transport()
                    if reruns >= MAX_RERUNS:
                        raise SSHError(f"{self.node}: the connection kept dropping before {shown} could start") from None
                    reruns += 1
                    self._note(phase, "connection lost before the command started; reconnecting")
                except _Dropped:
                    self._discard_transport()
                    if not idempotent or reruns >= MAX_RERUNS:
                        raise SSHError(f"{self.node}: the connection dropped while running: {shown}; "
                                       "it may or may not have finished",
                                       hint="run v6kube again: its steps check first, so repeating them is safe") from None
                    reruns += 1
                    self._note(phase, f"connection dropped; reconnecting to run it again: {shown}", loud=True)
        if not self.is_root and result.exit_status == 1 and "password is required" in result.stderr:
            raise self._sudo_error()
        if check and not result.ok:
            output = _mask(result.stderr.strip() or result.stdout.strip(), masks)
            raise RemoteCommandFailed(self.node, shown, result.exit_status, output)
        return result

    def upload(self, data: bytes | str, path: str, *, mode: int = 0o644, owner: str = "root",
               group: str = "root", phase: str = "ssh") -> None:
        payload = data.encode() if isinstance(data, str) else data
        directory, name = posixpath.split(path)
        token = random_tokens.token_hex(6)
        # Same directory as the target, so the final rename is atomic; a sudo user can only
        # write its own files, so it stages in /tmp and root moves the file into place.
        staging = f"{directory}/.{name}.v6kube-{token}" if self.is_root else f"/tmp/.v6kube-upload-{token}"
        self._log(f"[{phase}] upload {path} ({len(payload)} bytes, mode {mode:04o}, {owner}:{group})")
        self._put(payload, staging, directory, phase)
        q = shlex.quote
        if self.is_root:
            place = (f"chown {q(owner)}:{q(group)} {q(staging)} && chmod {mode:04o} {q(staging)} "
                     f"&& mv -f {q(staging)} {q(path)}")
        else:
            final_tmp = f"{directory}/.{name}.v6kube-{token}"
            place = (f"mkdir -p {q(directory)} && install -m {mode:04o} -o {q(owner)} -g {q(group)} "
                     f"{q(staging)} {q(final_tmp)} && mv -f {q(final_tmp)} {q(path)}")
        place += f"; status=$?; rm -f {q(staging)}; exit $status"  # no staged copy is left behind
        self.run(place, phase=phase, idempotent=True)

    def download(self, path: str, *, phase: str = "ssh") -> bytes:
        if self.is_root:
            for attempt in (1, 2):
                with self._lock:
                    transport = self._ensure_transport(phase)
                    with _watchdog(transport, self.options.command_timeout) as stalled:
                        try:
                            with self._sftp_client().open(path, "rb") as remote:
                                return remote.read()
                        except FileNotFoundError:
                            raise SSHError(f"{self.node}: {path}: no such file") from None
                        except (EOFError, OSError, _paramiko().SSHException):
                            if not stalled.is_set() and not _transport_died(transport):
                                raise
                    self._discard_transport()
                    if stalled.is_set():
                        raise SSHError(f"{self.node}: reading {path} timed out after {self.options.command_timeout:g} s")
                    if attempt == 2:
                        raise SSHError(f"{self.node}: the connection dropped while reading {path}")
        # The file may be secret (a kubeconfig): its contents go neither to the log nor the console.
        result = self.run(f"base64 < {shlex.quote(path)}", phase=phase, idempotent=True, log_output=False,
                          echo=False)
        return base64.b64decode(result.stdout)

    def close(self) -> None:
        with self._lock:
            self._discard_transport()

    def __enter__(self) -> SSHConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SSHConnection({self.node!r}, {self.options.user}@{self.target.address})"

    # -- connecting -------------------------------------------------------------------------------

    def _ensure_transport(self, phase: str) -> paramiko.Transport:
        if self._transport is not None and self._transport.is_active():
            return self._transport
        if self._transport is not None:
            self._discard_transport()
            self._note(phase, "connection lost; reconnecting")
        self._transport = self._connect_until_deadline(phase)
        if not self.is_root and not self._sudo_checked:
            self._check_sudo(phase)
        return self._transport

    def _connect_until_deadline(self, phase: str) -> paramiko.Transport:
        address = choose_address(self.target, self.options.address_family)
        self._address = address
        where = _where(address, self.options.port)
        timeout = self.options.connect_timeout
        deadline = time.monotonic() + timeout
        delay = 0.2
        waited = False
        while True:
            attempt_timeout = max(1.0, min(ATTEMPT_TIMEOUT, deadline - time.monotonic()))
            try:
                transport = self._handshake(address, attempt_timeout)
                break
            except _NoRoute:
                fallback = self.target.public_ipv4
                if self.options.address_family == "auto" and address.version == 6 and fallback is not None:
                    self._note(phase, f"no IPv6 route to {where}; using the public IPv4 address {fallback}")
                    address = self._address = fallback
                    where = _where(address, self.options.port)
                    continue
                raise SSHError(f"{self.node}: no route from this machine to {where}",
                               hint="without IPv6 here, set ssh.address_family to auto or ipv4 and give "
                               "the node's public_ipv4") from None
            except _NotUpYet as exc:
                if time.monotonic() + delay >= deadline:
                    raise SSHError(f"{self.node}: no SSH answer on {where} within {timeout:g} s ({exc})",
                                   hint="check that the server is up and that this machine can reach it; "
                                   "ssh.connect_timeout sets how long to wait") from None
                if not waited:
                    self._note(phase, f"waiting for SSH on {where} ({exc})", loud=True)
                    waited = True
                else:
                    self._note(phase, f"still waiting for SSH on {where} ({exc})")
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
        self._note(phase, f"connected to {where} as {self.options.user}")
        return transport

    def _handshake(self, address: IPv6Address | IPv4Address, attempt_timeout: float) -> paramiko.Transport:
        paramiko = _paramiko()
        where = _where(address, self.options.port)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(attempt_timeout)
        try:
            sock.connect((str(address), self.options.port))  # the bare literal, never "host:port"
        except OSError as exc:
            sock.close()
            if isinstance(exc, socket.timeout) or exc.errno in RETRY_ERRNOS:
                raise _NotUpYet(_reason(exc)) from None
            if exc.errno == errno.ENETUNREACH:
                raise _NoRoute(where) from None
            raise SSHError(f"{self.node}: cannot connect to {where}: {exc.strerror or exc}") from None
        # Commands are small request/response exchanges: without this, Nagle's algorithm and the
        # peer's delayed ACKs add ~40 ms to every channel open.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = attempt_timeout
        transport.handshake_timeout = attempt_timeout
        transport.auth_timeout = attempt_timeout
        if self._pinned is not None:
            options = transport.get_security_options()
            preferred = [t for t in _key_types_for(self._pinned) if t in options.key_types]
            options.key_types = preferred + [t for t in options.key_types if t not in preferred]
        try:
            try:
                transport.start_client(timeout=attempt_timeout)
                server_key = transport.get_remote_server_key()
                seen = f"{server_key.get_name()} {server_key.get_base64()}"
                self._check_host_key(seen, where)  # before authenticating: a wrong server gets nothing
                self._authenticate(transport)
            except paramiko.AuthenticationException as exc:
                raise SSHError(f"{self.node}: {self.options.user}@{where} refused our key ({exc})",
                               hint="check ssh.user and ssh.private_key, or the keys in the SSH agent") from None
            except paramiko.ssh_exception.IncompatiblePeer as exc:
                raise SSHError(f"{self.node}: {where}: no common SSH algorithms ({exc})") from None
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise _NotUpYet(_reason(exc)) from None
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(self.options.keepalive)
        self._seen = seen
        if self._pinned is None:
            self._pinned = seen  # first use: from now on (reconnects) this key is the only one accepted
            self._tofu = True
        return transport

    def _check_host_key(self, seen: str, where: str) -> None:
        if self._pinned is None:
            if not self.options.trust_on_first_use:
                raise SSHError(f"{self.node}: no pinned host key for {where}; refusing to connect "
                               f"(the server offered {describe_key(seen)})",
                               hint="set the node's host_key in the cluster file, or set "
                               "ssh.trust_on_first_use: true to record the first key seen")
            console.warn(f"{self.node}: trusting host key {describe_key(seen)} on first use")
            self._log(f"trusting host key {describe_key(seen)} on first use")
            return
        if not same_key(self._pinned, seen):
            self._log(f"host key mismatch: pinned {describe_key(self._pinned)}, offered {describe_key(seen)}")
            raise HostKeyMismatch(self.node, describe_key(self._pinned), describe_key(seen))

    def _authenticate(self, transport: paramiko.Transport) -> None:
        paramiko = _paramiko()
        if self.options.private_key is not None:
            keys = [self._private_key(self.options.private_key)]
        else:
            keys = list(paramiko.Agent().get_keys())
            if not keys:
                raise SSHError(f"{self.node}: no private key configured and the SSH agent holds no keys",
                               hint="set ssh.private_key, or add a key to the agent (ssh-add)")
        for key in keys:
            try:
                transport.auth_publickey(self.options.user, key)
                return
            except paramiko.BadAuthenticationType:
                raise
            except paramiko.AuthenticationException:
                continue
        raise paramiko.AuthenticationException(f"tried {len(keys)} key(s)")

    @classmethod
    def _private_key(cls, path: Path) -> Any:
        paramiko = _paramiko()
        with cls._keys_lock:
            if path not in cls._loaded_keys:
                try:
                    cls._loaded_keys[path] = paramiko.PKey.from_path(path)
                except paramiko.PasswordRequiredException:
                    raise SSHError(f"the private key {path} is protected by a passphrase",
                                   hint="load it into the SSH agent and set ssh.private_key: null") from None
                except (OSError, paramiko.SSHException) as exc:
                    raise SSHError(f"cannot read the private key {path}: {exc}") from None
            return cls._loaded_keys[path]

    def _check_sudo(self, phase: str) -> None:
        try:
            result = self._exec("LC_ALL=C sudo -n true", "sudo -n true", phase, 60.0, (), True, False)
        except (_Dropped, _NotStarted):
            raise SSHError(f"{self.node}: the connection dropped while checking sudo") from None
        if result.ok:
            self._sudo_checked = True
            return
        if "password is required" in result.stderr:
            raise self._sudo_error()
        raise SSHError(f"{self.node}: {self.options.user} cannot use sudo: "
                       f"{result.stderr.strip() or f'exit status {result.exit_status}'}",
                       hint="connect as root, or give this user passwordless sudo")

    def _sudo_error(self) -> SudoPasswordRequired:
        user = self.options.user
        return SudoPasswordRequired(
            f"{self.node}: user {user} needs a password for sudo; v6kube runs commands with `sudo -n` "
            "and never types a password",
            hint=f"allow passwordless sudo, e.g. '{user} ALL=(ALL) NOPASSWD:ALL' in /etc/sudoers.d/{user}, "
            "or connect as root")

    def _discard_transport(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # the transport is gone anyway
                pass
            self._sftp = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # -- running ----------------------------------------------------------------------------------

    def _wrap(self, command: str) -> str:
        if self.is_root:
            return command
        # LC_ALL=C: sudo's "a password is required" is recognised by its English text.
        return f"LC_ALL=C sudo -n -- sh -c {shlex.quote(command)}"

    def _exec(self, wrapped: str, shown: str, phase: str, timeout: float | None,
              masks: tuple[str, ...], log_output: bool, echo: bool) -> CommandResult:
        transport = self._transport
        assert transport is not None
        limit = timeout if timeout is not None else self.options.command_timeout
        started = time.monotonic()
        self._log(f"[{phase}] $ {shown}")
        console.debug(f"[{phase}] {self.node}: $ {shown}")

        def emitter(mark: str):
            def emit(line: str) -> None:
                line = _mask(line, masks)
                if log_output:
                    self._log(f"[{phase}] {mark} {line}")
                if echo:
                    console.progress(phase, self.node, line)
            return emit

        out, err = _LineStream(emitter("|")), _LineStream(emitter("!"))
        try:
            channel = transport.open_session(timeout=ATTEMPT_TIMEOUT)
        except (EOFError, OSError, _paramiko().SSHException):
            if _transport_died(transport):
                raise _NotStarted() from None
            raise
        try:
            with _watchdog(transport, ATTEMPT_TIMEOUT):  # paramiko waits for the reply without limit
                channel.exec_command(wrapped)  # once sent, the command may have started
                channel.shutdown_write()
        except (EOFError, OSError, _paramiko().SSHException):
            channel.close()
            if _transport_died(transport):
                raise _Dropped() from None
            raise
        try:
            channel.settimeout(0.05)
            stdout_done = False
            while True:
                if not stdout_done:
                    try:
                        data = channel.recv(65536)
                        if data:
                            out.feed(data)
                        else:
                            stdout_done = True
                    except socket.timeout:
                        pass
                while channel.recv_stderr_ready():
                    err.feed(channel.recv_stderr(65536))
                if stdout_done and channel.exit_status_ready() and not channel.recv_stderr_ready():
                    break
                if time.monotonic() - started > limit:
                    self._log(f"[{phase}] timed out after {limit:g} s")
                    raise SSHError(f"{self.node}: command timed out after {limit:g} s: {shown}",
                                   hint="the node may be slow or stuck; ssh.command_timeout sets the limit")
                if stdout_done:
                    channel.status_event.wait(0.05)
            status = channel.exit_status
        finally:
            channel.close()
        stdout, stderr = out.finish(), err.finish()
        seconds = time.monotonic() - started
        if status == -1 and _transport_died(transport):  # -1 alone may also be a command killed by a signal
            self._log(f"[{phase}] connection dropped after {seconds:.1f} s")
            raise _Dropped()
        self._log(f"[{phase}] exit {status} ({seconds:.1f} s)")
        return CommandResult(self.node, shown, status, stdout, stderr, seconds)

    def _put(self, payload: bytes, staging: str, directory: str, phase: str) -> None:
        paramiko = _paramiko()
        for attempt in (1, 2, 3):
            with self._lock:
                transport = self._ensure_transport(phase)
                with _watchdog(transport, self.options.command_timeout) as stalled:
                    try:
                        sftp = self._sftp_client()
                        try:
                            remote = sftp.open(staging, "wb")
                        except FileNotFoundError:
                            # The target directory does not exist yet (only for root, who stages there).
                            self.run(f"mkdir -p {shlex.quote(directory)}", phase=phase, idempotent=True)
                            remote = sftp.open(staging, "wb")
                        with remote:
                            remote.chmod(0o600)  # may be secret: nobody else reads it while it is staged
                            remote.write(payload)
                        return
                    except (EOFError, OSError, paramiko.SSHException) as exc:
                        failure = exc
                if stalled.is_set():
                    self._discard_transport()
                    raise SSHError(f"{self.node}: uploading {staging} timed out after {self.options.command_timeout:g} s",
                                   hint="the node may be slow or stuck; ssh.command_timeout sets the limit")
                if not _transport_died(transport):
                    raise SSHError(f"{self.node}: cannot write {staging}: {failure}")
                self._discard_transport()
                if attempt == 3:
                    raise SSHError(f"{self.node}: the connection kept dropping while uploading {staging}")
                self._note(phase, "connection dropped during an upload; reconnecting", loud=True)

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            assert self._transport is not None
            self._sftp = _paramiko().SFTPClient.from_transport(self._transport)
        return self._sftp

    # -- logging ----------------------------------------------------------------------------------

    def _note(self, phase: str, message: str, *, loud: bool = False) -> None:
        self._log(f"[{phase}] {message}")
        if loud:
            console.progress(phase, self.node, message)
        else:
            console.debug(f"[{phase}] {self.node}: {message}")

    def _log(self, line: str) -> None:
        if self._log_path is None:
            return
        stamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
        with self._log_lock:
            self._log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # 0600 like the state file: the log names hosts, commands and their output.
            fd = os.open(self._log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(fd, "a", encoding="utf-8") as log:
                log.write(f"{stamp} {redact(line)}".replace("\n", "\n    ") + "\n")


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
