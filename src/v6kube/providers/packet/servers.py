"""Packet devices of one cluster: find, find-then-create, wait, delete, and the operator's SSH key.

A device is created only after a consistent view says it is missing: a paged list can shift
while it is read (a device deleted between pages moves another one back a page), so right before
each POST a lookup filtered by hostname and cluster tag (one short page) confirms it. A device
whose id the state recorded is looked up by that id first: a device that failed provisioning
vanishes from lists and answers 403 (pitfall 11), and may still exist, so none is created then.
"""

from __future__ import annotations

import os
from ipaddress import IPv6Network
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from v6kube import console
from v6kube.errors import NotFound, PermissionDenied, ProviderError, ProvisioningFailed, Unprocessable, UsageError
from v6kube.providers.base import CONTROL_PLANE, WORKER, Server, ServerSpec, run_parallel
from v6kube.providers.hostkeys import cloud_config, key_blob, md5_fingerprint
from v6kube.providers.http import Listing, post_or_find, wait_until_ready
from v6kube.providers.packet.devices import (
    CLUSTER_PREFIX, GONE_STATES, OWNER_TAG, PENDING_STATES, management_address, role_tag, server_from_device,
    subnet_tag, subnets_of, userdata_host_key,
)

if TYPE_CHECKING:
    from v6kube.providers.packet.provider import PacketProvider


def _named(server_or_name: Any, device_id: str) -> str:
    name = getattr(server_or_name, "hostname", server_or_name)
    return f"{name} (device {device_id})"


class Servers:
    def __init__(self, provider: "PacketProvider"):
        self.p = provider

    @property
    def devices_path(self) -> str:
        return f"/projects/{self.p.project}/devices"

    def list(self, **filters: str) -> Listing:
        devices = self.p.client.list_all(self.devices_path, "devices", {"tag": self.p.tag, **filters})
        # The tag filter is a convenience; ownership is decided here.
        owned = Listing(d for d in devices if self.p.tag in (d.get("tags") or []) and d.get("state") not in GONE_STATES)
        owned.pages = getattr(devices, "pages", 1)
        return owned

    def list_consistent(self) -> list[dict]:
        """The cluster's devices from a consistent view: one page is one snapshot; a list read over
        several pages is read again until two reads agree (a device on neither is truly absent)."""
        listing = self.list()
        for _ in range(4):
            if getattr(listing, "pages", 1) <= 1:
                return listing
            again = self.list()
            if {d["id"] for d in again} == {d["id"] for d in listing}:
                return again
            listing = again
        return listing

    def by_hostname(self, devices: list[dict]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for device in devices:
            name = device.get("hostname") or ""
            if name in found:
                raise ProviderError(
                    f"two devices named {name!r} carry the tag {self.p.tag}: {found[name]['id']} and {device['id']}",
                    hint="delete the one that should not exist (Metal console) and run the command again",
                )
            found[name] = device
        return found

    def find_device(self, hostname: str) -> dict | None:
        """One device by hostname: a filtered lookup (one short page, so it cannot shift under us)."""
        return self.by_hostname([d for d in self.list(hostname=hostname) if d.get("hostname") == hostname]).get(hostname)

    # --- ensure --------------------------------------------------------------------------------

    def ensure(self, specs: Sequence[ServerSpec], recorded_ids: Mapping[str, str] | None = None) -> list[Server]:
        for spec in specs:  # every spec is checked before any call
            if spec.role not in (CONTROL_PLANE, WORKER):
                raise UsageError(f"{spec.name}: unknown role {spec.role!r}")
            if "_" in spec.name:
                raise UsageError(f"{spec.name}: Metal hostnames cannot contain underscores")
            cloud_config(spec)
        recorded_ids = recorded_ids or {}
        listing = self.list()
        # One page is one snapshot; a list read page by page may have shifted: confirm before POST.
        confirm = getattr(listing, "pages", 2) > 1
        existing = self.by_hostname(listing)
        pins = {spec.name: spec.host_public_key for spec in specs}
        for spec in specs:
            if spec.name not in existing and spec.name in recorded_ids:
                device = self._recorded_device(spec.name, recorded_ids[spec.name])
                if device is not None:
                    existing[spec.name] = device
        for spec in specs:
            if spec.name in existing:
                device = existing[spec.name]
                console.progress("packet", spec.name, f"exists (device {device['id']}, {device.get('state')})")
                pins[spec.name] = self._existing_pin(spec, device)
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            key_ids = self.ensure_ssh_key_ids()
            created = run_parallel(lambda spec: self._create(spec, self._body(spec, key_ids), confirm), missing,
                                   self.p.max_workers, "packet")
            for spec, (device, found) in zip(missing, created):
                existing[spec.name] = device
                if found:
                    pins[spec.name] = self._existing_pin(spec, device)
        return [server_from_device(existing[spec.name], pins[spec.name]) for spec in specs]

    def _recorded_device(self, hostname: str, device_id: str) -> dict | None:
        """The device the state recorded for this hostname, when it is not listed: None if it is gone."""
        try:
            device = self.p.client.get(f"/devices/{device_id}", what=_named(hostname, device_id))
        except NotFound:
            console.progress("packet", hostname, f"device {device_id} from the state is gone; creating a new one")
            return None
        except PermissionDenied:
            raise ProvisioningFailed(
                f"{_named(hostname, device_id)}: recorded in the state but not listed, and the API answers 403 "
                "for it (a device that failed provisioning vanishes this way); it may still exist, so no "
                "second one is created",
                hint=f"delete it first (v6kube destroy deletes device {device_id} by id, or use the Metal "
                "console), then run create again",
            ) from None
        if device.get("state") in GONE_STATES:
            return None
        if self.p.tag not in (device.get("tags") or []):
            raise ProviderError(f"{_named(hostname, device_id)}: the state records this device, but it does not "
                                f"carry the tag {self.p.tag}", hint="check that the state directory belongs to "
                                "this cluster; remove the stale entry if the device is someone else's")
        return device

    def _existing_pin(self, spec: ServerSpec, device: Mapping[str, Any]) -> str | None:
        """An existing device keeps the host key it was created with, whatever the caller generated.
        None when its user data installed none: a key we generated now was never on that server."""
        installed = userdata_host_key(device.get("userdata"))
        if installed is None:
            console.warn(f"{spec.name}: the existing device was not created with a v6kube host key; "
                         "its key must come from the state, the cluster file or trust on first use")
        elif spec.host_public_key and key_blob(installed) != key_blob(spec.host_public_key):
            console.warn(f"{spec.name}: the device was created with another host key; pinning that one")
        return installed

    def _body(self, spec: ServerSpec, key_ids: list[str]) -> dict:
        config = self.p.config
        body: dict[str, Any] = {
            "metro": config.metro,
            "plan": config.plan,
            "operating_system": config.operating_system,
            "billing_cycle": config.billing_cycle,
            "hostname": spec.name,
            "tags": [OWNER_TAG, self.p.tag, role_tag(spec.role), *(subnet_tag(s) for s in spec.subnets)],
            "ip_addresses": [
                {"address_family": 4, "public": False},  # mandatory (pitfall 8); BGP runs over it
                {"address_family": 6, "public": True},
            ],
        }
        if config.public_ipv4:  # for SSH from machines without IPv6 (provider.public_ipv4)
            body["ip_addresses"].append({"address_family": 4, "public": True})
        if key_ids:
            body["project_ssh_keys"] = key_ids
        userdata = cloud_config(spec)
        if userdata:
            body["userdata"] = userdata
        return body

    def _create(self, spec: ServerSpec, body: dict, confirm: bool) -> tuple[dict, bool]:
        """(device, found): unless the list was one snapshot, confirm it is missing right before the POST."""
        found = self.find_device(spec.name) if confirm else None
        if found is not None:
            console.progress("packet", spec.name, f"exists (device {found['id']}, {found.get('state')})")
            return found, True
        console.progress("packet", spec.name, f"creating ({self.p.config.plan} in {self.p.config.metro})")
        device = post_or_find(self.p.client, lambda: self.p.client.post(self.devices_path, body, what=spec.name),
                              lambda: self.find_device(spec.name), f"{spec.name}: create device",
                              attempts=self.p.create_attempts, sleep=self.p.sleep)
        console.progress("packet", spec.name, f"created (device {device['id']}, {device.get('state')})")
        return device, False

    # --- wait ----------------------------------------------------------------------------------

    def wait(self, servers: Sequence[Server], timeout: float) -> list[Server]:
        """One poll loop for all servers: list the project's devices once per interval."""
        pins = {s.id: s.host_public_key for s in servers}
        return wait_until_ready(servers, lambda done, last: self._poll(servers, done, pins, last), who="packet",
                                goal="be active", reached="active", things="devices", timeout=timeout,
                                interval=self.p.poll_interval, clock=self.p.clock, sleep=self.p.sleep,
                                named=lambda s: _named(s, s.id))

    def _poll(self, servers: Sequence[Server], done: dict[str, Server], pins: Mapping[str, str | None],
              last_state: dict[str, str]) -> None:
        listed = {d["id"]: d for d in self.list()}
        for server in [s for s in servers if s.id not in done]:
            device = listed.get(server.id) or self._lost_device(server)
            state = device.get("state") or "unknown"
            if state != last_state.get(server.id):
                last_state[server.id] = state
                console.progress("packet", server.hostname, state)
            if state == "failed":
                raise ProvisioningFailed(
                    f"{_named(server, server.id)} failed provisioning",
                    hint=f"delete device {server.id} (v6kube destroy, or the Metal console) and run create again",
                )
            if state == "active" and management_address(device, 6):
                ready = done[server.id] = server_from_device(device, pins.get(server.id))
                console.progress("packet", server.hostname,
                                 f"ready: {ready.ipv6}/{ready.ipv6_prefixlen} via {ready.ipv6_gateway}")
            elif state not in PENDING_STATES and state != "active":
                raise ProvisioningFailed(f"{_named(server, server.id)} is {state}, not provisioning")

    def _lost_device(self, server: Server) -> dict:
        """A device missing from the listing: failed devices vanish and answer 403 (pitfall 11)."""
        try:
            return self.p.client.get(f"/devices/{server.id}", what=_named(server, server.id))
        except PermissionDenied:
            raise ProvisioningFailed(
                f"{_named(server, server.id)} failed provisioning (the API answers 403 for it)",
                hint=f"delete it (v6kube destroy deletes device {server.id} by id), then run create again",
            ) from None
        except NotFound:
            raise ProvisioningFailed(f"{_named(server, server.id)} no longer exists",
                                     hint="run create again to make a new one") from None

    # --- delete --------------------------------------------------------------------------------

    def delete(self, servers: Sequence[Server]) -> None:
        """DELETE by id: a Server from the state (id + hostname) is enough; 404 = already gone.
        A 403 (the fake's `delete="forbidden"` models it) is an error naming the device: the state
        keeps it and the user is told what to do, nothing is dropped silently."""
        def delete(server: Server) -> None:
            what = _named(server, server.id)
            try:
                self.p.client.delete(f"/devices/{server.id}", {"force_delete": "true"}, what=what)
                console.progress("packet", server.hostname, f"deleted device {server.id}")
            except NotFound:
                console.progress("packet", server.hostname, f"device {server.id} already gone")
            except PermissionDenied as exc:
                raise PermissionDenied(f"{exc.message} (the API refuses to delete it)", status=403,
                                       hint=f"delete device {server.id} in the Metal console or ask Equinix "
                                       "support, then run destroy again") from None

        run_parallel(delete, list(servers), self.p.max_workers, "packet")

    # --- other clusters ------------------------------------------------------------------------

    def taken_subnets(self) -> list[IPv6Network]:
        devices = self.p.client.list_all(self.devices_path, "devices", {"tag": OWNER_TAG})
        taken: list[IPv6Network] = []
        for device in devices:
            tags = device.get("tags") or []
            if device.get("state") in GONE_STATES or self.p.tag in tags:
                continue
            if any(isinstance(t, str) and t.startswith(CLUSTER_PREFIX) for t in tags):
                taken += [s for s in subnets_of(tags) if s not in taken]
        return taken

    def record_subnets(self, servers: Sequence[Server], subnets: Sequence[IPv6Network]) -> None:
        wanted = [subnet_tag(s) for s in subnets]

        def record(server: Server) -> None:
            device = self.p.client.get(f"/devices/{server.id}", what=_named(server, server.id))
            tags = list(device.get("tags") or [])
            missing = [t for t in wanted if t not in tags]
            if missing:  # PUT sets the whole list: the same body again changes nothing
                self.p.client.put(f"/devices/{server.id}", {"tags": tags + missing}, what=_named(server, server.id))

        run_parallel(record, list(servers), self.p.max_workers, "packet")

    # --- SSH key -------------------------------------------------------------------------------

    def _operator_public_key(self) -> str | None:
        if self.p.ssh_public_key:
            return self.p.ssh_public_key.strip()
        if not self.p.ssh_private_key_path:
            return None
        path = Path(os.path.expanduser(self.p.ssh_private_key_path + ".pub"))
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the SSH public key {path}: {exc.strerror}",
                             hint="new servers authorize this key for root; create it with ssh-keygen -y") from None

    def ensure_ssh_key_ids(self) -> list[str]:
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
        path = f"/projects/{self.p.project}/ssh-keys"

        def find() -> str | None:
            for key in self.p.client.list_all(path, "ssh_keys", page_size=None):
                if key.get("fingerprint") == fingerprint or _same_key(key.get("key"), blob):
                    return key["id"]
            return None

        found = find()
        if found:
            return found
        body = {"label": f"v6kube-{self.p.cluster_name}", "key": " ".join(public_key.split()[:2])}

        def create() -> dict | str:
            try:
                return self.p.client.post(path, body, what="the operator's SSH key")
            except Unprocessable:
                # "Fingerprint has already been taken": an earlier attempt (or someone) added it.
                found = find()
                if found is None:
                    raise
                return found

        key = post_or_find(self.p.client, create, find, "add SSH key", attempts=self.p.create_attempts, sleep=self.p.sleep)
        console.progress("packet", None, f"added SSH key {fingerprint} to project {self.p.project}")
        return key if isinstance(key, str) else key["id"]


def _same_key(text: str | None, blob: bytes) -> bool:
    try:
        return bool(text) and key_blob(text) == blob
    except ValueError:
        return False
