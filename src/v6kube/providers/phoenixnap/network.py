"""phoenixNAP networking for one cluster: its IPv6 /64 blocks, its public network, the location's
BGP peer group. Find-then-create everything; ownership by tags (blocks) and name (network).

phoenixNAP sells IPv6 only as /64 blocks, so a cluster has several: `servers` (on the public
network, with router advertisements), `pods`, `services` (holds the service /108) and, when
asked, `loadbalancer`. Every one of them is announced over BGP. The peer group is one per
location per account, shared by every cluster there: it is created when missing and kept on
destroy (like Packet's project BGP config). Reference: reference/phoenixnap/README.md.
"""

from __future__ import annotations

from ipaddress import IPv6Network
from typing import TYPE_CHECKING, Any

from v6kube import console
from v6kube.errors import NotFound, ProviderError, ProvisioningFailed, Unprocessable
from v6kube.providers.base import BGPProject, password_from_env
from v6kube.providers.http import post_or_find
from v6kube.redact import Secret

if TYPE_CHECKING:
    from v6kube.providers.phoenixnap.provider import PhoenixnapProvider

CLUSTER_TAG, ROLE_TAG, PURPOSE_TAG = "v6kube-cluster", "v6kube-role", "v6kube-purpose"
PURPOSES = ("servers", "pods", "services")
PEER_ASN = 65400  # phoenixNAP's side (knowledge base "BGP on Bare Metal Cloud"; the API does not say)


def tag_value(tags: Any, name: str) -> str | None:
    for tag in tags or []:
        if isinstance(tag, dict) and tag.get("name") == name:
            return tag.get("value")
    return None


class Network:
    def __init__(self, provider: "PhoenixnapProvider"):
        self.p = provider
        self._blocks: dict[str, dict] | None = None
        self._network: dict | None = None
        self.group: dict | None = None

    @property
    def purposes(self) -> tuple[str, ...]:
        return PURPOSES + (("loadbalancer",) if self.p.config.loadbalancer_block else ())

    @property
    def network_name(self) -> str:
        return f"v6kube-{self.p.cluster_name}"

    # --- IPv6 blocks ---------------------------------------------------------------------------

    def find_blocks(self) -> dict[str, dict]:
        blocks = self.p.clients.ips.get("/ip-blocks", {"tag": f"{CLUSTER_TAG}.{self.p.cluster_name}"}) or []
        found: dict[str, dict] = {}
        for block in blocks:
            if tag_value(block.get("tags"), CLUSTER_TAG) != self.p.cluster_name or block.get("ipVersion") != "V6":
                continue
            purpose = tag_value(block.get("tags"), PURPOSE_TAG)
            if purpose in found:
                raise ProviderError(f"two IPv6 blocks of cluster {self.p.cluster_name} are tagged {purpose}: "
                                    f"{found[purpose]['id']} and {block['id']}",
                                    hint="delete the one that should not exist (BMC portal) and run the command again")
            if purpose:
                found[purpose] = block
        return found

    def ensure_blocks(self) -> dict[str, dict]:
        if self._blocks is not None:
            return self._blocks
        found = self.find_blocks()
        for purpose in self.purposes:
            if purpose not in found:
                found[purpose] = self._create_block(purpose)
        self._blocks = found
        return found

    def _create_block(self, purpose: str) -> dict:
        body = {"location": self.p.config.location, "cidrBlockSize": "/64", "ipVersion": "V6",
                "description": f"v6kube cluster {self.p.cluster_name}: {purpose}",
                "tags": [{"name": CLUSTER_TAG, "value": self.p.cluster_name}, {"name": PURPOSE_TAG, "value": purpose}]}
        console.progress("phoenixnap", None, f"creating the IPv6 /64 for {purpose} in {self.p.config.location}")
        block = post_or_find(self.p.clients.ips, lambda: self.p.clients.ips.post("/ip-blocks", body, what=purpose),
                             lambda: self.find_blocks().get(purpose), f"create the {purpose} /64",
                             attempts=self.p.create_attempts, sleep=self.p.sleep)
        console.progress("phoenixnap", None, f"{purpose}: IPv6 block {block.get('cidr')} (id {block['id']})")
        return block

    def subnets(self, create: bool = True) -> dict[str, IPv6Network]:
        """The cluster's /64s by purpose (created when missing, unless create is False)."""
        blocks = self.ensure_blocks() if create else (self._blocks or self.find_blocks())
        return {purpose: IPv6Network(block["cidr"]) for purpose, block in blocks.items()}

    # --- the public network --------------------------------------------------------------------

    def find_network(self) -> dict | None:
        networks = self.p.clients.networks.get("/public-networks", {"location": self.p.config.location}) or []
        return next((n for n in networks if n.get("name") == self.network_name), None)

    def ensure_network(self) -> dict:
        if self._network is not None:
            return self._network
        servers_block = self.ensure_blocks()["servers"]
        network = self.find_network()
        if network is None:
            body = {"name": self.network_name, "location": self.p.config.location,
                    "description": f"v6kube cluster {self.p.cluster_name}",
                    "ipBlocks": [{"id": servers_block["id"]}], "raEnabled": True}
            console.progress("phoenixnap", None, f"creating public network {self.network_name}")
            network = post_or_find(self.p.clients.networks,
                                   lambda: self.p.clients.networks.post("/public-networks", body, what=self.network_name),
                                   self.find_network, f"create public network {self.network_name}",
                                   attempts=self.p.create_attempts, sleep=self.p.sleep)
        if not any(b.get("id") == servers_block["id"] for b in network.get("ipBlocks") or []):
            raise ProviderError(f"public network {self.network_name} ({network['id']}) does not hold the servers' "
                                f"IPv6 block {servers_block.get('cidr')}", hint="delete the network (or add the "
                                "block to it) in the BMC portal and run the command again")
        self._network = network
        return network

    # --- BGP peer group ------------------------------------------------------------------------

    def find_group(self) -> dict | None:
        groups = self.p.clients.networks.get("/bgp-peer-groups", {"location": self.p.config.location}) or []
        return next((g for g in groups if g.get("location") == self.p.config.location), None)

    def ensure_group(self) -> BGPProject:
        wanted = password_from_env(self.p.config.bgp_password_env, self.p.environ)
        location = self.p.config.location
        group = self.find_group()
        if group is None:
            body: dict[str, Any] = {"location": location, "asn": self.p.config.asn, "advertisedRoutes": "NONE"}
            if wanted is not None:
                body["password"] = wanted.reveal()
            console.progress("phoenixnap", None, f"creating the BGP peer group of {location} (AS {self.p.config.asn})")

            def create() -> dict:
                try:
                    return self.p.clients.networks.post("/bgp-peer-groups", body, what=f"BGP peer group {location}")
                except Unprocessable as exc:
                    if exc.status == 406:
                        raise ProviderError(f"phoenixNAP does not offer BGP in location {location}: {exc.message}",
                                            status=406, hint="choose another provider.location") from None
                    found = self.find_group()  # 409: it exists (made meanwhile)
                    if found is None:
                        raise
                    return found

            group = post_or_find(self.p.clients.networks, create, self.find_group,
                                 f"create the BGP peer group of {location}", attempts=self.p.create_attempts,
                                 sleep=self.p.sleep)
        group = self._wait_ready(group)
        asn = int((group.get("activeAsnDetails") or group.get("targetAsnDetails") or {}).get("asn") or self.p.config.asn)
        if asn != self.p.config.asn:
            console.warn(f"the BGP peer group of {location} uses AS {asn}, not provider.asn {self.p.config.asn}; using {asn}")
        password = group.get("password")
        if wanted is not None and password != wanted.reveal():
            console.warn(f"the BGP peer group of {location} has its own password; the one in "
                         f"{self.p.config.bgp_password_env} is not used")
        self.group = group
        return BGPProject(local_asn=asn, password=Secret(password) if password else None)

    def _wait_ready(self, group: dict) -> dict:
        deadline = self.p.clock() + self.p.bgp_timeout
        last = None
        while True:
            status = group.get("status")
            if status != last:
                console.progress("phoenixnap", None, f"BGP peer group {group.get('id')}: {status}")
                last = status
            if status == "READY":
                return group
            if status == "ON_HOLD":
                raise ProvisioningFailed(f"the BGP peer group of {self.p.config.location} ({group.get('id')}) is "
                                         "ON_HOLD: phoenixNAP reviews it before it peers",
                                         hint="wait for phoenixNAP (or ask their support), then run the command again")
            if status in ("ERROR", "PENDING_DELETION", "DELETING"):
                raise ProvisioningFailed(f"the BGP peer group of {self.p.config.location} ({group.get('id')}) is {status}",
                                         hint="check it in the BMC portal; run the command again once it is READY")
            remaining = deadline - self.p.clock()
            if remaining <= 0:
                raise ProvisioningFailed(f"the BGP peer group of {self.p.config.location} ({group.get('id')}) is "
                                         f"still {status} after {self.p.bgp_timeout:g}s",
                                         hint="run the command again to keep waiting; nothing is created twice")
            self.p.sleep(min(self.p.poll_interval, remaining))
            group = self.p.clients.networks.get(f"/bgp-peer-groups/{group['id']}", what="BGP peer group")

    def wait_prefixes(self, wanted: set[IPv6Network]) -> dict:
        """The peer group once it lists every wanted block as a READY prefix (the account's blocks
        join the group's `ipPrefixes` on their own; announcing one before that is filtered)."""
        deadline = self.p.clock() + self.p.bgp_timeout
        group = self.group or self.find_group() or {}
        announced = False
        while True:
            group = self.p.clients.networks.get(f"/bgp-peer-groups/{group['id']}", what="BGP peer group") \
                if group.get("id") else {}
            ready = {IPv6Network(p["cidr"]) for p in group.get("ipPrefixes") or []
                     if p.get("ipVersion") == "V6" and p.get("status") == "READY"}
            if wanted <= ready:
                self.group = group
                return group
            if not group or self.p.clock() >= deadline:
                late = ", ".join(str(n) for n in sorted(wanted - ready, key=lambda n: n.network_address))
                raise ProvisioningFailed(f"the BGP peer group of {self.p.config.location} does not list {late} "
                                         "as a READY prefix", hint="run the command again to keep waiting; if it "
                                         "persists, ask phoenixNAP to add the blocks to the peer group")
            if not announced:
                console.progress("phoenixnap", None, f"waiting up to {self.p.bgp_timeout:g} s for the peer group "
                                 "to list the cluster's blocks as prefixes")
                announced = True
            self.p.sleep(self.p.poll_interval)

    # --- other clusters, teardown --------------------------------------------------------------

    def taken_subnets(self) -> list[IPv6Network]:
        taken = []
        for block in self.p.clients.ips.get("/ip-blocks") or []:
            owner = tag_value(block.get("tags"), CLUSTER_TAG)
            if owner and owner != self.p.cluster_name and block.get("ipVersion") == "V6" and block.get("cidr") \
                    and block.get("location") == self.p.config.location:
                taken.append(IPv6Network(block["cidr"]))
        return taken

    def delete_all(self) -> None:
        """The public network, then the blocks (a block on a network cannot be deleted)."""
        network = self.find_network()
        if network is not None:
            self._until_accepted(lambda: self.p.clients.networks.delete(
                f"/public-networks/{network['id']}", what=f"public network {self.network_name} ({network['id']})"),
                f"public network {self.network_name}")
            console.progress("phoenixnap", None, f"deleted public network {self.network_name}")
        for purpose, block in self.find_blocks().items():
            self._until_accepted(lambda: self.p.clients.ips.delete(
                f"/ip-blocks/{block['id']}", what=f"{purpose} block {block.get('cidr')} ({block['id']})"),
                f"{purpose} block")
            console.progress("phoenixnap", None, f"deleted the {purpose} block {block.get('cidr')}")
        self._blocks = self._network = None

    def _until_accepted(self, call: Any, what: str) -> None:
        """Deleting waits for members to leave (409/400 while servers are still deprovisioning)."""
        deadline = self.p.clock() + self.p.delete_timeout
        announced = False
        while True:
            try:
                call()
                return
            except NotFound:
                return
            except Unprocessable as exc:
                if self.p.clock() >= deadline:
                    raise ProvisioningFailed(f"{what}: still refused after {self.p.delete_timeout:g}s: {exc.message}",
                                             hint="run destroy again once its servers are gone") from None
            if not announced:
                console.progress("phoenixnap", None, f"{what}: waiting up to {self.p.delete_timeout:g} s for its "
                                 "servers to leave")
                announced = True
            self.p.sleep(self.p.poll_interval)
