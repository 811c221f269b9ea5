"""SSH keys as text: generate a server's host key locally, and fingerprint a public key.

The caller generates each server's host key before creating it, pins the public half in the state
file and hands the private half to the provider (cloud-init installs it), so the very first SSH
connection is already verified. Nothing here touches the network or an SSH server.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from v6kube.redact import Secret


def generate_host_key() -> tuple[str, Secret]:
    """A new ed25519 host key: ("ssh-ed25519 AAAA...", Secret(OpenSSH private key PEM))."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode("ascii")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode("ascii"), Secret(private)


def key_blob(public_key: str) -> bytes:
    """The decoded key body of an OpenSSH public key line ("type base64 [comment]")."""
    parts = public_key.split()
    if len(parts) < 2:
        raise ValueError("not an OpenSSH public key line")
    try:
        return base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError("not an OpenSSH public key line (bad base64)") from None


def md5_fingerprint(public_key: str) -> str:
    """The colon-separated MD5 fingerprint, as the Metal API shows it ("aa:bb:...")."""
    digest = hashlib.md5(key_blob(public_key), usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def sha256_fingerprint(public_key: str) -> str:
    """"SHA256:..." as ssh-keygen -l prints it."""
    digest = hashlib.sha256(key_blob(public_key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
