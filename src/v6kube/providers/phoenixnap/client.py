"""phoenixNAP's APIs on the shared HTTP layer: OAuth2 client credentials and one client per API.

Credentials come only from PNAP_CLIENT_ID / PNAP_CLIENT_SECRET (never the cluster file). The
access token is fetched on first use and again shortly before it expires (and once after a 401:
a token can be revoked early); the secret and every token are registered Secrets, sent only to
the token URL and in the Authorization header.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests

import v6kube
from v6kube.errors import AuthenticationError, UsageError
from v6kube.providers.api_errors import api_messages
from v6kube.providers.http import ApiClient, is_loopback
from v6kube.redact import Secret

API_URL = "https://api.phoenixnap.com"
AUTH_URL = "https://auth.phoenixnap.com/auth/realms/BMC/protocol/openid-connect/token"
ID_VARIABLE, SECRET_VARIABLE = "PNAP_CLIENT_ID", "PNAP_CLIENT_SECRET"
URL_VARIABLE, AUTH_URL_VARIABLE = "PNAP_API_URL", "PNAP_AUTH_URL"
REFRESH_MARGIN = 60.0  # seconds before expiry at which a token is replaced


def credentials_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, Secret]:
    environ = os.environ if environ is None else environ
    client_id = environ.get(ID_VARIABLE, "").strip()
    secret = environ.get(SECRET_VARIABLE, "").strip()
    missing = [name for name, value in ((ID_VARIABLE, client_id), (SECRET_VARIABLE, secret)) if not value]
    if missing:
        raise AuthenticationError(f"no phoenixNAP API credentials: set {' and '.join(missing)}",
                                  hint="create an application in the BMC portal (API Credentials) and export "
                                  f"{ID_VARIABLE} and {SECRET_VARIABLE}")
    return client_id, Secret(secret)


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"invalid {what} {url!r}: expected https://host/path")
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise UsageError(f"refusing to send API credentials over plain HTTP to {parts.hostname}",
                         hint="use an https:// URL (plain http is allowed only to this machine, e.g. a test fake)")
    return url.rstrip("/")


class OAuthToken(requests.auth.AuthBase):
    """Bearer tokens from the client-credentials grant, refreshed before they expire."""

    def __init__(self, client_id: str, secret: Secret, token_url: str = AUTH_URL, *,
                 clock: Callable[[], float] = time.time, timeout: tuple[float, float] = (10.0, 30.0)):
        self._client_id, self._secret = client_id, secret
        self.token_url = _check_url(token_url, "token URL")
        self.clock, self.timeout = clock, timeout
        self._lock = threading.Lock()
        self._token: Secret | None = None
        self._expires = 0.0
        self.fetched = 0  # how many tokens were fetched (tests, benchmarks)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"v6kube/{v6kube.__version__}"

    def __repr__(self) -> str:
        return "OAuthToken('***')"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer " + self.token().reveal()
        return request

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def token(self) -> Secret:
        with self._lock:
            if self._token is None or self.clock() >= self._expires - REFRESH_MARGIN:
                self._token, lifetime = self._fetch()
                self._expires = self.clock() + lifetime
            return self._token

    def _fetch(self) -> tuple[Secret, float]:
        failure = None
        for _ in range(3):
            try:
                response = self._session.post(
                    self.token_url, data={"grant_type": "client_credentials", "scope": "bmc"},
                    auth=(self._client_id, self._secret.reveal()), timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                failure = f"no answer ({type(exc).__name__})"
                continue
            if response.status_code >= 500:
                failure = f"{response.status_code}"
                continue
            break
        else:
            raise AuthenticationError(f"phoenixNAP token endpoint failed: {failure}",
                                      hint="check the network and PNAP_AUTH_URL; run the command again")
        status, content = response.status_code, response.content
        try:
            document = json.loads(content) if status == 200 and content else None
        except ValueError:
            document = None  # a proxy's page, not a token: reported below like a refusal
        if status != 200 or not isinstance(document, dict) or not document.get("access_token"):
            detail = "; ".join(api_messages(content)) or str(status)
            raise AuthenticationError(f"phoenixNAP refused the client credentials: {status} {detail}",
                                      hint=f"check {ID_VARIABLE} and {SECRET_VARIABLE}")
        self.fetched += 1
        return Secret(document["access_token"]), float(document.get("expires_in") or 300)


@dataclass
class PnapClients:
    """One client per API, all with the same token."""

    bmc: ApiClient
    networks: ApiClient
    ips: ApiClient
    auth: OAuthToken

    @classmethod
    def create(cls, client_id: str, secret: Secret, api_url: str = API_URL, auth_url: str = AUTH_URL,
               **options: Any) -> "PnapClients":
        root = _check_url(api_url, "phoenixNAP API URL")
        auth = OAuthToken(client_id, secret, auth_url, clock=options.get("clock", time.time))

        def client(path: str, name: str) -> ApiClient:
            return ApiClient(f"{root}/{path}", auth=auth, service=f"the phoenixNAP {name} API",
                             auth_hint=f"check {ID_VARIABLE} and {SECRET_VARIABLE}",
                             url_hint=f"check the network and {URL_VARIABLE}", **options)

        return cls(client("bmc/v1", "BMC"), client("networks/v1", "networks"), client("ips/v1", "IP"), auth)

    @classmethod
    def from_env(cls, api_url: str | None = None, environ: Mapping[str, str] | None = None,
                 **options: Any) -> "PnapClients":
        environ = os.environ if environ is None else environ
        client_id, secret = credentials_from_env(environ)
        return cls.create(client_id, secret, environ.get(URL_VARIABLE) or api_url or API_URL,
                          environ.get(AUTH_URL_VARIABLE) or AUTH_URL, **options)

    def all(self) -> tuple[ApiClient, ...]:
        return (self.bmc, self.networks, self.ips)
