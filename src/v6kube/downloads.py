"""What v6kube downloads itself, on the operator's machine, through a checksummed cache.

github.com has no IPv6, so an IPv6-only node cannot fetch calicoctl or the Calico manifests: they
are fetched here and uploaded over SFTP. Every file lives in the cache (`V6KUBE_CACHE_DIR`, else
`$XDG_CACHE_HOME/v6kube/`) with its SHA-256 beside it (`<file>.sha256`); a cached file that
matches is never fetched again, so a copied cache serves a machine without internet.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from v6kube import console
from v6kube.errors import V6kubeError

CALICO_RELEASES = "https://github.com/projectcalico/calico/releases/download"
CALICO_MANIFESTS = "https://raw.githubusercontent.com/projectcalico/calico"
TIMEOUT = (10, 120)  # connect, read (seconds)


class DownloadError(V6kubeError):
    """A download failed or its checksum did not match."""


@dataclass(frozen=True)
class Artifact:
    """A file to fetch: where from, and where its published SHA-256 comes from (None: the URL
    names an immutable tag, and the cache records the checksum of the first download)."""

    name: str  # the cache path, e.g. "calico/v3.30.3/calicoctl-linux-amd64"
    url: str
    sums_url: str | None = None  # a SHA256SUMS file listing `basename(url)`


def _base(variable: str, default: str) -> str:
    return os.environ.get(variable, default).rstrip("/")


def calicoctl(version: str, arch: str) -> Artifact:
    base = f"{_base('V6KUBE_CALICO_RELEASES_URL', CALICO_RELEASES)}/v{version}"
    return Artifact(f"calico/v{version}/calicoctl-linux-{arch}", f"{base}/calicoctl-linux-{arch}",
                    f"{base}/SHA256SUMS")


def calico_manifest(version: str, name: str) -> Artifact:
    """operator-crds.yaml or tigera-operator.yaml of a Calico release (pinned by its tag)."""
    base = _base("V6KUBE_CALICO_MANIFESTS_URL", CALICO_MANIFESTS)
    return Artifact(f"calico/v{version}/{name}", f"{base}/v{version}/manifests/{name}")


def cache_dir() -> Path:
    if os.environ.get("V6KUBE_CACHE_DIR"):
        return Path(os.environ["V6KUBE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "v6kube"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(artifact: Artifact) -> bytes:
    """The artifact's bytes: from the cache when its checksum matches, else downloaded,
    checked against the published checksum and cached. A mismatch is refused."""
    path = cache_dir() / artifact.name
    sums = path.with_name(path.name + ".sha256")
    if path.is_file() and sums.is_file():
        data = path.read_bytes()
        if sha256(data) == sums.read_text().split()[0]:
            return data
        console.warn(f"{path}: cached copy does not match its checksum; fetching it again")
    expected = _published_sum(artifact) if artifact.sums_url else None
    console.info(f"downloading {artifact.url}")
    data = _get(artifact.url)
    got = sha256(data)
    if expected is not None and got != expected:
        raise DownloadError(f"{artifact.url}: SHA-256 {got} does not match the published {expected}",
                            hint="the download was corrupted or tampered with; nothing was installed")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    sums.write_text(f"{got}  {path.name}\n")
    return data


def _published_sum(artifact: Artifact) -> str:
    assert artifact.sums_url is not None
    wanted = artifact.url.rsplit("/", 1)[1]
    text = _get(artifact.sums_url).decode("utf-8", "replace")
    for line in text.splitlines():
        match = re.fullmatch(r"([0-9a-fA-F]{64})\s+\*?(?:\./)?(\S+)", line.strip())
        if match and match.group(2) == wanted:
            return match.group(1).lower()
    raise DownloadError(f"{artifact.sums_url} lists no checksum for {wanted}",
                        hint="check calico.version: the release may not publish this file")


def _get(url: str) -> bytes:
    import requests

    try:
        response = requests.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot download {url}: {type(exc).__name__}",
                            hint="this machine needs to reach it, or copy a filled cache into "
                                 f"{cache_dir()} (V6KUBE_CACHE_DIR)") from None
    if response.status_code != 200:
        raise DownloadError(f"cannot download {url}: HTTP {response.status_code}",
                            hint="check calico.version")
    return response.content


def planned_downloads(calico_version: str, arch: str = "amd64") -> list[Artifact]:
    """Everything create fetches on this machine, for `v6kube plan`."""
    return [calico_manifest(calico_version, "operator-crds.yaml"),
            calico_manifest(calico_version, "tigera-operator.yaml"),
            calicoctl(calico_version, arch)]
