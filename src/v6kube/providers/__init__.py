"""Providers: where servers, their IPv6 addresses and BGP peers come from (DESIGN section 2).

`make_provider(cluster)` imports only the module the cluster file names, so the static provider
never loads the HTTP client and a new provider is one new module plus one branch here.
"""

from __future__ import annotations

from typing import Any

from v6kube.config import Cluster
from v6kube.errors import UsageError
from v6kube.providers.base import Provider


def make_provider(cluster: Cluster, **options: Any) -> Provider:
    """The provider for a cluster file.

    Options go to the provider: for packet `client`, `api_url`, `environ`, `client_options`,
    `ssh_public_key`, `poll_interval`, `sleep`, `clock`, ...; for static only `environ`.
    """
    kind = cluster.provider.type
    if kind == "packet":
        from v6kube.providers import packet

        return packet.from_cluster(cluster, **options)
    if kind == "static":
        from v6kube.providers import static

        return static.StaticProvider(cluster, environ=options.get("environ"))
    raise UsageError(f"unknown provider type {kind!r}")


def planned_calls(cluster: Cluster) -> list[dict[str, str]]:
    """The provider API calls `create` would make, for `v6kube plan` (none for static)."""
    if cluster.provider.type == "packet":
        from v6kube.providers import packet

        return packet.planned_calls(cluster)
    return []
