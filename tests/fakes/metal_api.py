"""A stateful fake of the Equinix Metal API v1: a real HTTP server on loopback.

It keeps projects, devices, BGP configs, sessions, neighbours, IP reservations and SSH keys, and
answers with the shapes of the official spec (checked in tests/test_metal_contract.py against the
`equinix==0.19.0` models). Devices move queued -> provisioning -> active on an injectable clock.
Each device's public IPv6 is a /127 from the project's /56 (gateway = network, address = network+1)
unless a test pins an address for its hostname (to back a device with a testbed node).

Strict where the API is (reference/metal-api.md, metal-oas3.json):
- referenced objects of an IP reservation (`metro`, `facility`, `project`) come back as `{href}`
  unless named in `include`; `exclude` drops fields; `search`, `hostname`, `tag`, `metro` filter;
- one /56 per metro the project has devices in, every one of them in each neighbour's
  `routes_in`; a device's `metro` must be one metro code (a list or an unknown code is a 422) and a
  requested IPv6 `cidr` (124..127) is honoured;
- BGP sessions only for active devices (422 otherwise); a session's `status` is one value per
  router, comma-separated: "unknown,unknown" for `session_up_delay` seconds, then "up,up"
  (`session_status[hostname]` overrides it, e.g. "up,down");
- no `md5_password` key when the project has no password; an unset BGP config has no `id`;
- rate-limit headers (X-RateLimit-Reset in Unix seconds) on every answer, faults and 429s included.

Faults: `add_fault()` answers a status (429 with Retry-After, 500, ...), resets the connection,
or handles the request and then sleeps past the client's read timeout or fails anyway;
`fail_device()` makes a device end `failed` (and vanish with 403 on GET). DELETE of such a device:
the live API's answer is not documented; Terraform keeps failed devices in its state precisely
so that it can delete them (terraform-provider-equinix PR #792), so by default the DELETE works
(204), and `fail_device(..., delete_forbidden=True)` models the worst case, a 403 (the provider
then reports the device by hostname and id and keeps it in the state). `neighbor_delay_polls`
keeps neighbour data empty for the first K polls. Every request is recorded without its token.

Usage:
    with FakeMetal(token="...") as api:
        client = MetalClient("...", api.url)
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

from fakes.common import Fault, Handler, ManualClock, Recorded, Served

__all__ = ["FakeMetal", "Fault", "ManualClock", "Recorded"]  # the shared pieces, re-exported for tests

BASE_PATH = "/metal/v1"
MD5_RULE = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)[a-zA-Z\d]{10,20}$")
METROS = {
    "da": {"code": "da", "name": "Dallas", "country": "US", "facility": "da11"},
    "sv": {"code": "sv", "name": "Silicon Valley", "country": "US", "facility": "sv15"},
    "am": {"code": "am", "name": "Amsterdam", "country": "NL", "facility": "am6"},
    "fr": {"code": "fr", "name": "Frankfurt", "country": "DE", "facility": "fr2"},
}


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _padded(address: str) -> str:
    """The API sometimes returns IPv6 addresses fully expanded (fc00:0000:...:000e)."""
    return ipaddress.IPv6Address(address).exploded


class ApiError(Exception):
    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body


def _errors(status: int, *messages: str) -> ApiError:
    return ApiError(status, {"errors": list(messages)})


class FakeMetal(Served):
    thread_name = "fake-metal"

    def __init__(
        self,
        token: str = "fake-metal-token-0123456789abcdef",
        *,
        project_id: str | None = None,
        metro: str = "da",
        block: str = "2604:1380:4641:c500::/56",
        durations: dict[str, float] | None = None,
        clock: Callable[[], float] = time.time,
        addresses: dict[str, tuple[str, str, int]] | None = None,
        host: str = "127.0.0.1",
        bgp: str = "unset",  # unset | disabled | enabled
        bgp_md5: str | None = None,
        peer_ips: tuple[str, ...] = ("fc00::e", "fc00::f"),
        peer_as: int = 65530,
        multihop: bool = True,
        max_prefix: int = 10,
        block_metro_null: bool = False,
        neighbor_delay_polls: int = 0,
        session_up_delay: float = 0.0,
    ):
        self.token = token
        self.project_id = project_id or str(uuid.uuid4())
        self.metro = metro
        self.blocks = {metro: ipaddress.IPv6Network(block)}  # one /56 per metro, made on first use
        self.next_offset: dict[str, int] = {}  # per metro: the next free address offset in its /56
        self.session_up_delay = session_up_delay
        self.session_status: dict[str, str] = {}  # hostname -> status override ("up,down", ...)
        self.durations = {"queued": 0.0, "provisioning": 0.0, "deprovisioning": 0.0, **(durations or {})}
        self.clock = clock
        self.addresses = dict(addresses or {})
        self.host = host
        self.peer_ips = tuple(peer_ips)
        self.peer_as = peer_as
        self.multihop = multihop
        self.block_metro_null = block_metro_null
        self.neighbor_delay_polls = neighbor_delay_polls
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.failing: dict[str, tuple[bool, bool]] = {}  # hostname -> (vanish, delete_forbidden)
        self.projects: dict[str, dict] = {}
        self.devices: dict[str, dict] = {}
        self.ssh_keys: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self._next_v4 = 1
        self.add_project(self.project_id, bgp=bgp, bgp_md5=bgp_md5, max_prefix=max_prefix)
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.base_url + BASE_PATH

    # --- test controls -------------------------------------------------------------------------

    def add_project(self, project_id: str, *, bgp: str = "unset", bgp_md5: str | None = None,
                    max_prefix: int = 10) -> None:
        with self.lock:
            self.projects[project_id] = {
                "id": project_id,
                "bgp": {"id": str(uuid.uuid4()), "status": "enabled" if bgp == "enabled" else "disabled",
                        "asn": 65000, "md5": bgp_md5, "max_prefix": max_prefix, "created_at": _now_iso()}
                if bgp in ("enabled", "disabled") else None,
                "block_id": str(uuid.uuid4()),
                "private_block_id": str(uuid.uuid4()),
            }

    def add_fault(self, method: str, path: str, **options: Any) -> Fault:
        fault = Fault(method.upper(), path, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    @property
    def block(self) -> ipaddress.IPv6Network:
        """The /56 of the default metro."""
        return self.blocks[self.metro]

    def block_for(self, metro: str) -> ipaddress.IPv6Network:
        with self.lock:
            if metro not in self.blocks:
                base = self.blocks[self.metro]
                self.blocks[metro] = ipaddress.IPv6Network((int(base.network_address) + len(self.blocks) * 2 ** 72, 56))
            return self.blocks[metro]

    def fail_device(self, hostname: str, *, vanish: bool = True, delete_forbidden: bool = False) -> None:
        """The device with this hostname (now or later) ends `failed`; vanish: 403 and gone from lists;
        delete_forbidden: its DELETE answers 403 too."""
        with self.lock:
            self.failing[hostname] = (vanish, delete_forbidden)
            for device in self.devices.values():
                if device["hostname"] == hostname:
                    device["fail"], device["vanish"], device["delete_forbidden"] = True, vanish, delete_forbidden

    def set_address(self, hostname: str, address: str, gateway: str, cidr: int = 127) -> None:
        with self.lock:
            self.addresses[hostname] = (address, gateway, cidr)

    def add_device(self, hostname: str, *, tags: list[str] | None = None, state: str = "active",
                   project_id: str | None = None, userdata: str | None = None, metro: str | None = None) -> dict:
        """A device that exists before the test starts (created long ago unless state is queued)."""
        body = {"hostname": hostname, "tags": tags or [], "metro": metro or self.metro, "plan": "c3.small.x86",
                "operating_system": "ubuntu_24_04", "billing_cycle": "hourly", "userdata": userdata,
                "ip_addresses": [{"address_family": 4, "public": False}, {"address_family": 6, "public": True}]}
        with self.lock:
            device = self._create_device(project_id or self.project_id, body)
            if state != "queued":
                device["created"] -= 10 ** 6
        return device

    def set_session_status(self, device_id: str, status: str, learned_routes: list[str] | None = None) -> None:
        """What the routers report for the device's sessions: "up", "down", "up,down" (one value per
        switch) or "unknown" (the default, until the switch reports), and the routes they learned."""
        with self.lock:
            for session in (s for s in self.sessions.values() if s["device"] == device_id):
                session["status"], session["learned_routes"] = status, list(learned_routes or [])

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def project_devices(self, project_id: str | None = None) -> list[dict]:
        pid = project_id or self.project_id
        with self.lock:
            self._reap()
            return [self._device_json(d) for d in self.devices.values() if d["project"] == pid]

    # --- dispatch ------------------------------------------------------------------------------

    def handle(self, handler: "Handler", method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        api_path = parts.path[len(BASE_PATH):] if parts.path.startswith(BASE_PATH + "/") else parts.path
        record = Recorded(method, api_path, parse_qs(parts.query, keep_blank_values=True), body,
                          {k: v for k, v in handler.headers.items() if k.lower() != "x-auth-token"})
        with self.lock:
            self.requests.append(record)
            fault = next((f for f in self.faults if f.matches(record)), None)
            if fault:
                fault.hits += 1

        if fault and not fault.after and self._inject(handler, record, fault):
            return None

        if handler.headers.get("X-Auth-Token") != self.token:
            status, answer = 401, {"error": "Invalid authentication token"}
        elif not parts.path.startswith(BASE_PATH + "/"):
            return handler.answer(404, b"404 page not found\n", "text/plain", record=record)
        else:
            try:
                status, answer = self._route(method, api_path, record.query, body)
            except ApiError as exc:
                status, answer = exc.status, exc.body

        if fault and fault.after and self._inject(handler, record, fault):
            return None
        handler.answer_json(status, answer, self._rate_headers(status), record=record)

    def _rate_headers(self, status: int = 200) -> dict[str, str]:
        """The live API's rate-limit headers ride on every answer, 429s included (packngo reads
        them from each); the reset is in Unix seconds."""
        with self.lock:
            used = len(self.requests)
        window = 60
        now = self.clock()
        now = now if now > 1e9 else time.time()  # a monotonic clock is no Unix time
        reset = int(now // window + 1) * window
        remaining = 0 if status == 429 else max(0, 5000 - used)
        return {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset)}

    def _inject(self, handler: "Handler", record: Recorded, fault: Fault) -> bool:
        """Apply a fault's delay, then its reset or status; True when that answered the request."""
        if fault.delay:
            time.sleep(fault.delay)
        if fault.reset:
            handler.reset()
            return True
        if fault.status:
            self._fault_answer(handler, record, fault)
            return True
        return False

    def _fault_answer(self, handler: "Handler", record: Recorded, fault: Fault) -> None:
        headers = {**self._rate_headers(fault.status), **fault.headers}
        if fault.raw_body is not None:
            return handler.answer(fault.status, fault.raw_body, "text/html", headers, record)
        body = fault.body if fault.body is not None else {"errors": [_REASONS.get(fault.status, "Error")]}
        handler.answer_json(fault.status, body, headers, record)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        for verb, pattern, action in _ROUTES:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                with self.lock:
                    return action(self, *match.groups(), query=query, body=body)
        raise _errors(404, "Not found")

    # --- helpers -------------------------------------------------------------------------------

    def _project(self, project_id: str) -> dict:
        project = self.projects.get(project_id)
        if project is None:
            raise _errors(404, "Not found")
        return project

    def _device(self, device_id: str) -> dict:
        self._reap()
        device = self.devices.get(device_id)
        if device is None:
            raise _errors(404, "Not found")
        if self._state(device) == "failed" and device["vanish"]:
            raise _errors(403, "You are not authorized to view this device")
        return device

    def _state(self, device: dict) -> str:
        if device.get("deleted") is not None:
            return "deprovisioning"
        elapsed = self.clock() - device["created"]
        if elapsed < self.durations["queued"]:
            return "queued"
        if elapsed < self.durations["queued"] + self.durations["provisioning"]:
            return "provisioning"
        return "failed" if device["fail"] else "active"

    def _metro_json(self, code: str) -> dict:
        metro = METROS.get(code, {"code": code, "name": code.upper(), "country": "US"})
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "metro/" + code)), "code": code,
                "name": metro["name"], "country": metro["country"],
                "href": f"{BASE_PATH}/locations/metros/{uuid.uuid5(uuid.NAMESPACE_URL, 'metro/' + code)}"}

    def _facility_json(self, code: str) -> dict:
        facility = METROS.get(code, {}).get("facility", code + "1")
        fid = uuid.uuid5(uuid.NAMESPACE_URL, "facility/" + facility)
        return {"id": str(fid), "code": facility, "name": facility.upper(), "href": f"{BASE_PATH}/facilities/{fid}",
                "metro": self._metro_json(code)}

    def _page(self, items: list, query: dict[str, list[str]], path: str, key: str, default: int = 10) -> dict:
        try:
            per_page = int(query.get("per_page", [default])[-1])
            page = int(query.get("page", ["1"])[-1])
        except ValueError:
            raise _errors(422, "page and per_page must be integers") from None
        if not 1 <= per_page <= 1000 or page < 1:
            raise _errors(422, "per_page must be 1..1000 and page at least 1")
        last = max(1, -(-len(items) // per_page))

        def href(n: int) -> dict:
            return {"href": f"{BASE_PATH}{path}?{urlencode({'page': n, 'per_page': per_page})}"}

        meta = {"first": href(1), "last": href(last), "self": href(page), "total": len(items),
                "current_page": page, "last_page": last}
        if page < last:
            meta["next"] = href(page + 1)
        if page > 1:
            meta["previous"] = href(page - 1)
        return {key: items[(page - 1) * per_page: page * per_page], "meta": meta}

    # --- devices -------------------------------------------------------------------------------

    def _create_device(self, project_id: str, body: dict) -> dict:
        device_id = str(uuid.uuid4())
        hostname = body.get("hostname") or f"device-{device_id[:8]}"
        requested = body.get("ip_addresses") or [{"address_family": 4, "public": True},
                                                 {"address_family": 4, "public": False},
                                                 {"address_family": 6, "public": True}]
        device = {
            "id": device_id, "project": project_id, "hostname": hostname, "created": self.clock(),
            "created_at": _now_iso(), "tags": list(body.get("tags") or []), "metro": body.get("metro"),
            "plan": body.get("plan"), "operating_system": body.get("operating_system"),
            "billing_cycle": body.get("billing_cycle") or "hourly", "userdata": body.get("userdata") or "",
            "ssh_keys": list(body.get("project_ssh_keys") or []), "sessions_seen": 0,
            "fail": hostname in self.failing, "vanish": self.failing.get(hostname, (False, False))[0],
            "delete_forbidden": self.failing.get(hostname, (False, False))[1],
            "neighbor_polls": 0, "ips": self._assign_ips(device_id, hostname, body.get("metro"), requested),
        }
        self.devices[device_id] = device
        return device

    def _assign_ips(self, device_id: str, hostname: str, metro: str, requested: list[dict]) -> list[dict]:
        ips = []
        block = self.block_for(metro)
        for wanted in requested:
            family, public = wanted.get("address_family"), wanted.get("public", True)
            if family == 6:
                if hostname in self.addresses:
                    address, gateway, cidr = self.addresses[hostname]
                    network = ipaddress.IPv6Interface(f"{address}/{cidr}").network
                else:
                    cidr = int(wanted.get("cidr") or 127)
                    size = 2 ** (128 - cidr)
                    offset = -(-self.next_offset.get(metro, 2) // size) * size  # aligned, after ::/127
                    self.next_offset[metro] = offset + size
                    network = ipaddress.IPv6Network((int(block.network_address) + offset, cidr))
                    address, gateway = str(network.network_address + 1), str(network.network_address)
                ips.append(self._assignment(device_id, 6, True, str(address), str(gateway), network, cidr,
                                            parent=(block, self.block_href(metro))))
            else:
                n = self._next_v4
                self._next_v4 += 1
                base = ipaddress.IPv4Address("10.99.0.0") if not public else ipaddress.IPv4Address("147.75.64.0")
                network = ipaddress.IPv4Network((int(base) + 2 * n, 31))
                parent = (ipaddress.IPv4Network("10.99.0.0/16" if not public else "147.75.64.0/18"), None)
                ips.append(self._assignment(device_id, 4, bool(public), str(network.network_address + 1),
                                            str(network.network_address), network, 31, parent=parent))
        return ips

    def block_id(self, metro: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"block/{self.project_id}/{metro}"))

    def block_href(self, metro: str) -> str:
        return f"{BASE_PATH}/ips/{self.block_id(metro)}"

    def _assignment(self, device_id: str, family: int, public: bool, address: str, gateway: str,
                    network: Any, cidr: int, parent: tuple[Any, str | None]) -> dict:
        ip_id = str(uuid.uuid4())
        block, block_href = parent
        entry = {
            "id": ip_id, "address_family": family, "public": public, "management": True, "enabled": True,
            "manageable": True, "global_ip": False, "cidr": cidr, "netmask": str(network.netmask),
            "network": str(network.network_address), "address": address, "gateway": gateway,
            "parent_block": {"network": str(block.network_address), "netmask": str(block.netmask),
                             "cidr": block.prefixlen, "href": block_href or f"{BASE_PATH}/ips/{uuid.uuid4()}"},
            "assigned_to": {"href": f"{BASE_PATH}/devices/{device_id}"},
            "created_at": _now_iso(), "href": f"{BASE_PATH}/ips/{ip_id}",
        }
        if family == 6:
            entry["parent_block"]["network"] = _padded(str(block.network_address))
        return entry

    def _device_json(self, device: dict) -> dict:
        state = self._state(device)
        project_href = f"{BASE_PATH}/projects/{device['project']}"
        document = {
            "id": device["id"], "short_id": device["id"][:8], "hostname": device["hostname"], "state": state,
            "tags": device["tags"], "billing_cycle": device["billing_cycle"], "locked": False,
            "always_pxe": False, "customdata": {}, "userdata": device["userdata"],
            "created_at": device["created_at"], "updated_at": _now_iso(),
            "href": f"{BASE_PATH}/devices/{device['id']}",
            "plan": {"slug": device["plan"], "name": device["plan"], "class": device["plan"]},
            "operating_system": {"slug": device["operating_system"], "distro": "ubuntu",
                                 "name": device["operating_system"], "version": "24.04"},
            "metro": self._metro_json(device["metro"]), "facility": self._facility_json(device["metro"]),
            "project": {"href": project_href}, "project_lite": {"href": project_href},
            "ssh_keys": [{"href": f"{BASE_PATH}/ssh-keys/{k}"} for k in device["ssh_keys"]],
            "ip_addresses": [] if state == "queued" else device["ips"],
            "network_ports": [], "volumes": [], "actions": [],
            "sos": f"{device['id']}@sos.{METROS.get(device['metro'], {}).get('facility', 'da11')}.platformequinix.com",
        }
        if state == "provisioning":
            document["provisioning_percentage"] = 50.0
        return document

    def _reap(self) -> None:
        """Deleted devices stay `deprovisioning` for durations["deprovisioning"], then are gone."""
        for device_id, device in list(self.devices.items()):
            if device.get("deleted") is not None and self.clock() - device["deleted"] >= self.durations["deprovisioning"]:
                del self.devices[device_id]

    def _visible(self, device: dict) -> bool:
        return not (device["vanish"] and self._state(device) == "failed")

    # --- route actions (called with the lock held) ----------------------------------------------

    def list_devices(self, project_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        self._project(project_id)
        self._reap()
        devices = [d for d in self.devices.values() if d["project"] == project_id and self._visible(d)]
        if "tag" in query:
            devices = [d for d in devices if query["tag"][-1] in d["tags"]]
        if "hostname" in query:  # "filter by partial hostname"
            devices = [d for d in devices if query["hostname"][-1] in d["hostname"]]
        if "metro" in query:
            devices = [d for d in devices if d["metro"] == query["metro"][-1]]
        if "search" in query:
            term = query["search"][-1].lower()
            devices = [d for d in devices if any(term in str(v).lower() for v in self._searchable(d))]
        devices.sort(key=lambda d: d["created"])
        items = [_shaped(self._device_json(d), query, ()) for d in devices]
        return 200, self._page(items, query, f"/projects/{project_id}/devices", "devices")

    @staticmethod
    def _searchable(device: dict) -> list[Any]:
        return [device["hostname"], device["id"][:8], device["plan"], device["metro"], device["operating_system"],
                *device["tags"], *(ip["address"] for ip in device["ips"])]

    def post_device(self, project_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        project = self._project(project_id)
        if not isinstance(body, dict):
            raise _errors(422, "request body must be a JSON object")
        problems = [f"{k} is required" for k in ("metro", "plan", "operating_system") if not body.get(k)]
        metro = body.get("metro")
        if metro and (not isinstance(metro, str) or metro not in METROS):
            problems.append(f"metro {metro!r} is not a valid metro code")
        for wanted in body.get("ip_addresses") or []:
            cidr = wanted.get("cidr") if isinstance(wanted, dict) else None
            if cidr is not None and wanted.get("address_family") == 6 and not (isinstance(cidr, int) and 124 <= cidr <= 127):
                problems.append("cidr for IPv6 addresses must be 124..127")
        if "facility" in body:
            problems.append("facility is deprecated; use metro")
        hostname = body.get("hostname") or ""
        if "_" in hostname:
            problems.append("Hostname is invalid: underscores are not allowed")
        if body.get("billing_cycle") not in (None, "hourly", "daily", "monthly", "yearly"):
            problems.append("billing_cycle is not valid")
        requested = body.get("ip_addresses")
        if requested is not None:
            if not any(a.get("address_family") == 4 and a.get("public") is False for a in requested):
                problems.append("Private IPv4 address is required")
            if any(a.get("address_family") == 6 and a.get("public") is False for a in requested):
                problems.append("Private IPv6 addresses are not supported")
        userdata = body.get("userdata")
        if userdata and not userdata.startswith("#"):
            problems.append("userdata must start with #cloud-config, #! or #!ipxe")
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            problems.append("tags must be a list of non-empty strings")
        for key_id in body.get("project_ssh_keys") or []:
            key = self.ssh_keys.get(key_id)
            if key is None or key["project"] != project["id"]:
                problems.append(f"project SSH key {key_id} not found")
        if problems:
            raise _errors(422, *problems)
        return 201, self._device_json(self._create_device(project_id, body))

    def get_device(self, device_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        return 200, self._device_json(self._device(device_id))

    def update_device(self, device_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        """PUT /devices/{id} (DeviceUpdateInput): only tags are kept here; other keys are checked."""
        device = self._device(device_id)
        allowed = {"always_pxe", "billing_cycle", "customdata", "description", "hostname", "firmware_set_id",
                   "ipxe_script_url", "locked", "network_frozen", "spot_instance", "tags", "userdata"}
        if not isinstance(body, dict) or set(body) - allowed:
            raise _errors(422, f"unknown fields: {sorted(set(body or {}) - allowed)}")
        tags = body.get("tags", device["tags"])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _errors(422, "tags must be a list of strings")
        device["tags"] = list(tags)
        return 200, self._device_json(device)

    def delete_device(self, device_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        self._reap()
        device = self.devices.get(device_id)
        if device is None:
            raise _errors(404, "Not found")
        if device["delete_forbidden"] and self._state(device) == "failed":
            raise _errors(403, "You are not authorized to view this device")
        device.setdefault("deleted", self.clock())  # deprovisioning, then gone (see _reap)
        for session_id in [s for s, v in self.sessions.items() if v["device"] == device_id]:
            del self.sessions[session_id]
        self._reap()
        return 204, None

    # --- SSH keys ------------------------------------------------------------------------------

    def list_ssh_keys(self, project_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        self._project(project_id)
        keys = [self._key_json(k) for k in self.ssh_keys.values() if k["project"] == project_id]
        return 200, {"ssh_keys": keys}

    def post_ssh_key(self, project_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        self._project(project_id)
        text = (body or {}).get("key") or ""
        parts = text.split()
        try:
            blob = base64.b64decode(parts[1], validate=True) if len(parts) >= 2 else b""
        except ValueError:
            blob = b""
        if not blob:
            raise _errors(422, "Key is not a valid SSH public key")
        digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
        fingerprint = ":".join(digest[i:i + 2] for i in range(0, 32, 2))
        if any(k["fingerprint"] == fingerprint and k["project"] == project_id for k in self.ssh_keys.values()):
            raise _errors(422, "Fingerprint has already been taken")
        key = {"id": str(uuid.uuid4()), "project": project_id, "label": body.get("label") or "",
               "key": text, "fingerprint": fingerprint, "tags": list(body.get("tags") or []),
               "created_at": _now_iso()}
        self.ssh_keys[key["id"]] = key
        return 201, self._key_json(key)

    def _key_json(self, key: dict) -> dict:
        return {"id": key["id"], "label": key["label"], "key": key["key"], "fingerprint": key["fingerprint"],
                "tags": key["tags"], "entity": {"href": f"{BASE_PATH}/projects/{key['project']}"},
                "created_at": key["created_at"], "updated_at": key["created_at"],
                "href": f"{BASE_PATH}/ssh-keys/{key['id']}"}

    # --- BGP -----------------------------------------------------------------------------------

    def get_bgp_config(self, project_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        project = self._project(project_id)
        config = project["bgp"]
        if config is None:
            # The API answers 200 with an empty config when BGP was never enabled (pitfall 2).
            # No `id` (a Go client reads it as ""): an empty string is no uuid.
            return 200, {"max_prefix": 10, "sessions": [], "ranges": []}
        return 200, {
            "id": config["id"], "status": config["status"], "deployment_type": "local", "asn": config["asn"],
            "md5": config["md5"], "max_prefix": config["max_prefix"], "route_object": None, "ranges": [],
            "sessions": [], "project": {"href": f"{BASE_PATH}/projects/{project_id}"},
            "created_at": config["created_at"], "requested_at": config["created_at"],
            "href": f"{BASE_PATH}/bgp-configs/{config['id']}",
        }

    def post_bgp_config(self, project_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        project = self._project(project_id)
        body = body if isinstance(body, dict) else {}
        if project["bgp"] is not None and project["bgp"]["status"] == "enabled":
            raise _errors(422, "BGP has already been enabled for this project")
        problems = []
        if body.get("deployment_type") not in ("local", "global"):
            problems.append("deployment_type must be local or global")
        if not isinstance(body.get("asn"), int):
            problems.append("asn is required")
        md5 = body.get("md5")
        if md5 is not None and not MD5_RULE.match(md5):
            problems.append("md5 must be 10-20 letters and digits with a lower-case, an upper-case letter and a digit")
        if problems:
            raise _errors(422, *problems)
        project["bgp"] = {"id": str(uuid.uuid4()), "status": "enabled", "asn": body["asn"], "md5": md5,
                          "max_prefix": (project["bgp"] or {}).get("max_prefix", 10), "created_at": _now_iso()}
        return 204, None

    def list_sessions(self, device_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        self._device(device_id)
        sessions = [self._session_json(s) for s in self.sessions.values() if s["device"] == device_id]
        return 200, {"bgp_sessions": sessions, "href": f"{BASE_PATH}/devices/{device_id}/bgp/sessions"}

    def post_session(self, device_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        device = self._device(device_id)
        config = self.projects[device["project"]]["bgp"]
        if config is None or config["status"] != "enabled":
            raise _errors(422, "BGP is not enabled for this project")
        if self._state(device) != "active":
            raise _errors(422, f"Device must be active to create a BGP session (it is {self._state(device)})")
        family = (body or {}).get("address_family")
        if family not in ("ipv4", "ipv6"):
            raise _errors(422, "address_family must be ipv4 or ipv6")
        if any(s["device"] == device_id and s["family"] == family for s in self.sessions.values()):
            raise _errors(422, f"Address family already has session with {family}")
        session = {"id": str(uuid.uuid4()), "device": device_id, "family": family,
                   "default_route": bool((body or {}).get("default_route")), "created_at": _now_iso(),
                   "created": self.clock()}
        self.sessions[session["id"]] = session
        return 201, self._session_json(session)

    def _session_json(self, session: dict) -> dict:
        device = self.devices[session["device"]]
        status = session.get("status") or self.session_status.get(device["hostname"])  # as a test set it
        if status is None:
            up = self.clock() - session["created"] >= self.session_up_delay and self._state(device) == "active"
            status = ",".join(["up" if up else "unknown"] * len(self.peer_ips))  # one value per router
        return {"id": session["id"], "address_family": session["family"], "default_route": session["default_route"],
                "status": status, "learned_routes": session.get("learned_routes", []),
                "device": {"href": f"{BASE_PATH}/devices/{session['device']}"},
                "created_at": session["created_at"], "updated_at": session["created_at"],
                "href": f"{BASE_PATH}/bgp/sessions/{session['id']}"}

    def get_neighbors(self, device_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        device = self._device(device_id)
        device["neighbor_polls"] += 1
        config = self.projects[device["project"]]["bgp"]
        neighbors = []
        ready = (config is not None and config["status"] == "enabled" and self._state(device) == "active"
                 and device["neighbor_polls"] > self.neighbor_delay_polls)
        for session in (s for s in self.sessions.values() if s["device"] == device_id and ready):
            family = 6 if session["family"] == "ipv6" else 4
            own = next((ip for ip in device["ips"] if ip["address_family"] == family
                        and ip["public"] == (family == 6)), None)
            metros = sorted({d["metro"] for d in self.devices.values() if d["project"] == device["project"]})
            neighbor = {
                "address_family": family, "customer_as": config["asn"],
                "customer_ip": own["address"] if own else None,
                "md5_enabled": bool(config["md5"]),
                "multihop": self.multihop, "peer_as": self.peer_as,
                "peer_ips": [_padded(ip) for ip in self.peer_ips] if family == 6 else ["169.254.255.1", "169.254.255.2"],
                "routes_in": [{"route": str(self.block_for(m)), "exact": False} for m in metros] if family == 6 else [],
                "routes_out": [],
            }
            if config["md5"]:  # the spec types it as a string: no password, no key
                neighbor["md5_password"] = config["md5"]
            neighbors.append(neighbor)
        return 200, {"bgp_neighbors": neighbors, "href": f"{BASE_PATH}/devices/{device_id}/bgp/neighbors"}

    # --- IP reservations -----------------------------------------------------------------------

    def list_ips(self, project_id: str, *, query: dict, body: Any) -> tuple[int, Any]:
        project = self._project(project_id)
        metros = sorted({d["metro"] for d in self.devices.values() if d["project"] == project_id})
        reservations = []
        # A /56 exists only once a device is in its metro (pitfall 9).
        for metro in metros:
            reservations.append(self._reservation(project, "public_ipv6", self.block_id(metro), self.block_for(metro), metro))
        if metros:
            reservations.append(self._reservation(project, "private_ipv4", project["private_block_id"],
                                                  ipaddress.IPv4Network("10.99.0.0/16"), metros[0]))
        types = [t for value in query.get("types", []) for t in value.split(",") if t]
        if types:
            reservations = [r for r in reservations if r["type"] in types]
        reservations = [_shaped(r, query, ("metro", "facility", "project")) for r in reservations]
        return 200, self._page(reservations, query, f"/projects/{project_id}/ips", "ip_addresses", default=250)

    def _reservation(self, project: dict, kind: str, block_id: str, network: Any, metro_code: str) -> dict:
        assigned = [ip["href"] for d in self.devices.values() if d["project"] == project["id"]
                    for ip in d["ips"] if ip["parent_block"]["href"].endswith(block_id)]
        metro = None if self.block_metro_null else self._metro_json(metro_code)
        return {
            "id": block_id, "type": kind, "address_family": network.version, "public": kind != "private_ipv4",
            "management": True, "manageable": True, "global_ip": False, "addon": False, "bill": False,
            "enabled": True, "network": _padded(str(network.network_address)) if network.version == 6
            else str(network.network_address), "address": str(network.network_address),
            "gateway": str(network.network_address + 1), "cidr": network.prefixlen, "netmask": str(network.netmask),
            "metro": metro, "facility": self._facility_json(metro_code),
            "project": {"href": f"{BASE_PATH}/projects/{project['id']}"},
            "project_lite": {"href": f"{BASE_PATH}/projects/{project['id']}"},
            "assignments": [{"href": h} for h in assigned], "available": f"{BASE_PATH}/ips/{block_id}/available",
            "tags": [], "customdata": {}, "created_at": _now_iso(), "href": f"{BASE_PATH}/ips/{block_id}",
        }


def _listed(query: dict[str, list[str]], name: str) -> set[str]:
    return {v for value in query.get(name, []) for v in value.split(",") if v}


def _shaped(document: dict, query: dict[str, list[str]], references: tuple[str, ...]) -> dict:
    """`include` / `exclude` as the spec says: a referenced object comes back as {href} unless
    included (dotted names include the first level here); excluded fields are left out."""
    included = {name.split(".")[0] for name in _listed(query, "include")}
    shaped = {}
    for key, value in document.items():
        if key in _listed(query, "exclude"):
            continue
        if key in references and isinstance(value, dict) and key not in included:
            value = {"href": value.get("href") or f"{BASE_PATH}/{key}s/{value.get('id', '')}"}
        shaped[key] = value
    return shaped


_ID = r"([^/]+)"
_ROUTES: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
    ("GET", rf"/projects/{_ID}/devices", FakeMetal.list_devices),
    ("POST", rf"/projects/{_ID}/devices", FakeMetal.post_device),
    ("GET", rf"/devices/{_ID}", FakeMetal.get_device),
    ("PUT", rf"/devices/{_ID}", FakeMetal.update_device),
    ("DELETE", rf"/devices/{_ID}", FakeMetal.delete_device),
    ("GET", rf"/projects/{_ID}/ssh-keys", FakeMetal.list_ssh_keys),
    ("POST", rf"/projects/{_ID}/ssh-keys", FakeMetal.post_ssh_key),
    ("GET", rf"/projects/{_ID}/bgp-config", FakeMetal.get_bgp_config),
    ("POST", rf"/projects/{_ID}/bgp-configs", FakeMetal.post_bgp_config),
    ("GET", rf"/devices/{_ID}/bgp/sessions", FakeMetal.list_sessions),
    ("POST", rf"/devices/{_ID}/bgp/sessions", FakeMetal.post_session),
    ("GET", rf"/devices/{_ID}/bgp/neighbors", FakeMetal.get_neighbors),
    ("GET", rf"/projects/{_ID}/ips", FakeMetal.list_ips),
]

_REASONS = {429: "Too many requests", 500: "Oh snap, something went wrong! We've been notified and will get to it.",
            502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout", 403: "Forbidden"}


