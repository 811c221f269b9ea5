"""Reaching a node: the address to dial, waiting while it boots, the SSH handshake with the host key
checked against the pinned one before anything is sent, and public-key authentication."""

from __future__ import annotations

import errno
import socket
import threading
import time
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from v6kube import console
from v6kube.errors import HostKeyMismatch, SSHError
from v6kube.ssh.hostkeys import _key_blob, _key_types_for, describe_key, same_key
from v6kube.ssh.nodelog import NodeLog
from v6kube.ssh.retries import (
    ATTEMPT_TIMEOUT,
    MAX_RETRY_DELAY,
    RETRY_ERRNOS,
    _NoRoute,
    _NotUpYet,
    _paramiko,
    _reason,
)
from v6kube.ssh.targets import SSHOptions, Target, _where, choose_address

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

_KEYS_LOCK = threading.Lock()
_LOADED_KEYS: dict[Path, Any] = {}  # private keys read once per process


class Dialer:
    """Opens transports to one node. Remembers the host key: the pinned one, or (trust on first use)
    the first one seen, which every reconnect must then present too."""

    def __init__(self, target: Target, options: SSHOptions, log: NodeLog):
        self.node = target.node
        self.target = target
        self.options = options
        self.log = log
        self.pinned = target.host_key
        self.seen: str | None = None
        self.tofu = False
        self.address: IPv6Address | IPv4Address | None = None
        if self.pinned is not None:
            _key_blob(self.pinned)  # a malformed pinned key is an error before any connect

    def connect(self, phase: str) -> paramiko.Transport:
        address = choose_address(self.target, self.options.address_family)
        self.address = address
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
                    self.log.note(phase, f"no IPv6 route to {where}; using the public IPv4 address {fallback}")
                    address = self.address = fallback
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
                    self.log.note(phase, f"waiting for SSH on {where} ({exc})", loud=True)
                    waited = True
                else:
                    self.log.note(phase, f"still waiting for SSH on {where} ({exc})")
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
        self.log.note(phase, f"connected to {where} as {self.options.user}")
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
        if self.pinned is not None:
            options = transport.get_security_options()
            preferred = [t for t in _key_types_for(self.pinned) if t in options.key_types]
            options.key_types = preferred + [t for t in options.key_types if t not in preferred]
        try:
            try:
                transport.start_client(timeout=attempt_timeout)
                server_key = transport.get_remote_server_key()
                seen = f"{server_key.get_name()} {server_key.get_base64()}"
                self._check_host_key(seen, where)  # before authenticating: a wrong server gets nothing
                _authenticate(transport, self.options, self.node)
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
        self.seen = seen
        if self.pinned is None:
            self.pinned = seen  # first use: from now on (reconnects) this key is the only one accepted
            self.tofu = True
        return transport

    def _check_host_key(self, seen: str, where: str) -> None:
        if self.pinned is None:
            if not self.options.trust_on_first_use:
                raise SSHError(f"{self.node}: no pinned host key for {where}; refusing to connect "
                               f"(the server offered {describe_key(seen)})",
                               hint="set the node's host_key in the cluster file, or set "
                               "ssh.trust_on_first_use: true to record the first key seen")
            console.warn(f"{self.node}: trusting host key {describe_key(seen)} on first use")
            self.log.write(f"trusting host key {describe_key(seen)} on first use")
            return
        if not same_key(self.pinned, seen):
            self.log.write(f"host key mismatch: pinned {describe_key(self.pinned)}, offered {describe_key(seen)}")
            raise HostKeyMismatch(self.node, describe_key(self.pinned), describe_key(seen))


def _authenticate(transport: paramiko.Transport, options: SSHOptions, node: str) -> None:
    paramiko = _paramiko()
    if options.private_key is not None:
        keys = [_private_key(options.private_key)]
    else:
        keys = list(paramiko.Agent().get_keys())
        if not keys:
            raise SSHError(f"{node}: no private key configured and the SSH agent holds no keys",
                           hint="set ssh.private_key, or add a key to the agent (ssh-add)")
    for key in keys:
        try:
            transport.auth_publickey(options.user, key)
            return
        except paramiko.BadAuthenticationType:
            raise
        except paramiko.AuthenticationException:
            continue
    raise paramiko.AuthenticationException(f"tried {len(keys)} key(s)")

def _private_key(path: Path) -> Any:
    paramiko = _paramiko()
    with _KEYS_LOCK:
        if path not in _LOADED_KEYS:
            try:
                _LOADED_KEYS[path] = paramiko.PKey.from_path(path)
            except paramiko.PasswordRequiredException:
                raise SSHError(f"the private key {path} is protected by a passphrase",
                               hint="load it into the SSH agent and set ssh.private_key: null") from None
            except (OSError, paramiko.SSHException) as exc:
                raise SSHError(f"cannot read the private key {path}: {exc}") from None
        return _LOADED_KEYS[path]
