"""SSH keys as text: generate a server's host key locally, and fingerprint a public key.

The caller generates each server's host key before creating it, pins the public half in the state
file and hands the private half to the provider (cloud-init installs it: `cloud_config`, the same
user data for every provider), so the very first SSH connection is already verified. Nothing here
touches the network or an SSH server.
"""

from __future__ import annotations

import base64
import hashlib

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from v6kube.errors import UsageError
from v6kube.providers.base import ServerSpec
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


def cloud_config(spec: ServerSpec) -> str | None:
    """cloud-init userdata that installs the server's pinned host key (None without one).

    `ssh_genkeytypes: []` stops cloud-init from generating other host key types, so the server
    offers only the key we pinned.
    """
    if spec.host_private_key is None and spec.host_public_key is None:
        return None
    if spec.host_private_key is None or spec.host_public_key is None:
        raise UsageError(f"{spec.name}: a host key needs both its public and private half")
    if not spec.host_public_key.startswith("ssh-ed25519 "):
        raise UsageError(f"{spec.name}: the pinned host key must be ssh-ed25519")
    document = {
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],
        "ssh_keys": {
            "ed25519_private": spec.host_private_key.reveal().strip() + "\n",
            "ed25519_public": " ".join(spec.host_public_key.split()[:2]),
        },
    }
    return "#cloud-config\n" + yaml.safe_dump(document, default_flow_style=False, sort_keys=False)


def userdata_host_key(userdata: str | None) -> str | None:
    """The pinned public key back from a device's userdata (useful when the state file is lost)."""
    if not userdata or not userdata.startswith("#cloud-config"):
        return None
    try:
        document = yaml.safe_load(userdata)
        key = document["ssh_keys"]["ed25519_public"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    if not isinstance(key, str) or not key.startswith("ssh-ed25519 "):
        return None
    try:
        key_blob(key)
    except ValueError:
        return None
    return key
