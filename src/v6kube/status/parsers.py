"""Parsers for what `status` reads: pure functions from real command output or API bodies.

- `birdc show protocols all` and `birdc show route` (BIRD 2; also accepts `birdc -v` reply codes);
- `calicoctl node status` (its text tables; an INFO cell that wraps continues on rows whose
  address cell is empty);
- the Metal API's `GET /devices/{id}/bgp/sessions` body.
Test data: tests/data/bird (captured from the testbed), tests/data/calico (cited samples).
Unparseable lines are skipped, never fatal: status must show what it can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Mapping

_REPLY_CODE = re.compile(r"^\d{4}[- ]")
_SUMMARY = re.compile(r"^(?P<name>\S+)\s+(?P<proto>\S+)\s+(?P<table>\S+)\s+(?P<state>\S+)\s+"
                      r"(?P<since>\S+(?: \d\d:\d\d:\d\d(?:\.\d+)?)?)\s*(?P<info>.*?)\s*$")
_DETAIL = re.compile(r"^\s+(?P<key>[A-Za-z][A-Za-z0-9 ]*?):\s+(?P<value>.*?)\s*$")
_ROUTES = re.compile(r"(\d+) imported, (?:(\d+) filtered, )?(\d+) exported")
_ROUTE = re.compile(r"^(?P<prefix>\S+)?\s+(?P<kind>[a-z]+)\s+\[(?P<proto>\S+)\s+(?P<attrs>[^\]]*)\]\s*"
                    r"(?P<best>\*)?\s*\((?P<pref>\d+)[^)]*\)\s*(?:\[(?P<path>[^\]]*)\])?")
_VIA = re.compile(r"^\s+via\s+(?P<via>\S+)(?:\s+on\s+(?P<dev>\S+))?")


def _strip(line: str) -> str:
    return _REPLY_CODE.sub("", line, count=1)


def _address(text: str | None) -> IPv6Address | IPv4Address | None:
    try:
        return ip_address(text or "")
    except ValueError:
        return None


# --- BIRD ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BirdProtocol:
    name: str
    proto: str
    state: str  # BIRD's protocol state: up, start, down, ...
    since: str
    info: str  # the summary's Info column: the BGP state and, when there is one, the last message
    details: dict = field(default_factory=dict, compare=False)

    @property
    def bgp_state(self) -> str | None:
        return self.details.get("BGP state") or (self.info.split()[0] if self.proto == "BGP" and self.info else None)

    @property
    def established(self) -> bool:
        return self.bgp_state == "Established"

    @property
    def neighbor(self) -> IPv6Address | IPv4Address | None:
        """From `show protocols all`, else from calico-node's protocol name (Node_fd00__e), as
        calicoctl reads it."""
        if "Neighbor address" in self.details:
            return _address(self.details["Neighbor address"])
        kind, _, rest = self.name.partition("_")
        return _address(rest.replace("_", ":")) if kind in ("Node", "Global", "Mesh") else None

    @property
    def neighbor_range(self) -> IPv6Network | None:
        text = self.details.get("Neighbor range")
        return ip_network(text) if text else None

    @property
    def neighbor_as(self) -> int | None:
        text = self.details.get("Neighbor AS", "")
        return int(text) if text.isdigit() else None

    @property
    def last_error(self) -> str | None:
        return self.details.get("Last error") or (" ".join(self.info.split()[1:]) or None)

    @property
    def exported(self) -> int | None:
        match = _ROUTES.search(self.details.get("Routes", ""))
        return int(match.group(3)) if match else None


def parse_bird_protocols(text: str) -> list[BirdProtocol]:
    """`birdc show protocols` or `show protocols all`."""
    out: list[BirdProtocol] = []
    details: dict = {}
    for raw in text.splitlines():
        line = _strip(raw)
        if not line.strip() or line.startswith(("BIRD ", "Name ", "#")):
            continue
        if not line[0].isspace():
            match = _SUMMARY.match(line)
            if match:
                details = {}
                out.append(BirdProtocol(match["name"], match["proto"], match["state"], match["since"],
                                        match["info"], details))
            continue
        match = _DETAIL.match(line)
        if match and out and match["key"] not in details:  # the first value wins: channels repeat keys
            details[match["key"]] = match["value"]
    return out


@dataclass(frozen=True)
class BirdRoute:
    prefix: IPv6Network
    kind: str  # unicast, blackhole, unreachable, ...
    protocol: str  # the protocol that brought it (a dynamic BGP session's name, such as n1)
    primary: bool  # BIRD's "*": the best route for the prefix
    via: IPv6Address | None = None
    as_path: str = ""


def parse_bird_routes(text: str) -> list[BirdRoute]:
    """`birdc show route`: one entry per route (a prefix learned from two peers gives two)."""
    out: list[BirdRoute] = []
    prefix = None
    for raw in text.splitlines():
        line = _strip(raw)
        if not line.strip() or line.startswith(("BIRD ", "Table ", "#")):
            continue
        match = _ROUTE.match(line)
        if match:
            if match["prefix"]:
                try:
                    prefix = ip_network(match["prefix"])
                except ValueError:
                    prefix = None
            if prefix is not None and prefix.version == 6:
                out.append(BirdRoute(prefix, match["kind"], match["proto"], bool(match["best"]),
                                     as_path=(match["path"] or "").strip()))
            continue
        via = _VIA.match(line)
        if via and out and out[-1].via is None:
            address = _address(via["via"])
            if isinstance(address, IPv6Address):
                last = out[-1]
                out[-1] = BirdRoute(last.prefix, last.kind, last.protocol, last.primary, address, last.as_path)
    return out


# --- calicoctl ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CalicoPeer:
    address: IPv6Address | IPv4Address
    peer_type: str  # node-to-node mesh, global, node specific
    state: str  # BIRD's protocol state: up, start, ...
    since: str
    info: str  # the BGP state, then any message ("Active Socket: Connection refused")

    @property
    def established(self) -> bool:
        return self.info.split()[:1] == ["Established"]


@dataclass(frozen=True)
class CalicoNodeStatus:
    running: bool
    peers_v4: tuple[CalicoPeer, ...] = ()
    peers_v6: tuple[CalicoPeer, ...] = ()


def parse_calicoctl_node_status(text: str) -> CalicoNodeStatus:
    """`calicoctl node status` (run on the node, as root)."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    running = any(re.search(r"\bis running\b", line) for line in lines)
    tables: dict[str, list[list[str]]] = {"4": [], "6": []}
    family = None
    for line in lines:
        heading = re.match(r"^IPv([46]) BGP status", line.strip())
        if heading:
            family = heading.group(1)
            continue
        if family is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] == "PEER ADDRESS":
            continue
        rows = tables[family]
        if not cells[0] and rows:  # a wrapped cell continues the row above
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
        else:
            rows.append(cells)

    def peers(rows: list[list[str]]) -> tuple[CalicoPeer, ...]:
        out = []
        for address, kind, state, since, info in rows:
            parsed = _address(address)
            if parsed is not None:
                out.append(CalicoPeer(parsed, kind, state, since, " ".join(info.split())))
        return tuple(out)

    return CalicoNodeStatus(running, peers(tables["4"]), peers(tables["6"]))


# --- the Metal API ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSession:
    address_family: str
    statuses: tuple[str, ...]  # one per switch: unknown (not known yet), up, down
    learned_routes: tuple[IPv6Network, ...] = ()

    @property
    def state(self) -> str:
        if any(s == "down" for s in self.statuses):
            return "down"
        if self.statuses and all(s == "up" for s in self.statuses):
            return "up"
        return "unknown"


def parse_metal_sessions(body: Mapping) -> list[ProviderSession]:
    """`GET /devices/{id}/bgp/sessions`: `status` is "up,down"-style, one value per switch."""
    out = []
    sessions = body.get("bgp_sessions") if isinstance(body, Mapping) else None
    for item in sessions if isinstance(sessions, list) else []:  # a malformed answer: no sessions
        if not isinstance(item, Mapping):
            continue
        statuses = tuple(s.strip() for s in str(item.get("status") or "unknown").split(",") if s.strip())
        routes = []
        learned = item.get("learned_routes")
        for route in learned if isinstance(learned, list) else []:
            if not isinstance(route, str):
                continue
            try:
                net = ip_network(route, strict=False)
            except (TypeError, ValueError):
                continue
            if net.version == 6:
                routes.append(net)
        out.append(ProviderSession(str(item.get("address_family", "")), statuses or ("unknown",), tuple(routes)))
    return out
