"""phoenixNAP servers of one cluster: find by tag, find-then-create on the cluster's public
network with a fixed IPv6 address from its /64, wait until powered on, deprovision.

`GET /servers?tag=...` is one unpaged answer (one snapshot), so a server missing from it is
missing; a server whose id the state recorded is looked up by that id first. Each server's
address is derived from its hostname (stable across runs, no allocation race between parallel
creates); the gateway is the block's first address and router advertisements are on.
"""

from __future__ import annotations

import base64
import hashlib
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from v6kube import console
from v6kube.errors import NotFound, PermissionDenied, ProviderError, ProvisioningFailed, Unprocessable, UsageError
from v6kube.providers.base import CONTROL_PLANE, WORKER, Server, ServerSpec, run_parallel
from v6kube.providers.hostkeys import cloud_config, key_blob
from v6kube.providers.http import post_or_find, wait_until_ready
from v6kube.providers.phoenixnap.network import CLUSTER_TAG, ROLE_TAG, tag_value

if TYPE_CHECKING:
    from v6kube.providers.phoenixnap.provider import PhoenixnapProvider

READY, FAILED = "powered-on", "error"
PENDING = frozenset({"creating", "rebooting", "resetting", "reinstating", "powered-off"})
GONE = frozenset({"deleting"})


def server_address(block: IPv6Network, hostname: str) -> IPv6Address:
    """A stable address for a hostname in the servers' /64, away from the gateway at ::1."""
    digest = int.from_bytes(hashlib.sha256(hostname.encode()).digest()[:6], "big")
    return block[0x10000 + digest]


def _named(name: Any, server_id: str) -> str:
    return f"{getattr(name, 'hostname', name)} (server {server_id})"


class Servers:
    def __init__(self, provider: "PhoenixnapProvider"):
        self.p = provider

    def list(self) -> dict[str, dict]:
        servers = self.p.clients.bmc.get("/servers", {"tag": f"{CLUSTER_TAG}.{self.p.cluster_name}"}) or []
        found: dict[str, dict] = {}
        for server in servers:
            if tag_value(server.get("tags"), CLUSTER_TAG) != self.p.cluster_name or server.get("status") in GONE:
                continue
            name = server.get("hostname") or ""
            if name in found:
                raise ProviderError(f"two servers named {name!r} belong to cluster {self.p.cluster_name}: "
                                    f"{found[name]['id']} and {server['id']}",
                                    hint="deprovision the one that should not exist and run the command again")
            found[name] = server
        return found

    def to_server(self, server: Mapping[str, Any], pin: str | None = None) -> Server:
        block = self.p.network.subnets(create=False).get("servers")  # a find never creates
        ips = [ip for net in ((server.get("networkConfiguration") or {}).get("publicNetworkConfiguration") or {})
               .get("publicNetworks") or [] for ip in net.get("ips") or []]
        v6 = next((IPv6Address(ip) for ip in ips if ":" in ip and "-" not in ip
                   and (block is None or IPv6Address(ip) in block)), None)
        v4 = next((ip_address(ip) for ip in server.get("publicIpAddresses") or [] if "." in ip), None)
        return Server(
            id=server["id"], hostname=server.get("hostname") or "",
            role=CONTROL_PLANE if tag_value(server.get("tags"), ROLE_TAG) == CONTROL_PLANE else WORKER,
            state=server.get("status") or "unknown",
            ipv6=v6, ipv6_gateway=IPv6Network((v6, 64), strict=False)[1] if v6 else None,
            ipv6_prefixlen=64 if v6 else None,
            ipv4_public=v4 if isinstance(v4, IPv4Address) else None, host_public_key=pin,
        )

    # --- ensure --------------------------------------------------------------------------------

    def ensure(self, specs: Sequence[ServerSpec], recorded_ids: Mapping[str, str] | None = None) -> list[Server]:
        for spec in specs:
            if spec.role not in (CONTROL_PLANE, WORKER):
                raise UsageError(f"{spec.name}: unknown role {spec.role!r}")
            cloud_config(spec)
        existing = self.list()
        for spec in specs:
            if spec.name not in existing and spec.name in (recorded_ids or {}):
                found = self._recorded(spec.name, recorded_ids[spec.name])
                if found is not None:
                    existing[spec.name] = found
        pins = {spec.name: spec.host_public_key for spec in specs}
        for spec in specs:
            if spec.name in existing:
                server = existing[spec.name]
                console.progress("phoenixnap", spec.name, f"exists (server {server['id']}, {server.get('status')})")
                pins[spec.name] = self._existing_pin(spec, spec.name in (recorded_ids or {}))
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            network = self.p.network.ensure_network()
            key_ids = self.p.ssh_key_ids()
            created = run_parallel(lambda spec: self._create(spec, network, key_ids), missing, self.p.max_workers,
                                   "phoenixnap")
            existing.update({spec.name: server for spec, server in zip(missing, created)})
        return [self.to_server(existing[spec.name], pins[spec.name]) for spec in specs]

    def _existing_pin(self, spec: ServerSpec, recorded: bool) -> str | None:
        """phoenixNAP never shows user data back (write-only), so only the state knows which key an
        existing server was created with: a server the state does not record gets no pin (a key
        generated now was never on it), and the caller falls back to the cluster file or TOFU."""
        if recorded:
            return spec.host_public_key
        console.warn(f"{spec.name}: the server exists but the state does not record it; its host key "
                     "must come from the cluster file or trust on first use")
        return None

    def _recorded(self, hostname: str, server_id: str) -> dict | None:
        try:
            server = self.p.clients.bmc.get(f"/servers/{server_id}", what=_named(hostname, server_id))
        except NotFound:
            console.progress("phoenixnap", hostname, f"server {server_id} from the state is gone; creating a new one")
            return None
        except PermissionDenied:
            raise ProvisioningFailed(f"{_named(hostname, server_id)}: recorded in the state but not listed, and the "
                                     "API answers 403 for it; it may still exist, so no second one is created",
                                     hint="deprovision it first (v6kube destroy does so by id), then run create again") from None
        if server.get("status") in GONE:
            return None
        return server

    def _body(self, spec: ServerSpec, network: dict, key_ids: list[str]) -> dict:
        config = self.p.config
        address = server_address(IPv6Network(self.p.network.ensure_blocks()["servers"]["cidr"]), spec.name)
        body: dict[str, Any] = {
            "hostname": spec.name, "description": f"v6kube cluster {self.p.cluster_name}",
            "os": config.os, "type": config.server_type, "location": config.location,
            "installDefaultSshKeys": not key_ids, "pricingModel": config.pricing_model,
            "networkType": "PUBLIC_AND_PRIVATE",
            "tags": [{"name": CLUSTER_TAG, "value": self.p.cluster_name}, {"name": ROLE_TAG, "value": spec.role}],
            "networkConfiguration": {"publicNetworkConfiguration": {
                "publicNetworks": [{"id": network["id"], "ips": [str(address)]}]}},
        }
        if key_ids:
            body["sshKeyIds"] = key_ids
        userdata = cloud_config(spec)
        if userdata:
            body["osConfiguration"] = {"cloudInit": {"userData": base64.b64encode(userdata.encode()).decode()}}
        return body

    def _create(self, spec: ServerSpec, network: dict, key_ids: list[str]) -> dict:
        body = self._body(spec, network, key_ids)
        console.progress("phoenixnap", spec.name, f"creating ({self.p.config.server_type} in {self.p.config.location})")
        server = post_or_find(self.p.clients.bmc, lambda: self.p.clients.bmc.post("/servers", body, what=spec.name),
                              lambda: self.list().get(spec.name), f"{spec.name}: create server",
                              attempts=self.p.create_attempts, sleep=self.p.sleep)
        console.progress("phoenixnap", spec.name, f"created (server {server['id']}, {server.get('status')})")
        return server

    # --- wait ----------------------------------------------------------------------------------

    def wait(self, servers: Sequence[Server], timeout: float) -> list[Server]:
        return wait_until_ready(servers, lambda done, last: self._poll(servers, done, last), who="phoenixnap",
                                goal="power on", reached="powered on", things="servers", timeout=timeout,
                                interval=self.p.poll_interval, clock=self.p.clock, sleep=self.p.sleep,
                                named=lambda s: _named(s, s.id))

    def _poll(self, servers: Sequence[Server], done: dict[str, Server], last: dict[str, str]) -> None:
        listed = {s["id"]: s for s in self.list().values()}
        for server in [s for s in servers if s.id not in done]:
            found = listed.get(server.id) or self._lost(server)
            status = found.get("status") or "unknown"
            if status != last.get(server.id):
                last[server.id] = status
                console.progress("phoenixnap", server.hostname, status)
            if status == FAILED:
                raise ProvisioningFailed(f"{_named(server, server.id)} ended in error",
                                         hint=f"deprovision server {server.id} (v6kube destroy) and run create again")
            ready = self.to_server(found, server.host_public_key)
            if status == READY and ready.ipv6 is not None:
                done[server.id] = ready
                console.progress("phoenixnap", server.hostname, f"ready: {ready.ipv6}/64 via {ready.ipv6_gateway}")
            elif status not in PENDING and status != READY:
                raise ProvisioningFailed(f"{_named(server, server.id)} is {status}, not provisioning")

    def _lost(self, server: Server) -> dict:
        try:
            return self.p.clients.bmc.get(f"/servers/{server.id}", what=_named(server, server.id))
        except NotFound:
            raise ProvisioningFailed(f"{_named(server, server.id)} no longer exists",
                                     hint="run create again to make a new one") from None

    # --- delete --------------------------------------------------------------------------------

    def delete(self, servers: Sequence[Server]) -> None:
        """Deprovision by id (a Server from the state is enough); gone or already deleting = success.
        A deprovision that failed ambiguously is looked up before it is sent again."""
        def gone(server: Server) -> bool | None:
            try:
                found = self.p.clients.bmc.get(f"/servers/{server.id}", what=_named(server, server.id))
            except NotFound:
                return True
            return True if found.get("status") in GONE else None

        def deprovision(server: Server) -> None:
            def post() -> bool:
                try:
                    self.p.clients.bmc.post(f"/servers/{server.id}/actions/deprovision", {"deleteIpBlocks": False},
                                            what=_named(server, server.id))
                except NotFound:
                    console.progress("phoenixnap", server.hostname, f"server {server.id} already gone")
                    return True
                except Unprocessable:  # 409: already deprovisioning
                    if not gone(server):
                        raise
                return True

            post_or_find(self.p.clients.bmc, post, lambda: gone(server), f"{_named(server, server.id)}: deprovision",
                         attempts=self.p.create_attempts, sleep=self.p.sleep)
            console.progress("phoenixnap", server.hostname, f"deprovisioned server {server.id}")

        run_parallel(deprovision, list(servers), self.p.max_workers, "phoenixnap")


def same_key(text: str | None, public_key: str) -> bool:
    try:
        return bool(text) and key_blob(text) == key_blob(public_key)
    except ValueError:
        return False
