"""Providers: where servers, their IPv6 addresses and BGP peers come from (DESIGN section 2).

`make_provider(cluster)` imports only the module the cluster file names, so the static provider
never loads the HTTP client and a new provider is one new module plus one branch here.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from v6kube.config import Cluster
from v6kube.errors import UsageError
from v6kube.providers.base import Provider

MODULES = {"packet": "v6kube.providers.packet", "static": "v6kube.providers.static",
           "phoenixnap": "v6kube.providers.phoenixnap"}


def _module(cluster: Cluster) -> Any:
    kind = cluster.provider.type
    if kind not in MODULES:
        raise UsageError(f"unknown provider type {kind!r}")
    return import_module(MODULES[kind])


def make_provider(cluster: Cluster, **options: Any) -> Provider:
    """The provider for a cluster file.

    Options go to the provider: for packet `client`, `api_url`, `environ`, `client_options`,
    `ssh_public_key`, `poll_interval`, `sleep`, `clock`, ...; for phoenixnap the same plus
    `auth_url`; for static only `environ`.
    """
    return _module(cluster).from_cluster(cluster, **options)


def planned_calls(cluster: Cluster) -> list[dict[str, str]]:
    """The provider API calls `create` would make, for `v6kube plan` (none for static)."""
    return _module(cluster).planned_calls(cluster)


def plan_phases(cluster: Cluster) -> dict[str, str]:
    """What the provider phases (`provision`, `bgp`) do with this cluster's provider: name -> summary."""
    return _module(cluster).plan_phases(cluster)
