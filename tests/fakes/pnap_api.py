"""A stateful fake of phoenixNAP's APIs (BMC, networks, IPs) and its OAuth2 token endpoint, on
loopback HTTP, built from the official specs in reference/phoenixnap/ (shapes checked in
tests/test_pnap_contract.py against the specs and the official SDK models).

It keeps servers, SSH keys, IP blocks, public networks and BGP peer groups. Servers go
`creating` -> `powered-on` (or `error`) and, once deprovisioned, `deleting` -> gone, on an
injectable clock; a BGP peer group goes PENDING -> READY. Tokens expire after `token_lifetime`.

Where the specs are silent, the fake answers as documented here: a deleted or unknown id answers
404 with an Error body (the specs list no 404 for servers; the live API answers one);
`GET /ip-blocks` filters by `tag` ("name.value"), like `GET /servers`.

Faults (the same `Fault` as the Metal fake): `add_fault()` answers a status, resets the
connection, or handles the request and fails afterwards (a POST acted on after the client gave
up); `fail_server(hostname)` makes a server end in `error`; `peer_group_status` keeps a new peer
group PENDING or ON_HOLD; `bgp_locations` lists where BGP is offered (406 elsewhere).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from fakes.common import Fault, Handler, Recorded, Served

TOKEN_PATH = "/auth/realms/BMC/protocol/openid-connect/token"
LOCATIONS = ("PHX", "ASH", "SGP", "NLD", "CHI", "SEA", "AUS")
HOSTNAME = re.compile(r"^(?=.*[a-zA-Z])([a-zA-Z0-9().-])+$")
NETWORK_NAME = re.compile(r"^(?=.*[a-zA-Z])([a-zA-Z0-9(). -])+$")
PASSWORD = re.compile(r"^[a-zA-Z0-9!@#$%^&*()\-|\[\]{}=;:<>,.]+$")
V4_SIZES = {f"/{n}" for n in range(22, 32)}


def _id() -> str:
    return secrets.token_hex(12)  # phoenixNAP ids look like MongoDB ObjectIds


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class PnapError(Exception):
    def __init__(self, status: int, message: str, *validation: str):
        self.status = status
        self.body = {"message": message, **({"validationErrors": list(validation)} if validation else {})}


class FakePnap(Served):
    thread_name = "fake-pnap"

    def __init__(self, client_id: str = "fake-client-id", client_secret: str = "fake-client-secret-0123456789", *,
                 clock: Callable[[], float] = time.time, durations: dict[str, float] | None = None,
                 token_lifetime: float = 3600.0, bgp_locations: tuple[str, ...] = ("PHX", "ASH", "NLD", "SGP", "CHI"),
                 peer_group_status: str = "READY", v6_pool: str = "2604:2dc0:100::/48", host: str = "127.0.0.1"):
        self.client_id, self.client_secret = client_id, client_secret
        self.clock = clock
        self.durations = {"creating": 0.0, "deleting": 0.0, "bgp": 0.0, **(durations or {})}
        self.token_lifetime = token_lifetime
        self.bgp_locations = bgp_locations
        self.peer_group_status = peer_group_status  # where a new group ends: READY, PENDING (stuck), ON_HOLD
        self.v6_pool = ipaddress.IPv6Network(v6_pool)
        self.host = host
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.tokens: dict[str, float] = {}  # access token -> expiry
        self.failing: set[str] = set()
        self.servers: dict[str, dict] = {}
        self.ssh_keys: dict[str, dict] = {}
        self.blocks: dict[str, dict] = {}
        self.networks: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self._next_block = 1
        self._next_v4 = 10
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def auth_url(self) -> str:
        return self.url + TOKEN_PATH

    # --- test controls -------------------------------------------------------------------------

    def add_fault(self, method: str, path: str, **options: Any) -> Fault:
        fault = Fault(method.upper(), path, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def fail_server(self, hostname: str) -> None:
        with self.lock:
            self.failing.add(hostname)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def live(self) -> dict[str, list]:
        """What exists now (for leak checks): servers not gone, blocks, networks, groups."""
        with self.lock:
            self._reap()
            return {"servers": sorted(s["hostname"] for s in self.servers.values()),
                    "blocks": sorted(b["cidr"] for b in self.blocks.values()),
                    "networks": sorted(n["name"] for n in self.networks.values()),
                    "groups": sorted(g["location"] for g in self.groups.values())}

    # --- dispatch ------------------------------------------------------------------------------

    def handle(self, handler: Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        form = handler.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
        try:
            body = parse_qs(raw.decode()) if form else (json.loads(raw) if raw else None)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "authorization"}
        record = Recorded(method, parts.path, parse_qs(parts.query, keep_blank_values=True),
                          None if form else body, headers)
        with self.lock:
            self.requests.append(record)
            fault = next((f for f in self.faults if f.matches(record)), None)
            if fault:
                fault.hits += 1
        if fault and not fault.after and self._inject(handler, record, fault):
            return
        try:
            if parts.path == TOKEN_PATH and method == "POST":
                status, answer = self._token(handler, body if isinstance(body, dict) else {})
            else:
                self._authorize(handler.headers.get("Authorization", ""))
                status, answer = self._route(method, parts.path, record.query, body)
        except PnapError as exc:
            status, answer = exc.status, exc.body
        if fault and fault.after and self._inject(handler, record, fault):
            return
        if parts.path == TOKEN_PATH:
            record.response = None  # never keep a token in the record
            record.status = status
            payload = json.dumps(answer).encode()
            return handler.answer(status, payload, "application/json")
        handler.answer_json(status, answer, None, record)

    def _inject(self, handler: Handler, record: Recorded, fault: Fault) -> bool:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.reset:
            handler.reset()
            return True
        if fault.status:
            body = fault.body if fault.body is not None else {"message": f"injected {fault.status}"}
            handler.answer_json(fault.status, body, fault.headers, record)
            return True
        return False

    def _token(self, handler: Handler, form: dict) -> tuple[int, Any]:
        client_id, secret = (form.get("client_id") or [None])[-1], (form.get("client_secret") or [None])[-1]
        basic = handler.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if (form.get("grant_type") or [""])[-1] != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if client_id != self.client_id or secret != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Invalid client credentials"}
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = self.clock() + self.token_lifetime
        return 200, {"access_token": token, "expires_in": int(self.token_lifetime), "token_type": "Bearer",
                     "scope": "bmc"}

    def _authorize(self, header: str) -> None:
        token = header[7:] if header.startswith("Bearer ") else ""
        with self.lock:
            expiry = self.tokens.get(token)
        if expiry is None or self.clock() >= expiry:
            raise PnapError(401, "Unauthorized")

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        for verb, pattern, action in _ROUTES:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                with self.lock:
                    self._reap()
                    return action(self, *match.groups(), query=query, body=body)
        raise PnapError(404, "Resource not found")

    # --- state ---------------------------------------------------------------------------------

    def _status(self, server: dict) -> str:
        if server.get("deleted") is not None:
            return "deleting"
        if self.clock() - server["created"] < self.durations["creating"]:
            return "creating"
        return "error" if server["fail"] else "powered-on"

    def _reap(self) -> None:
        for sid, server in list(self.servers.items()):
            if server.get("deleted") is not None and self.clock() - server["deleted"] >= self.durations["deleting"]:
                del self.servers[sid]
                for network in self.networks.values():
                    network["members"].pop(sid, None)
        for group in self.groups.values():
            if group["status"] == "PENDING" and self.clock() - group["created"] >= self.durations["bgp"]:
                group["status"] = self.peer_group_status

    @staticmethod
    def _tags(requested: Any) -> list[dict]:
        if requested is None:
            return []
        if not isinstance(requested, list) or not all(isinstance(t, dict) and t.get("name") for t in requested):
            raise PnapError(400, "Validation failed", "tags: each tag needs a name")
        return [{"id": _id(), "name": t["name"], **({"value": t["value"]} if "value" in t else {}),
                 "isBillingTag": False, "createdBy": "USER"} for t in requested]

    @staticmethod
    def _tag_filter(items: list[dict], query: dict) -> list[dict]:
        for wanted in query.get("tag", []):
            name, _, value = wanted.partition(".")
            items = [i for i in items if any(t["name"] == name and (not value or t.get("value") == value)
                                             for t in i["tags"])]
        return items

    def _get(self, table: dict, key: str, what: str) -> dict:
        if key not in table:
            raise PnapError(404, f"{what} with id {key} not found")
        return table[key]

    # --- servers -------------------------------------------------------------------------------

    def list_servers(self, *, query: dict, body: Any) -> tuple[int, Any]:
        servers = self._tag_filter(list(self.servers.values()), query)
        locations = {loc for value in query.get("location", []) for loc in value.split(",")}
        servers = [s for s in servers if not locations or s["location"] in locations]
        return 200, [self._server_json(s) for s in sorted(servers, key=lambda s: s["created"])]

    def post_server(self, *, query: dict, body: Any) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        problems = [f"{k}: must not be null" for k in ("hostname", "os", "type", "location") if not body.get(k)]
        if body.get("hostname") and not HOSTNAME.match(body["hostname"]):
            problems.append("hostname: must match the hostname pattern")
        if body.get("location") and body["location"] not in LOCATIONS:
            problems.append("location: unknown location")
        if body.get("networkType", "PUBLIC_AND_PRIVATE") not in ("PUBLIC_AND_PRIVATE", "PRIVATE_ONLY", "PUBLIC_ONLY",
                                                                 "USER_DEFINED"):
            problems.append("networkType: unknown network type")
        for key_id in body.get("sshKeyIds") or []:
            if key_id not in self.ssh_keys:
                problems.append(f"sshKeyIds: SSH key {key_id} not found")
        userdata = ((body.get("osConfiguration") or {}).get("cloudInit") or {}).get("userData")
        if userdata is not None:
            try:
                base64.b64decode(userdata, validate=True)
            except ValueError:
                problems.append("osConfiguration.cloudInit.userData: must be base64")
        public = ((body.get("networkConfiguration") or {}).get("publicNetworkConfiguration") or {}).get("publicNetworks") or []
        for entry in public:
            network = self.networks.get(entry.get("id"))
            if network is None or network["location"] != body.get("location"):
                problems.append(f"publicNetworks: network {entry.get('id')} not found in {body.get('location')}")
                continue
            for ip in entry.get("ips") or []:
                if not any(ipaddress.ip_address(ip) in ipaddress.ip_network(self.blocks[b]["cidr"]) for b in network["blocks"]):
                    problems.append(f"publicNetworks: {ip} is not in the network's blocks")
                elif any(ip in ips for ips in network["members"].values()):
                    raise PnapError(409, f"IP {ip} is already in use on network {network['id']}")
        if problems:
            raise PnapError(400, "Validation failed", *problems)
        sid = _id()
        v4 = str(ipaddress.IPv4Address("131.153.0.0") + self._next_v4)
        self._next_v4 += 1
        server = {"id": sid, "hostname": body["hostname"], "description": body.get("description"), "os": body["os"],
                  "type": body["type"], "location": body["location"], "created": self.clock(),
                  "pricingModel": body.get("pricingModel", "HOURLY"), "networkType": body.get("networkType", "PUBLIC_AND_PRIVATE"),
                  "tags": self._tags(body.get("tags")), "fail": body["hostname"] in self.failing, "v4": v4,
                  "public": [{"id": e["id"], "ips": list(e.get("ips") or [])} for e in public]}
        for entry in server["public"]:
            self.networks[entry["id"]]["members"][sid] = entry["ips"]
        self.servers[sid] = server
        return 200, self._server_json(server)

    def get_server(self, sid: str, *, query: dict, body: Any) -> tuple[int, Any]:
        return 200, self._server_json(self._get(self.servers, sid, "Server"))

    def deprovision(self, sid: str, *, query: dict, body: Any) -> tuple[int, Any]:
        server = self._get(self.servers, sid, "Server")
        if server.get("deleted") is not None:
            raise PnapError(409, "Server is already being deprovisioned")
        server["deleted"] = self.clock()
        self._reap()
        return 202, "The server has been deprovisioned and related network setup is being updated."

    def _server_json(self, server: dict) -> dict:
        status = self._status(server)
        ready = status == "powered-on"
        v6 = [ip for e in server["public"] for ip in e["ips"]] if ready else []
        return {
            "id": server["id"], "status": status, "hostname": server["hostname"],
            **({"description": server["description"]} if server["description"] else {}),
            "os": server["os"], "type": server["type"], "location": server["location"],
            "cpu": "Intel Xeon E-2276G", "cpuCount": 1, "coresPerCpu": 6, "cpuFrequency": 3.8, "ram": "32GB",
            "storage": "1x 960GB NVMe", "privateIpAddresses": ["10.0.0.11"],
            "publicIpAddresses": ([server["v4"]] if server["networkType"] == "PUBLIC_AND_PRIVATE" else []) + v6,
            "pricingModel": server["pricingModel"], "networkType": server["networkType"], "tags": server["tags"],
            **({"provisionedOn": _now()} if ready else {}),
            "networkConfiguration": {
                "gatewayAddress": "131.153.0.1",
                "privateNetworkConfiguration": {"configurationType": "USE_OR_CREATE_DEFAULT", "privateNetworks": []},
                "publicNetworkConfiguration": {"publicNetworks": [
                    {"id": e["id"], "ips": e["ips"], "statusDescription": "assigned" if ready else "assigning"}
                    for e in server["public"]]},
            },
            "storageConfiguration": {"rootPartition": {"raid": "NO_RAID", "size": -1}},
        }

    # --- SSH keys ------------------------------------------------------------------------------

    def list_keys(self, *, query: dict, body: Any) -> tuple[int, Any]:
        return 200, list(self.ssh_keys.values())

    def post_key(self, *, query: dict, body: Any) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        problems = [f"{k}: must not be null" for k in ("default", "name", "key") if body.get(k) is None]
        parts = str(body.get("key") or "").split()
        try:
            blob = base64.b64decode(parts[1], validate=True) if len(parts) >= 2 else b""
        except ValueError:
            blob = b""
        if not blob:
            problems.append("key: not a valid SSH public key")
        if problems:
            raise PnapError(400, "Validation failed", *problems)
        if any(k["name"] == body["name"] or k["key"].split()[1] == parts[1] for k in self.ssh_keys.values()):
            raise PnapError(409, "SSH key with the same name or key already exists")
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        key = {"id": _id(), "default": bool(body["default"]), "name": body["name"], "key": body["key"],
               "fingerprint": f"SHA256:{digest}", "createdOn": _now(), "lastUpdatedOn": _now()}
        self.ssh_keys[key["id"]] = key
        return 201, key

    # --- IP blocks -----------------------------------------------------------------------------

    def list_blocks(self, *, query: dict, body: Any) -> tuple[int, Any]:
        return 200, [self._block_json(b) for b in self._tag_filter(list(self.blocks.values()), query)]

    def post_block(self, *, query: dict, body: Any) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        version, size = body.get("ipVersion", "V4"), body.get("cidrBlockSize")
        problems = [f"{k}: must not be null" for k in ("location", "cidrBlockSize") if not body.get(k)]
        if body.get("location") and body["location"] not in LOCATIONS:
            problems.append("location: unknown location")
        if version not in ("V4", "V6"):
            problems.append("ipVersion: must be V4 or V6")
        elif size and size not in ({"/64"} if version == "V6" else V4_SIZES):
            problems.append(f"cidrBlockSize: {size} is not offered for {version}")
        if problems:
            raise PnapError(400, "Validation failed", *problems)
        if version == "V6":
            cidr = ipaddress.IPv6Network((int(self.v6_pool.network_address) + (self._next_block << 64), 64))
        else:
            cidr = ipaddress.IPv4Network((int(ipaddress.IPv4Address("198.51.0.0")) + (self._next_block << 8),
                                          int(size[1:])), strict=False)
        self._next_block += 1
        block = {"id": _id(), "location": body["location"], "cidrBlockSize": size, "cidr": str(cidr),
                 "ipVersion": version, "description": body.get("description"), "tags": self._tags(body.get("tags")),
                 "network": None, "createdOn": _now()}
        self.blocks[block["id"]] = block
        return 201, self._block_json(block)

    def get_block(self, bid: str, *, query: dict, body: Any) -> tuple[int, Any]:
        return 200, self._block_json(self._get(self.blocks, bid, "IP Block"))

    def delete_block(self, bid: str, *, query: dict, body: Any) -> tuple[int, Any]:
        block = self._get(self.blocks, bid, "IP Block")
        if block["network"]:
            raise PnapError(400, "IP Block is assigned to a resource and cannot be deleted")
        del self.blocks[bid]
        return 200, {"result": "IP Block has been deleted.", "ipBlockId": bid}

    def _block_json(self, block: dict) -> dict:
        document = {"id": block["id"], "location": block["location"], "cidrBlockSize": block["cidrBlockSize"],
                    "cidr": block["cidr"], "ipVersion": block["ipVersion"],
                    "status": "assigned" if block["network"] else "unassigned", "tags": block["tags"],
                    "isSystemManaged": False, "isBringYourOwn": False, "createdOn": block["createdOn"]}
        if block["description"]:
            document["description"] = block["description"]
        if block["network"]:
            document.update(assignedResourceId=block["network"], assignedResourceType="network")
        return document

    # --- public networks -----------------------------------------------------------------------

    def list_networks(self, *, query: dict, body: Any) -> tuple[int, Any]:
        locations = {v for value in query.get("location", []) for v in value.split(",")}
        return 200, [self._network_json(n) for n in self.networks.values() if not locations or n["location"] in locations]

    def post_network(self, *, query: dict, body: Any) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        problems = [f"{k}: must not be null" for k in ("name", "location") if not body.get(k)]
        if body.get("name") and not NETWORK_NAME.match(body["name"]):
            problems.append("name: must match the network name pattern")
        blocks = []
        for entry in body.get("ipBlocks") or []:
            block = self.blocks.get(entry.get("id"))
            if block is None or block["location"] != body.get("location"):
                problems.append(f"ipBlocks: IP block {entry.get('id')} not found in {body.get('location')}")
            elif block["network"]:
                problems.append(f"ipBlocks: IP block {block['id']} is already assigned")
            else:
                blocks.append(block)
        if sum(b["ipVersion"] == "V6" for b in blocks) > 1:
            problems.append("ipBlocks: at most one IPv6 block per public network")
        if problems:
            raise PnapError(400, "Validation failed", *problems)
        if any(n["name"] == body["name"] and n["location"] == body["location"] for n in self.networks.values()):
            raise PnapError(409, f"A public network named {body['name']} already exists in {body['location']}")
        network = {"id": _id(), "name": body["name"], "location": body["location"], "description": body.get("description"),
                   "raEnabled": bool(body.get("raEnabled")), "blocks": [b["id"] for b in blocks], "members": {},
                   "vlanId": 10 + len(self.networks), "createdOn": _now()}
        for block in blocks:
            block["network"] = network["id"]
        self.networks[network["id"]] = network
        return 201, self._network_json(network)

    def get_network(self, nid: str, *, query: dict, body: Any) -> tuple[int, Any]:
        return 200, self._network_json(self._get(self.networks, nid, "Public network"))

    def delete_network(self, nid: str, *, query: dict, body: Any) -> tuple[int, Any]:
        network = self._get(self.networks, nid, "Public network")
        if network["members"]:
            raise PnapError(409, "Public network has members and cannot be deleted")
        for bid in network["blocks"]:
            if bid in self.blocks:
                self.blocks[bid]["network"] = None
        del self.networks[nid]
        return 204, None

    def _network_json(self, network: dict) -> dict:
        document = {"id": network["id"], "vlanId": network["vlanId"], "name": network["name"],
                    "location": network["location"], "status": "READY", "createdOn": network["createdOn"],
                    "raEnabled": network["raEnabled"],
                    "memberships": [{"resourceId": sid, "resourceType": "server", "ips": ips}
                                    for sid, ips in network["members"].items()],
                    "ipBlocks": [{"id": bid, "cidr": self.blocks[bid]["cidr"], "usedIpsCount": str(
                        sum(len(ips) for ips in network["members"].values()))} for bid in network["blocks"]]}
        if network["description"]:
            document["description"] = network["description"]
        return document

    # --- BGP peer groups -----------------------------------------------------------------------

    def list_groups(self, *, query: dict, body: Any) -> tuple[int, Any]:
        locations = {v for value in query.get("location", []) for v in value.split(",")}
        return 200, [self._group_json(g) for g in self.groups.values() if not locations or g["location"] in locations]

    def post_group(self, *, query: dict, body: Any) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        problems = [f"{k}: must not be null" for k in ("location", "asn", "advertisedRoutes") if body.get(k) is None]
        password = body.get("password")
        if password is not None and not (8 <= len(password) <= 32 and PASSWORD.match(password)):
            problems.append("password: 8 to 32 characters from the allowed set")
        if body.get("advertisedRoutes") not in (None, "DEFAULT", "NONE"):
            problems.append("advertisedRoutes: must be DEFAULT or NONE")
        if problems:
            raise PnapError(400, "Validation failed", *problems)
        if body["location"] not in self.bgp_locations:
            raise PnapError(406, f"BGP is not available in location {body['location']}")
        if any(g["location"] == body["location"] for g in self.groups.values()):
            raise PnapError(409, f"A BGP peer group already exists in {body['location']}")
        group = {"id": _id(), "location": body["location"], "asn": int(body["asn"]), "created": self.clock(),
                 "password": password or secrets.token_hex(8), "advertisedRoutes": body["advertisedRoutes"],
                 "status": "PENDING", "createdOn": _now()}
        self.groups[group["id"]] = group
        self._reap()
        return 202, self._group_json(group)

    def get_group(self, gid: str, *, query: dict, body: Any) -> tuple[int, Any]:
        return 200, self._group_json(self._get(self.groups, gid, "BGP peer group"))

    def _group_json(self, group: dict) -> dict:
        asn = {"asn": group["asn"], "isBringYourOwn": False, "verificationStatus": "VERIFIED"}
        prefixes = [{"ipAllocationId": b["id"], "cidr": b["cidr"], "ipVersion": "V6", "status": "READY"}
                    for b in self.blocks.values() if b["location"] == group["location"] and b["ipVersion"] == "V6"]
        return {"id": group["id"], "status": group["status"], "location": group["location"],
                "ipv4Prefixes": [], "ipPrefixes": prefixes, "targetAsnDetails": asn,
                **({"activeAsnDetails": asn} if group["status"] == "READY" else {}),
                "password": group["password"], "advertisedRoutes": group["advertisedRoutes"],
                "rpkiRoaOriginAsn": group["asn"], "eBgpMultiHop": 7,
                "peeringLoopbacksV4": ["169.254.0.1", "169.254.0.3"],
                "peeringLoopbacksV6": ["fd00:0:0:1005::1", "fd00:0:0:1005::2"],
                "keepAliveTimerSeconds": 10, "holdTimerSeconds": 30,
                "createdOn": group["createdOn"], "lastUpdatedOn": group["createdOn"]}


_ID = r"([0-9a-zA-Z-]+)"
_ROUTES: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
    ("GET", r"/bmc/v1/servers", FakePnap.list_servers),
    ("POST", r"/bmc/v1/servers", FakePnap.post_server),
    ("GET", rf"/bmc/v1/servers/{_ID}", FakePnap.get_server),
    ("POST", rf"/bmc/v1/servers/{_ID}/actions/deprovision", FakePnap.deprovision),
    ("GET", r"/bmc/v1/ssh-keys", FakePnap.list_keys),
    ("POST", r"/bmc/v1/ssh-keys", FakePnap.post_key),
    ("GET", r"/ips/v1/ip-blocks", FakePnap.list_blocks),
    ("POST", r"/ips/v1/ip-blocks", FakePnap.post_block),
    ("GET", rf"/ips/v1/ip-blocks/{_ID}", FakePnap.get_block),
    ("DELETE", rf"/ips/v1/ip-blocks/{_ID}", FakePnap.delete_block),
    ("GET", r"/networks/v1/public-networks", FakePnap.list_networks),
    ("POST", r"/networks/v1/public-networks", FakePnap.post_network),
    ("GET", rf"/networks/v1/public-networks/{_ID}", FakePnap.get_network),
    ("DELETE", rf"/networks/v1/public-networks/{_ID}", FakePnap.delete_network),
    ("GET", r"/networks/v1/bgp-peer-groups", FakePnap.list_groups),
    ("POST", r"/networks/v1/bgp-peer-groups", FakePnap.post_group),
    ("GET", rf"/networks/v1/bgp-peer-groups/{_ID}", FakePnap.get_group),
]
