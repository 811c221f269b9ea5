"""The Packet / Equinix Metal provider. Every operation is find-then-create and safe to repeat.

Ownership: a device belongs to the cluster when it carries the tag `v6kube-cluster:<name>` (plus
`v6kube` and `v6kube-role:<role>`). The API declares tags as free strings; we keep to lower-case
letters, digits, '-' and ':' as cluster-api-provider-packet does (`cluster-api-provider-packet:cluster-id:<name>`).

Addresses requested for each device: the mandatory private IPv4, a public IPv6 (the node's
address; its /127 comes from the project's /56 in the metro) and, unless provider.public_ipv4 is
false, a public IPv4, so an operator without IPv6 can still SSH in (ssh.address_family
auto/ipv4). The cluster itself never uses IPv4.

Reference: shared/reference/metal-api.md (pitfall numbers below refer to its section 7).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import yaml

from v6kube import console
from v6kube.config import Cluster
from v6kube.config import PacketProvider as PacketConfig
from v6kube.errors import NotFound, PermissionDenied, ProviderError, ProvisioningFailed, RateLimited, \
    ServerError, Unprocessable, UsageError
from v6kube.providers.base import CONTROL_PLANE, WORKER, BGPNeighbor, BGPProject, Server, ServerSpec, \
    password_from_env
from v6kube.providers.hostkeys import key_blob, md5_fingerprint
from v6kube.providers.metal_api import ConnectionFailed, MetalClient, base_url_from, token_from_env
from v6kube.redact import Secret

T = TypeVar("T")

LOCAL_ASN = 65000  # Local BGP always uses the private ASN 65000
MD5_RULE = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)[a-zA-Z\d]{10,20}$")
OWNER_TAG = "v6kube"
GONE_STATES = frozenset({"deprovisioning", "deleted"})
PENDING_STATES = frozenset({"queued", "provisioning", "reinstalling", "powering_on"})
# Failures after which a POST may or may not have happened: look before trying again. A 429
# counts too: nothing in the API's contract promises it was refused before being acted on.
AMBIGUOUS = (ServerError, ConnectionFailed, RateLimited)
TRANSIENT = (ServerError, ConnectionFailed, RateLimited)


def cluster_tag(cluster_name: str) -> str:
    return f"v6kube-cluster:{cluster_name}"


def role_tag(role: str) -> str:
    return f"v6kube-role:{role}"


def validate_md5_password(value: str, variable: str) -> None:
    """The API's own rule for the BGP MD5 password, checked before any call (the value is never shown)."""
    if not MD5_RULE.match(value):
        raise UsageError(
            f"the BGP password in {variable} does not meet the Metal API's rule",
            hint="10 to 20 letters and digits, no punctuation, with at least one lower-case letter, "
            "one upper-case letter and one digit",
        )


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


def _userdata_host_key(userdata: str | None) -> str | None:
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


def _management_address(device: Mapping[str, Any], family: int) -> Mapping[str, Any] | None:
    for entry in device.get("ip_addresses") or []:
        if entry.get("address_family") == family and entry.get("public") and entry.get("management"):
            return entry
    return None


@contextlib.contextmanager
def _reading(what: str) -> Iterator[None]:
    """Data the API should not have sent is a provider error naming the call, not a crash."""
    try:
        yield
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ProviderError(f"unexpected answer from the Metal API for {what}: {detail}",
                            hint="run the command again; if it persists, report it with --debug output") from None


def server_from_device(device: Mapping[str, Any], host_public_key: str | None = None) -> Server:
    with _reading(f"device {device.get('hostname') or device.get('id')}"):
        return _server_from_device(device, host_public_key)


def _server_from_device(device: Mapping[str, Any], host_public_key: str | None) -> Server:
    tags = device.get("tags") or []
    role = CONTROL_PLANE if role_tag(CONTROL_PLANE) in tags else WORKER
    v6 = _management_address(device, 6)
    v4 = _management_address(device, 4)
    return Server(
        id=device["id"],
        hostname=device.get("hostname") or "",
        role=role,
        state=device.get("state") or "unknown",
        ipv6=IPv6Address(v6["address"]) if v6 and v6.get("address") else None,
        ipv6_gateway=IPv6Address(v6["gateway"]) if v6 and v6.get("gateway") else None,
        ipv6_prefixlen=v6.get("cidr") if v6 else None,
        ipv4_public=IPv4Address(v4["address"]) if v4 and v4.get("address") else None,
        host_public_key=host_public_key or _userdata_host_key(device.get("userdata")),
    )


def _v6(value: str) -> IPv6Address:
    # The API may zero-pad ("fc00:0000:...:000e"); ipaddress normalises it.
    return IPv6Address(value.strip())


class PacketProvider:
    """Servers, BGP and the /56 on one Metal project, for one cluster."""

    name = "packet"

    def __init__(
        self,
        cluster_name: str,
        config: PacketConfig,
        client: MetalClient | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        ssh_public_key: str | None = None,
        ssh_private_key_path: str | None = None,
        poll_interval: float = 10.0,
        neighbor_interval: float = 5.0,
        neighbor_timeout: float = 300.0,
        create_attempts: int = 3,
        max_workers: int = 16,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cluster_name = cluster_name
        self.config = config
        self.project = config.project
        self.tag = cluster_tag(cluster_name)
        self._client = client
        self._client_lock = threading.Lock()
        self.environ = os.environ if environ is None else environ
        self.ssh_public_key = ssh_public_key
        self.ssh_private_key_path = ssh_private_key_path
        self.poll_interval = poll_interval
        self.neighbor_interval = neighbor_interval
        self.neighbor_timeout = neighbor_timeout
        self.create_attempts = max(1, create_attempts)
        self.max_workers = max(1, max_workers)
        self.sleep = sleep
        self.clock = clock
        self._bgp: BGPProject | None = None

    @property
    def client(self) -> MetalClient:
        # Built on first use, so commands that never call the API need no token.
        with self._client_lock:
            if self._client is None:
                self._client = MetalClient.from_env(self.config.api_url, self.environ)
            return self._client

    def __repr__(self) -> str:
        return f"PacketProvider(cluster={self.cluster_name!r}, project={self.project!r})"

    # --- servers -------------------------------------------------------------------------------

    def _list_devices(self) -> list[dict]:
        devices = self.client.list_all(f"/projects/{self.project}/devices", "devices", {"tag": self.tag})
        # The tag filter is a convenience; ownership is decided here.
        return [d for d in devices if self.tag in (d.get("tags") or []) and d.get("state") not in GONE_STATES]

    def find_servers(self) -> list[Server]:
        return [server_from_device(d) for d in self._by_hostname(self._list_devices()).values()]

    def _by_hostname(self, devices: list[dict]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for device in devices:
            name = device.get("hostname") or ""
            if name in found:
                raise ProviderError(
                    f"two devices named {name!r} carry the tag {self.tag}: {found[name]['id']} and {device['id']}",
                    hint="delete the one that should not exist (Metal console) and run the command again",
                )
            found[name] = device
        return found

    def find_server(self, hostname: str) -> Server | None:
        device = self._find_device(hostname)
        return server_from_device(device) if device else None

    def _find_device(self, hostname: str) -> dict | None:
        return self._by_hostname(self._list_devices()).get(hostname)

    def ensure_servers(self, specs: Sequence[ServerSpec]) -> list[Server]:
        for spec in specs:  # every spec is checked before any call
            if spec.role not in (CONTROL_PLANE, WORKER):
                raise UsageError(f"{spec.name}: unknown role {spec.role!r}")
            if "_" in spec.name:
                raise UsageError(f"{spec.name}: Metal hostnames cannot contain underscores")
            cloud_config(spec)
        existing = self._by_hostname(self._list_devices())
        missing = [spec for spec in specs if spec.name not in existing]
        pins = {spec.name: spec.host_public_key for spec in missing}
        for spec in specs:
            if spec.name in existing:
                device = existing[spec.name]
                console.progress("packet", spec.name, f"exists (device {device['id']}, {device.get('state')})")
                pins[spec.name] = self._existing_pin(spec, device)
        if missing:
            key_ids = self._ensure_ssh_key_ids()
            bodies = {spec.name: self._device_body(spec, key_ids) for spec in missing}
            created = self._parallel(lambda spec: self._create_device(spec, bodies[spec.name]), missing)
            existing.update({spec.name: device for spec, device in zip(missing, created)})
        return [server_from_device(existing[spec.name], pins[spec.name]) for spec in specs]

    def _existing_pin(self, spec: ServerSpec, device: Mapping[str, Any]) -> str | None:
        """An existing device keeps the host key it was created with, whatever the caller generated.
        None when its user data installed none: a key we generated now was never on that server."""
        installed = _userdata_host_key(device.get("userdata"))
        if installed is None:
            console.warn(f"{spec.name}: the existing device was not created with a v6kube host key; "
                         "its key must come from the state, the cluster file or trust on first use")
        elif spec.host_public_key and key_blob(installed) != key_blob(spec.host_public_key):
            console.warn(f"{spec.name}: the device was created with another host key; pinning that one")
        return installed

    def _device_body(self, spec: ServerSpec, key_ids: list[str]) -> dict:
        body: dict[str, Any] = {
            "metro": self.config.metro,
            "plan": self.config.plan,
            "operating_system": self.config.operating_system,
            "billing_cycle": self.config.billing_cycle,
            "hostname": spec.name,
            "tags": [OWNER_TAG, self.tag, role_tag(spec.role)],
            "ip_addresses": [
                {"address_family": 4, "public": False},  # mandatory (pitfall 8); BGP runs over it
                {"address_family": 6, "public": True},
            ],
        }
        if self.config.public_ipv4:  # for SSH from machines without IPv6 (provider.public_ipv4)
            body["ip_addresses"].append({"address_family": 4, "public": True})
        if key_ids:
            body["project_ssh_keys"] = key_ids
        userdata = cloud_config(spec)
        if userdata:
            body["userdata"] = userdata
        return body

    def _create_device(self, spec: ServerSpec, body: dict) -> dict:
        console.progress("packet", spec.name, f"creating ({self.config.plan} in {self.config.metro})")
        device = self._post_or_find(
            lambda: self.client.post(f"/projects/{self.project}/devices", body),
            lambda: self._find_device(spec.name),
            f"{spec.name}: create device",
        )
        console.progress("packet", spec.name, f"created (device {device['id']}, {device.get('state')})")
        return device

    def _post_or_find(self, post: Callable[[], T], find: Callable[[], T | None], what: str) -> T:
        """POST once; after an ambiguous failure wait, then look the resource up right before
        trying again (the wait first: a POST that timed out may still be creating it)."""
        for attempt in range(1, self.create_attempts + 1):
            try:
                return post()
            except AMBIGUOUS as exc:
                failure = exc
            console.warn(f"{what}: {failure}; looking it up before trying again")
            wait = failure.retry_after if isinstance(failure, RateLimited) else None
            self.sleep(min(60.0, wait) if wait is not None else min(30.0, 2.0 ** attempt) * (0.5 + random.random() / 2))
            found = find()
            if found is not None:
                return found
        raise failure

    def _parallel(self, work: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """Run work(item) concurrently; every item finishes, then the first failure is raised."""
        if len(items) == 1:
            return [work(items[0])]
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(items)), thread_name_prefix="packet") as pool:
            futures = [pool.submit(work, item) for item in items]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            if len(errors) > 1:
                console.warn(f"{len(errors)} of {len(items)} operations failed; the first error follows")
            raise errors[0]
        return [f.result() for f in futures]

    def wait_servers(self, servers: Sequence[Server], timeout: float) -> list[Server]:
        """One poll loop for all servers: list the project's devices once per interval."""
        deadline = self.clock() + timeout
        done: dict[str, Server] = {}
        pins = {s.id: s.host_public_key for s in servers}
        last_state: dict[str, str] = {}
        while True:
            try:
                self._poll(servers, done, pins, last_state)
            except TRANSIENT as exc:
                console.warn(f"polling devices failed ({exc}); trying again until the deadline")
            if len(done) == len(servers):
                return [done[s.id] for s in servers]
            remaining = deadline - self.clock()
            if remaining <= 0:
                late = ", ".join(f"{s.hostname} ({last_state.get(s.id, 'unknown')})" for s in servers if s.id not in done)
                raise ProvisioningFailed(f"servers not active after {timeout:g}s: {late}",
                                         hint="run create again to keep waiting; it will not create them twice")
            self.sleep(min(self.poll_interval, remaining))

    def _poll(self, servers: Sequence[Server], done: dict[str, Server], pins: Mapping[str, str | None],
              last_state: dict[str, str]) -> None:
        listed = {d["id"]: d for d in self._list_devices()}
        for server in [s for s in servers if s.id not in done]:
            device = listed.get(server.id) or self._lost_device(server)
            state = device.get("state") or "unknown"
            if state != last_state.get(server.id):
                last_state[server.id] = state
                console.progress("packet", server.hostname, state)
            if state == "failed":
                raise ProvisioningFailed(
                    f"{server.hostname}: device {server.id} failed provisioning",
                    hint=f"delete device {server.id} (v6kube destroy, or the Metal console) and run create again",
                )
            if state == "active" and _management_address(device, 6):
                ready = done[server.id] = server_from_device(device, pins.get(server.id))
                console.progress("packet", server.hostname,
                                 f"ready: {ready.ipv6}/{ready.ipv6_prefixlen} via {ready.ipv6_gateway}")
            elif state not in PENDING_STATES and state != "active":
                raise ProvisioningFailed(f"{server.hostname}: device {server.id} is {state}, not provisioning")

    def _lost_device(self, server: Server) -> dict:
        """A device missing from the listing: failed devices vanish and answer 403 (pitfall 11)."""
        try:
            return self.client.get(f"/devices/{server.id}")
        except PermissionDenied:
            raise ProvisioningFailed(
                f"{server.hostname}: device {server.id} failed provisioning (the API answers 403 for it)",
                hint="check the project's events in the Metal console, then run create again",
            ) from None
        except NotFound:
            raise ProvisioningFailed(f"{server.hostname}: device {server.id} no longer exists",
                                     hint="run create again to make a new one") from None

    def delete_servers(self, servers: Sequence[Server]) -> None:
        def delete(server: Server) -> None:
            try:
                self.client.delete(f"/devices/{server.id}", {"force_delete": "true"})
                console.progress("packet", server.hostname, f"deleted device {server.id}")
            except NotFound:
                console.progress("packet", server.hostname, f"device {server.id} already gone")

        if servers:
            self._parallel(delete, list(servers))

    # --- SSH key -------------------------------------------------------------------------------

    def _operator_public_key(self) -> str | None:
        if self.ssh_public_key:
            return self.ssh_public_key.strip()
        if not self.ssh_private_key_path:
            return None
        path = Path(os.path.expanduser(self.ssh_private_key_path + ".pub"))
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the SSH public key {path}: {exc.strerror}",
                             hint="new servers authorize this key for root; create it with ssh-keygen -y") from None

    def _ensure_ssh_key_ids(self) -> list[str]:
        public_key = self._operator_public_key()
        if public_key is None:
            console.warn("no SSH public key given: new servers get every project and organization key")
            return []
        return [self.ensure_ssh_key(public_key)]

    def ensure_ssh_key(self, public_key: str) -> str:
        """The project SSH key's id, matched by fingerprint or key body; created when missing."""
        try:
            fingerprint, blob = md5_fingerprint(public_key), key_blob(public_key)
        except ValueError as exc:
            raise UsageError(f"the SSH public key is not valid: {exc}") from None

        def find() -> str | None:
            for key in self.client.list_all(f"/projects/{self.project}/ssh-keys", "ssh_keys", page_size=None):
                if key.get("fingerprint") == fingerprint or _same_key(key.get("key"), blob):
                    return key["id"]
            return None

        found = find()
        if found:
            return found
        body = {"label": f"v6kube-{self.cluster_name}", "key": " ".join(public_key.split()[:2])}

        def create() -> dict | str:
            try:
                return self.client.post(f"/projects/{self.project}/ssh-keys", body)
            except Unprocessable:
                # "Fingerprint has already been taken": an earlier attempt (or someone) added it.
                found = find()
                if found is None:
                    raise
                return found

        key = self._post_or_find(create, find, "add SSH key")
        key_id = key if isinstance(key, str) else key["id"]
        console.progress("packet", None, f"added SSH key {fingerprint} to project {self.project}")
        return key_id

    # --- BGP -----------------------------------------------------------------------------------

    def _wanted_password(self) -> Secret | None:
        password = password_from_env(self.config.bgp_password_env, self.environ)
        if password is not None:
            validate_md5_password(password.reveal(), self.config.bgp_password_env)
        return password

    def _bgp_config(self) -> dict | None:
        """The project's BGP config when enabled. The GET answers 200 even when unset (pitfall 2)."""
        config = self.client.get(f"/projects/{self.project}/bgp-config") or {}
        if config.get("id") and config.get("status") != "disabled":
            return config
        return None

    def ensure_bgp(self) -> BGPProject:
        wanted = self._wanted_password()  # validated before any call
        config = self._bgp_config()
        if config is None:
            body: dict[str, Any] = {"deployment_type": "local", "asn": LOCAL_ASN}
            if wanted:
                body["md5"] = wanted.reveal()
            console.progress("packet", None, f"enabling local BGP on project {self.project} (ASN {LOCAL_ASN})")

            def enable() -> dict | None:
                try:
                    self.client.post(f"/projects/{self.project}/bgp-configs", body)
                except Unprocessable:
                    found = self._bgp_config()  # someone may have enabled it meanwhile
                    if found is None:
                        raise
                    return found
                return None

            # The POST answers 204: unless a lookup already found it, read what the project now has.
            config = self._post_or_find(enable, self._bgp_config, f"enable BGP on project {self.project}") \
                or self._bgp_config()
            if config is None:
                raise ProviderError(f"BGP on project {self.project} is still not enabled after enabling it",
                                    hint="run the command again; if it persists, enable Local BGP in the Metal console")
        elif wanted and config.get("md5") != wanted.reveal():
            # BGP settings are immutable once enabled (pitfall 6): the project's password is the truth.
            have = "its own password" if config.get("md5") else "no password"
            console.warn(f"BGP is already enabled on project {self.project} with {have}; the password in "
                         f"{self.config.bgp_password_env} is not used (BGP settings cannot change once enabled)")
        md5 = config.get("md5")
        self._bgp = BGPProject(
            local_asn=int(config.get("asn") or LOCAL_ASN),
            password=Secret(md5) if md5 else None,
            max_prefix=int(config.get("max_prefix") or 10),
        )
        return self._bgp

    def ensure_bgp_session(self, server: Server) -> BGPNeighbor:
        """An IPv6 session for an active server, then its neighbour facts (polled until they appear)."""
        return self.ensure_bgp_sessions([server])[server.hostname]

    def ensure_bgp_sessions(self, servers: Sequence[Server]) -> dict[str, BGPNeighbor]:
        """ensure_bgp_session for many servers at once: sessions in parallel, then one neighbour poll loop."""
        self._parallel(self._ensure_session, list(servers))
        return self.wait_neighbors(servers)

    def _ensure_session(self, server: Server) -> None:
        if server.state != "active":  # the API takes sessions only for active devices (pitfall 4)
            raise ProviderError(f"{server.hostname}: a BGP session needs an active server, not {server.state!r}",
                                hint="wait for the servers to be active first (wait_servers)")
        path = f"/devices/{server.id}/bgp/sessions"

        def find() -> dict | None:
            sessions = (self.client.get(path) or {}).get("bgp_sessions") or []
            return next((s for s in sessions if s.get("address_family") == "ipv6"), None)

        def create() -> dict:
            try:
                return self.client.post(path, {"address_family": "ipv6", "default_route": False})
            except Unprocessable as exc:
                if any("already has session" in m for m in exc.errors):
                    return {"address_family": "ipv6"}  # pitfall 3: a duplicate means it exists
                raise

        if find() is None:
            self._post_or_find(create, find, f"{server.hostname}: create BGP session")
            console.progress("packet", server.hostname, "IPv6 BGP session created")

    def wait_neighbors(self, servers: Sequence[Server]) -> dict[str, BGPNeighbor]:
        """Neighbour data stays empty for a while after the session is created (pitfall 4):
        read every pending server's neighbours, then sleep once per interval, until the deadline."""
        deadline = self.clock() + self.neighbor_timeout
        found: dict[str, BGPNeighbor] = {}
        while True:
            pending = [s for s in servers if s.hostname not in found]
            for server, neighbor in zip(pending, self._parallel(self._read_neighbor, pending)):
                if neighbor is not None:
                    found[server.hostname] = neighbor
            if len(found) == len(servers):
                return {s.hostname: found[s.hostname] for s in servers}
            remaining = deadline - self.clock()
            if remaining <= 0:
                late = ", ".join(s.hostname for s in servers if s.hostname not in found)
                raise ProvisioningFailed(f"no IPv6 BGP neighbour data after {self.neighbor_timeout:g}s for {late}",
                                         hint="check that the devices have IPv6 BGP sessions, then run the command again")
            self.sleep(min(self.neighbor_interval, remaining))

    def _read_neighbor(self, server: Server) -> BGPNeighbor | None:
        try:
            document = self.client.get(f"/devices/{server.id}/bgp/neighbors") or {}
        except TRANSIENT as exc:
            console.warn(f"{server.hostname}: reading BGP neighbours failed ({exc}); trying again")
            return None
        for entry in document.get("bgp_neighbors") or []:
            if entry.get("address_family") == 6 and entry.get("peer_ips"):
                with _reading(f"{server.hostname}'s BGP neighbours"):
                    return self._neighbor(entry)
        return None

    def _neighbor(self, entry: Mapping[str, Any]) -> BGPNeighbor:
        password = entry.get("md5_password") if entry.get("md5_enabled") else None
        if password is None and self._bgp is not None:
            password = self._bgp.password.reveal() if self._bgp.password else None
        routes = []
        for route in entry.get("routes_in") or []:
            network = ipaddress.ip_network(route.get("route", ""), strict=False)
            if network.version == 6:
                routes.append(network)
        return BGPNeighbor(
            peer_ips=tuple(_v6(ip) for ip in entry["peer_ips"]),
            peer_asn=int(entry["peer_as"]),
            local_asn=int(entry.get("customer_as") or LOCAL_ASN),
            local_ip=_v6(entry["customer_ip"]) if entry.get("customer_ip") else None,
            multihop=bool(entry.get("multihop", True)),
            password=Secret(password) if password else None,
            routes_in=tuple(routes),
        )

    # --- the announceable block ----------------------------------------------------------------

    def find_block(self) -> IPv6Network:
        """The project's IPv6 /56 in the cluster's metro (it exists once a device is in the metro)."""
        blocks = self.client.list_all(f"/projects/{self.project}/ips", "ip_addresses",
                                      {"types": "public_ipv6", "include": "metro,facility"}, page_size=None)
        with _reading(f"project {self.project}'s IP reservations"):
            return self._pick_block(blocks)

    def _pick_block(self, blocks: Sequence[Mapping[str, Any]]) -> IPv6Network:
        candidates = []
        for block in blocks:
            if block.get("address_family") != 6 or not block.get("public") or block.get("cidr") != 56:
                continue
            # metro may be null on IP objects: fall back to the facility's metro (pitfall 9).
            metro = (block.get("metro") or {}).get("code") or \
                (((block.get("facility") or {}).get("metro")) or {}).get("code")
            if metro == self.config.metro:
                candidates.append(block)
        if not candidates:
            raise NotFound(f"project {self.project} has no public IPv6 /56 in metro {self.config.metro} yet",
                           hint="the /56 appears with the first server in the metro; create the servers first")
        candidates.sort(key=lambda b: not b.get("management"))  # the precreated block first
        block = candidates[0]
        return IPv6Network(f"{IPv6Address(block['network'])}/{block['cidr']}", strict=False)


def _same_key(text: str | None, blob: bytes) -> bool:
    try:
        return bool(text) and key_blob(text) == blob
    except ValueError:
        return False


def from_cluster(cluster: Cluster, *, client: MetalClient | None = None,
                 environ: Mapping[str, str] | None = None, api_url: str | None = None,
                 client_options: Mapping[str, Any] | None = None, **options: Any) -> PacketProvider:
    """The provider for a cluster file. Without `client` or `api_url` the client is built on first use
    (URL: METAL_API_URL, then provider.api_url, then the public API)."""
    if client is None and (api_url is not None or client_options):
        env = os.environ if environ is None else environ
        url = api_url or base_url_from(cluster.provider.api_url, env)
        client = MetalClient(token_from_env(env), url, **dict(client_options or {}))
    options.setdefault("ssh_private_key_path", cluster.ssh.private_key)
    return PacketProvider(cluster.name, cluster.provider, client, environ=environ, **options)


def planned_calls(cluster: Cluster) -> list[dict[str, str]]:
    """The API calls create makes, in order, for `v6kube plan` (POSTs only for what is missing)."""
    p, metro = "{project}", cluster.provider.metro
    calls = [
        ("GET", f"/projects/{p}/bgp-config", "is BGP enabled for the project?"),
        ("POST", f"/projects/{p}/bgp-configs", "enable Local BGP (only when not enabled)"),
        ("GET", f"/projects/{p}/ssh-keys", "find the SSH key by fingerprint"),
        ("POST", f"/projects/{p}/ssh-keys", "add the SSH key (only when missing)"),
        ("GET", f"/projects/{p}/devices", "find the cluster's servers by hostname and tag"),
    ]
    calls += [("POST", f"/projects/{p}/devices", f"create {n.name} (only when missing)") for n in cluster.nodes]
    calls.append(("GET", f"/projects/{p}/devices", "poll until every server is active (one list per interval)"))
    for n in cluster.nodes:
        calls.append(("POST", "/devices/{id}/bgp/sessions", f"IPv6 BGP session for {n.name} (only when missing)"))
        calls.append(("GET", "/devices/{id}/bgp/neighbors", f"BGP neighbours of {n.name}"))
    calls.append(("GET", f"/projects/{p}/ips?types=public_ipv6", f"the project's IPv6 /56 in metro {metro}"))
    return [{"method": m, "path": path, "purpose": why} for m, path, why in calls]
