"""Host keys: fingerprints, comparison, and pinning in the state the keys accepted on first use."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING, Mapping

from v6kube.errors import SSHError

if TYPE_CHECKING:  # pragma: no cover
    from v6kube.ssh.connection import SSHConnection
    from v6kube.state import State


def _key_blob(host_key: str) -> tuple[str, bytes]:
    parts = host_key.split()
    if len(parts) < 2:
        raise SSHError(f"not an SSH public key: {host_key!r}", hint='expected "ssh-ed25519 AAAA..."')
    try:
        return parts[0], base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise SSHError(f"not an SSH public key (bad base64): {host_key!r}") from None


def fingerprint(host_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line, e.g. "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"."""
    _, blob = _key_blob(host_key)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def describe_key(host_key: str) -> str:
    return f"{host_key.split()[0]} {fingerprint(host_key)}"


def same_key(a: str, b: str) -> bool:
    """Whether two key lines hold the same key (the blob names the type; comments are ignored)."""
    return _key_blob(a)[1] == _key_blob(b)[1]


def _key_types_for(host_key: str) -> list[str]:
    """Host key algorithms to offer first, so a server with several keys shows the pinned one."""
    key_type = host_key.split()[0]
    if key_type == "ssh-rsa":
        return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    return [key_type]


def record_host_keys(state: State, connections: Mapping[str, SSHConnection]) -> list[str]:
    """Pin in the state every key accepted on first use, so later runs accept only that key.
    Returns the nodes recorded; the caller saves the state."""
    recorded = []
    for name, conn in connections.items():
        if conn.trusted_on_first_use and conn.host_key and state.host_key(name) is None:
            state.pin_host_key(name, conn.host_key, "trust-on-first-use")
            recorded.append(name)
    return recorded
