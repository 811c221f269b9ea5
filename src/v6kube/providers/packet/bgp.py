"""Local BGP on a Metal project: enable it once, one IPv6 session per active device, neighbours.

Pitfall numbers refer to reference/metal-api.md section 7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from v6kube import console
from v6kube.errors import ProviderError, ProvisioningFailed, Unprocessable
from v6kube.providers.base import BGPNeighbor, BGPProject, Server, password_from_env, run_parallel
from v6kube.providers.http import AMBIGUOUS, post_or_find
from v6kube.providers.packet.devices import reading, v6, v6_routes, validate_md5_password
from v6kube.redact import Secret

if TYPE_CHECKING:
    from v6kube.providers.packet.provider import PacketProvider

LOCAL_ASN = 65000  # Local BGP always uses the private ASN 65000


class Bgp:
    def __init__(self, provider: "PacketProvider"):
        self.p = provider
        self.project_facts: BGPProject | None = None

    def _wanted_password(self) -> Secret | None:
        password = password_from_env(self.p.config.bgp_password_env, self.p.environ)
        if password is not None:
            validate_md5_password(password.reveal(), self.p.config.bgp_password_env)
        return password

    def _config(self) -> dict | None:
        """The project's BGP config when enabled. The GET answers 200 even when unset (pitfall 2)."""
        config = self.p.client.get(f"/projects/{self.p.project}/bgp-config", what=f"project {self.p.project}") or {}
        if config.get("id") and config.get("status") != "disabled":
            return config
        return None

    def ensure(self) -> BGPProject:
        wanted = self._wanted_password()  # validated before any call
        project = self.p.project
        config = self._config()
        if config is None:
            body: dict[str, Any] = {"deployment_type": "local", "asn": LOCAL_ASN}
            if wanted:
                body["md5"] = wanted.reveal()
            console.progress("packet", None, f"enabling local BGP on project {project} (ASN {LOCAL_ASN})")

            def enable() -> dict | None:
                try:
                    self.p.client.post(f"/projects/{project}/bgp-configs", body, what=f"project {project}")
                except Unprocessable:
                    found = self._config()  # someone may have enabled it meanwhile
                    if found is None:
                        raise
                    return found
                return None

            # The POST answers 204: unless a lookup already found it, read what the project now has.
            config = post_or_find(self.p.client, enable, self._config, f"enable BGP on project {project}",
                                  attempts=self.p.create_attempts, sleep=self.p.sleep) or self._config()
            if config is None:
                raise ProviderError(f"BGP on project {project} is still not enabled after enabling it",
                                    hint="run the command again; if it persists, enable Local BGP in the Metal console")
        elif wanted and config.get("md5") != wanted.reveal():
            # BGP settings are immutable once enabled (pitfall 6): the project's password is the truth.
            have = "its own password" if config.get("md5") else "no password"
            console.warn(f"BGP is already enabled on project {project} with {have}; the password in "
                         f"{self.p.config.bgp_password_env} is not used (BGP settings cannot change once enabled)")
        md5 = config.get("md5")
        self.project_facts = BGPProject(
            local_asn=int(config.get("asn") or LOCAL_ASN),
            password=Secret(md5) if md5 else None,
            max_prefix=int(config.get("max_prefix") or 10),
        )
        return self.project_facts

    def ensure_sessions(self, servers: Sequence[Server]) -> dict[str, BGPNeighbor]:
        """Sessions in parallel, then one neighbour poll loop for all servers."""
        for server in servers:  # the API takes sessions only for active devices (pitfall 4)
            if server.state != "active":
                raise ProviderError(f"{server.hostname} (device {server.id}): a BGP session needs an active "
                                    f"server, not {server.state!r}", hint="wait for the servers to be active first")
        run_parallel(self._ensure_session, list(servers), self.p.max_workers, "packet")
        return self.wait_neighbors(servers)

    def _ensure_session(self, server: Server) -> None:
        path = f"/devices/{server.id}/bgp/sessions"
        what = f"{server.hostname} (device {server.id})"

        def find() -> dict | None:
            sessions = (self.p.client.get(path, what=what) or {}).get("bgp_sessions") or []
            return next((s for s in sessions if s.get("address_family") == "ipv6"), None)

        def create() -> dict:
            try:
                return self.p.client.post(path, {"address_family": "ipv6", "default_route": False}, what=what)
            except Unprocessable as exc:
                if any("already has session" in m for m in exc.errors):
                    return {"address_family": "ipv6"}  # pitfall 3: a duplicate means it exists
                raise

        if find() is None:
            post_or_find(self.p.client, create, find, f"{what}: create BGP session", attempts=self.p.create_attempts, sleep=self.p.sleep)
            console.progress("packet", server.hostname, "IPv6 BGP session created")

    def wait_neighbors(self, servers: Sequence[Server]) -> dict[str, BGPNeighbor]:
        """Neighbour data stays empty for a while after the session is created (pitfall 4):
        read every pending server's neighbours, then sleep once per interval, until the deadline."""
        deadline = self.p.clock() + self.p.neighbor_timeout
        found: dict[str, BGPNeighbor] = {}
        while True:
            pending = [s for s in servers if s.hostname not in found]
            for server, neighbor in zip(pending, run_parallel(self._read_neighbor, pending, self.p.max_workers)):
                if neighbor is not None:
                    found[server.hostname] = neighbor
            if len(found) == len(servers):
                return {s.hostname: found[s.hostname] for s in servers}
            remaining = deadline - self.p.clock()
            if remaining <= 0:
                late = ", ".join(f"{s.hostname} (device {s.id})" for s in servers if s.hostname not in found)
                raise ProvisioningFailed(f"no IPv6 BGP neighbour data after {self.p.neighbor_timeout:g}s for {late}",
                                         hint="check that the devices have IPv6 BGP sessions, then run the command again")
            self.p.sleep(min(self.p.neighbor_interval, remaining))

    def _read_neighbor(self, server: Server) -> BGPNeighbor | None:
        what = f"{server.hostname} (device {server.id})"
        try:
            document = self.p.client.get(f"/devices/{server.id}/bgp/neighbors", what=what) or {}
        except AMBIGUOUS as exc:
            console.warn(f"reading BGP neighbours failed ({exc}); trying again")
            return None
        for entry in document.get("bgp_neighbors") or []:
            if entry.get("address_family") == 6 and entry.get("peer_ips"):
                with reading(f"{what}'s BGP neighbours"):
                    return self._neighbor(entry)
        return None

    def _neighbor(self, entry: Mapping[str, Any]) -> BGPNeighbor:
        password = entry.get("md5_password") if entry.get("md5_enabled") else None
        if password is None and self.project_facts is not None and self.project_facts.password:
            password = self.project_facts.password.reveal()
        return BGPNeighbor(
            peer_ips=tuple(v6(ip) for ip in entry["peer_ips"]),
            peer_asn=int(entry["peer_as"]),
            local_asn=int(entry.get("customer_as") or LOCAL_ASN),
            local_ip=v6(entry["customer_ip"]) if entry.get("customer_ip") else None,
            multihop=bool(entry.get("multihop", True)),
            password=Secret(password) if password else None,
            routes_in=v6_routes(entry.get("routes_in") or []),
        )
