"""The Equinix Metal (ex-Packet) API v1 on the shared HTTP layer: the token and the base URL.

The token comes only from METAL_AUTH_TOKEN, then PACKET_AUTH_TOKEN; it is a registered Secret and
travels only in the X-Auth-Token header (see providers/http.py for what else keeps it safe).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from v6kube.errors import AuthenticationError
from v6kube.providers.http import ApiClient, HeaderAuth
from v6kube.redact import Secret

DEFAULT_BASE_URL = "https://api.equinix.com/metal/v1"
TOKEN_VARIABLES = ("METAL_AUTH_TOKEN", "PACKET_AUTH_TOKEN")
URL_VARIABLE = "METAL_API_URL"


def token_from_env(environ: Mapping[str, str] | None = None) -> Secret:
    environ = os.environ if environ is None else environ
    for name in TOKEN_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return Secret(value)
    raise AuthenticationError(
        "no Equinix Metal API token: set METAL_AUTH_TOKEN (or PACKET_AUTH_TOKEN)",
        hint="create an API key in the Metal console and export METAL_AUTH_TOKEN=<key>",
    )


def base_url_from(api_url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """METAL_API_URL wins over the cluster file's provider.api_url, which wins over the default."""
    environ = os.environ if environ is None else environ
    return (environ.get(URL_VARIABLE) or api_url or DEFAULT_BASE_URL).rstrip("/")


class MetalClient(ApiClient):
    """The shared client with the Metal token in X-Auth-Token."""

    def __init__(self, token: Secret | str, base_url: str = DEFAULT_BASE_URL, **options: Any):
        token = token if isinstance(token, Secret) else Secret(token)
        super().__init__(base_url, auth=HeaderAuth("X-Auth-Token", token), service="the Metal API",
                         auth_hint="check METAL_AUTH_TOKEN (or PACKET_AUTH_TOKEN)",
                         url_hint="check the network and METAL_API_URL", **options)

    @classmethod
    def from_env(cls, api_url: str | None = None, environ: Mapping[str, str] | None = None,
                 **options: Any) -> "MetalClient":
        return cls(token_from_env(environ), base_url_from(api_url, environ), **options)
