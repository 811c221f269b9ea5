"""The cluster plan: addressing, BGP facts, every rendered file, the phases and the provider calls.

`offline_plan()` works with no credentials and no network: provider facts that only the API knows
come from `--block` and the documented defaults below, and are marked as assumed. `create` builds
the same plan from the provider's real facts and renders the same files with the real secrets.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from v6kube import addressing, render
from v6kube.addressing import AddressPlan, NodeAddress
from v6kube.config import Cluster, PacketProvider, PhoenixnapProvider, StaticProvider
from v6kube.errors import ConfigError, Problem, UsageError
from v6kube.downloads import planned_downloads
from v6kube.phases import CREATE_PHASES
from v6kube.providers import plan_phases, planned_calls
from v6kube.redact import Secret, redact

# What the Packet API would tell us, assumed offline (reference/metal-api.md sections 3.8 and 4).
ASSUMED_BLOCK = IPv6Network("2001:db8:0:2a00::/56")  # documentation prefix: replace with --block
ASSUMED_PEERS = (IPv6Address("fc00::e"), IPv6Address("fc00::f"))
ASSUMED_PEER_ASN = 65530
ASSUMED_LOCAL_ASN = 65000
ASSUMED_MAX_PREFIX = 10
# phoenixNAP sells IPv6 only as /64 blocks: offline, the cluster's /64s (servers, pods, services)
# are shown as three consecutive documentation /64s, i.e. one /62 (reference/phoenixnap/README.md).
ASSUMED_PNAP_BLOCKS = IPv6Network("2001:db8:0:2a00::/62")
ASSUMED_PNAP_PEERS = (IPv6Address("fd00:0:0:1005::1"), IPv6Address("fd00:0:0:1005::2"))
ASSUMED_PNAP_PEER_ASN = 65400

API_PORT = 6443
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
BGP_SECRET_NAME = "v6kube-bgp-password"
# Offline stand-ins for values create generates or reads from the cluster; never real secrets.
PLACEHOLDER_TOKEN = "v6kube.placeholder00000"
PLACEHOLDER_CA_HASH = "sha256:" + "0" * 64
PLACEHOLDER_BGP_PASSWORD = "set-by-v6kube-create"


@dataclass(frozen=True)
class BGPPlan:
    local_asn: int
    peer_asn: int
    peers: tuple[IPv6Address, ...]
    multihop: bool
    password_source: str | None  # where the MD5 password comes from, or None for no password


@dataclass(frozen=True)
class ClusterPlan:
    cluster: Cluster
    addresses: AddressPlan
    bgp: BGPPlan
    assumed: dict[str, str] = field(default_factory=dict)
    offline: bool = False  # only an offline plan may render placeholders instead of secrets

    @property
    def api_endpoint(self) -> str:
        return f"[{self.addresses.node(self.cluster.control_plane.name).address}]:{API_PORT}"


@dataclass(frozen=True)
class Secrets:
    """The secret values rendered files need; `create` fills them in. Offline, init.yaml has no
    bootstrap token (kubeadm would make a random one: a well-known token must never reach a real
    cluster) and the join files and the BGP Secret carry placeholders."""

    bootstrap_token: Secret | None = None
    ca_cert_hash: str | None = None
    bgp_password: Secret | None = None


def offline_plan(cluster: Cluster, block: IPv6Network | None = None, source: str = "<cluster>") -> ClusterPlan:
    """The plan from the cluster file alone. Raises ConfigError (exit 2) listing every problem."""
    provider = cluster.provider
    assumed: dict[str, str] = {}
    if isinstance(provider, StaticProvider):
        if block is not None and block != provider.block:
            raise ConfigError(source, [Problem("--block", f"{block} differs from provider.block {provider.block}",
                                               "with provider static the block comes from the cluster file")])
        block = provider.block
        nodes = addressing.static_node_addresses(cluster)
        max_prefix = provider.max_prefix
        bgp = BGPPlan(provider.local_asn, provider.peer_asn, tuple(provider.peers), provider.multihop,
                      f"${provider.bgp_password_env}" if provider.bgp_password_env else None)
    elif isinstance(provider, PhoenixnapProvider):
        if block is not None:
            raise ConfigError(source, [Problem("--block", "not used with provider phoenixnap",
                                               "phoenixNAP gives the cluster its own /64 blocks at create")])
        block, nodes, bgp, max_prefix = _assumed_phoenixnap(cluster, provider, assumed)
    else:
        assert isinstance(provider, PacketProvider)
        if block is None:
            block = ASSUMED_BLOCK
            assumed["block"] = f"{block} (a documentation prefix; pass --block with the project's /56)"
        nodes = addressing.assumed_packet_addresses(cluster, block)
        assumed["node_addresses"] = "a /127 per server from the block's first /64, in node order"
        assumed["bgp_peers"] = f"{', '.join(map(str, ASSUMED_PEERS))} (AS {ASSUMED_PEER_ASN}), multihop"
        assumed["local_asn"] = f"{ASSUMED_LOCAL_ASN} (Local BGP), unless the project already has BGP enabled"
        assumed["max_prefix"] = f"{ASSUMED_MAX_PREFIX} prefixes per server"
        assumed["other_clusters"] = ("no other v6kube cluster in the project's /56; create avoids the pod and service "
                                     "subnets other clusters recorded (v6kube-subnet tags on their servers)")
        if not provider.bgp_password_env:
            assumed["bgp_password"] = ("no MD5 password: v6kube enables Local BGP without one; a project that "
                                       "already has BGP with a password keeps it and create uses that")
        max_prefix = ASSUMED_MAX_PREFIX
        bgp = BGPPlan(ASSUMED_LOCAL_ASN, ASSUMED_PEER_ASN, ASSUMED_PEERS, True,
                      f"${provider.bgp_password_env}" if provider.bgp_password_env else None)
    if block.prefixlen > 64 and isinstance(provider, PacketProvider):
        raise ConfigError(source, [Problem("--block", f"{block} is smaller than a /64; Packet gives a /56")])
    plan, problems = addressing.plan_addresses(cluster, block, nodes, max_prefix, tuple(assumed))
    if problems:
        raise ConfigError(source, problems)
    assert plan is not None
    return ClusterPlan(cluster, plan, bgp, assumed, offline=True)


def live_plan(cluster: Cluster, block: IPv6Network, nodes: tuple[NodeAddress, ...], bgp: BGPPlan,
              max_prefix: int, *, taken: tuple[IPv6Network, ...] = (), source: str = "<cluster>") -> ClusterPlan:
    """The plan from the provider's real facts (what create renders). `taken`: subnets other
    clusters in the same block already use, which auto subnets avoid."""
    plan, problems = addressing.plan_addresses(cluster, block, nodes, max_prefix, taken=taken)
    if problems:
        raise ConfigError(source, problems)
    assert plan is not None
    return ClusterPlan(cluster, plan, bgp)


def _assumed_phoenixnap(cluster: Cluster, provider: PhoenixnapProvider,
                        assumed: dict[str, str]) -> tuple[IPv6Network, tuple[NodeAddress, ...], BGPPlan, int]:
    from v6kube.providers.phoenixnap.servers import server_address

    servers = next(ASSUMED_PNAP_BLOCKS.subnets(new_prefix=64))
    nodes = tuple(NodeAddress(n.name, n.role, server_address(servers, n.name), 64, servers[1]) for n in cluster.nodes)
    assumed["block"] = (f"{ASSUMED_PNAP_BLOCKS}: stands for the cluster's IPv6 /64 blocks (servers, pods, "
                        "services), which phoenixNAP assigns at create")
    assumed["node_addresses"] = "each server's address in the servers' /64 is derived from its hostname"
    assumed["bgp_peers"] = (f"{', '.join(map(str, ASSUMED_PNAP_PEERS))} (AS {ASSUMED_PNAP_PEER_ASN}), multihop: "
                            "the peer group's IPv6 peering loopbacks")
    assumed["max_prefix"] = f"{ASSUMED_MAX_PREFIX} prefixes per server (phoenixNAP documents no limit)"
    bgp = BGPPlan(provider.asn, ASSUMED_PNAP_PEER_ASN, ASSUMED_PNAP_PEERS, True,
                  f"${provider.bgp_password_env}" if provider.bgp_password_env else "the peer group's password")
    return ASSUMED_PNAP_BLOCKS, nodes, bgp, ASSUMED_MAX_PREFIX


# --- rendering ------------------------------------------------------------------------------


def render_init(plan: ClusterPlan, secrets: Secrets, kubernetes_version: str | None = None) -> str:
    """init.yaml; `kubernetes_version` is the exact version of the kubeadm installed on the control
    plane (create), else the minor's stable label (an offline plan). A cluster with no worker
    leaves the control plane untainted, so it can run pods."""
    from v6kube.nodes import KUBELET_RESOLV_CONF

    cp = plan.addresses.node(plan.cluster.control_plane.name)
    return render.render(
        "kubeadm/init.yaml.j2",
        cluster_name=plan.cluster.name,
        kubernetes_version=kubernetes_version or f"stable-{plan.cluster.kubernetes.version}",
        untainted=not any(n.role == "worker" for n in plan.addresses.nodes),
        control_plane=cp,
        api_port=API_PORT,
        api_endpoint=plan.api_endpoint,
        cri_socket=CRI_SOCKET,
        pod_subnet=plan.addresses.pod_subnet,
        service_subnet=plan.addresses.service_subnet,
        node_cidr_mask=plan.addresses.node_cidr_mask,
        bootstrap_token=secrets.bootstrap_token.reveal() if secrets.bootstrap_token else None,
        kubelet_resolv_conf=KUBELET_RESOLV_CONF,
    )


def render_join(plan: ClusterPlan, node: NodeAddress, secrets: Secrets) -> str:
    return render.render(
        "kubeadm/join.yaml.j2",
        cluster_name=plan.cluster.name,
        node=node,
        api_endpoint=plan.api_endpoint,
        cri_socket=CRI_SOCKET,
        bootstrap_token=secrets.bootstrap_token.reveal() if secrets.bootstrap_token else PLACEHOLDER_TOKEN,
        ca_cert_hash=secrets.ca_cert_hash or PLACEHOLDER_CA_HASH,
    )


def render_installation(plan: ClusterPlan) -> str:
    return render.render(
        "calico/installation.yaml.j2",
        calico_version=plan.cluster.calico.version,
        pod_subnet=plan.addresses.pod_subnet,
        block_size=plan.addresses.block_size,
    )


def bgp_peer_name(node: str, peer: IPv6Address) -> str:
    """A DNS-1123 name per node and peer, unique for any two peers (Calico rejects ':' in names)."""
    return f"{node}-{peer.exploded.replace(':', '')}"


def render_bgp(plan: ClusterPlan, secrets: Secrets) -> str:
    announce = plan.cluster.announce
    peers = [
        {"name": bgp_peer_name(n.name, ip), "node": n.name, "peer_ip": ip, "asn": plan.bgp.peer_asn}
        for n in plan.addresses.nodes
        for ip in plan.bgp.peers
    ]
    password = None
    if plan.bgp.password_source:
        if secrets.bgp_password is not None:
            password = secrets.bgp_password.reveal()
        elif plan.offline:
            password = PLACEHOLDER_BGP_PASSWORD
        else:  # a placeholder on a real cluster would break every BGP session
            raise UsageError(f"the BGP MD5 password (from {plan.bgp.password_source}) is missing; "
                             "refusing to render a placeholder for a real cluster")
    return render.render(
        "calico/bgp.yaml.j2",
        cluster_name=plan.cluster.name,
        local_asn=plan.bgp.local_asn,
        service_cluster_ips=[plan.addresses.service_subnet] if announce.service_cluster_ips else [],
        service_external_ips=announce.service_external_ips,
        service_loadbalancer_ips=announce.service_loadbalancer_ips,
        peers=peers,
        password=password,
        secret_name=BGP_SECRET_NAME,
    )


def prepare_spec(plan: ClusterPlan, node: NodeAddress):
    from v6kube.nodes import PrepareSpec

    return PrepareSpec(
        node=node.name,
        os_id_hint=getattr(plan.cluster.provider, "operating_system", None),  # static: found on the node
        kubernetes_minor=plan.cluster.kubernetes.version,
        resolvers=tuple(plan.cluster.kubernetes.dns_resolvers),
        gateway=node.gateway,
        peers=plan.bgp.peers,
    )


def render_files(plan: ClusterPlan, secrets: Secrets | None = None) -> dict[str, str]:
    """Every rendered file, by its path relative to the plan directory (DESIGN section 5)."""
    from v6kube.nodes import render_prepare_script

    secrets = secrets or Secrets()
    files = {"kubeadm/init.yaml": render_init(plan, secrets)}
    for node in plan.addresses.nodes:
        if node.role == "worker":
            files[f"kubeadm/join-{node.name}.yaml"] = render_join(plan, node, secrets)
    for node in plan.addresses.nodes:
        files[f"nodes/{node.name}/prepare.sh"] = render_prepare_script(prepare_spec(plan, node))
    files["calico/installation.yaml"] = render_installation(plan)
    files["calico/bgp.yaml"] = render_bgp(plan, secrets)
    return files


# --- the plan document ----------------------------------------------------------------------


def plan_document(plan: ClusterPlan, files: list[str] | None = None) -> dict:
    """plan.json: `files` are the paths written (by default every file the plan renders)."""
    if files is None:
        files = ["plan.json", *render_files(plan)]
    c = plan.cluster
    provider_phases = plan_phases(c)  # what provision and bgp do on this cluster's provider
    return {
        "cluster": c.name,
        "provider": c.provider.type,
        "kubernetes": {"version": c.kubernetes.version,
                       "dns_resolvers": [str(r) for r in c.kubernetes.dns_resolvers]},
        "calico": {"version": c.calico.version, "block_size": c.calico.block_size},
        "addressing": plan.addresses.as_dict(),
        "api_endpoint": plan.api_endpoint,
        "bgp": {
            "local_asn": plan.bgp.local_asn,
            "peer_asn": plan.bgp.peer_asn,
            "peers": [str(p) for p in plan.bgp.peers],
            "multihop": plan.bgp.multihop,
            "password": plan.bgp.password_source,
        },
        "nodes": [{"name": n.name, "role": n.role} for n in c.nodes],
        "phases": [{"name": p.name, "summary": provider_phases.get(p.name, p.summary)} for p in CREATE_PHASES],
        "provider_calls": planned_calls(c),
        "downloads": [{"url": a.url, "checksum": a.sums_url or "recorded in the cache on first download"}
                      for a in planned_downloads(c.calico.version)],
        "project": getattr(c.provider, "project", None),
        "assumed": plan.assumed,
        "placeholders": {
            "bootstrap_token": PLACEHOLDER_TOKEN,  # in the join files; init.yaml lets kubeadm make one
            "ca_cert_hash": PLACEHOLDER_CA_HASH,
            "bgp_password": PLACEHOLDER_BGP_PASSWORD if plan.bgp.password_source else None,
        },
        "files": files,
    }


PLAN_DIRS = ("kubeadm", "nodes", "calico")  # what write_plan creates besides plan.json


@dataclass(frozen=True)
class WrittenPlan:
    paths: list[Path]  # every file written, plan.json first
    document: dict  # plan.json's content
    replaced: list[str] = field(default_factory=list)  # the earlier plan's files, relative to `out`
    replaced_cluster: str | None = None


def write_plan(plan: ClusterPlan, out: Path) -> WrittenPlan:
    """Write plan.json and every rendered file under `out`.

    `out` is created, or is empty, or holds an earlier plan of the same cluster, which is removed
    first (so no file of a node that left the cluster stays behind) and listed in the result.
    Anything else, a plan of another cluster included, is a UsageError naming --out."""
    files = render_files(plan)  # before touching `out`: a failure here leaves an earlier plan alone
    doc = plan_document(plan, ["plan.json", *files])
    try:
        replaced = _clear_plan_dir(out, plan.cluster.name)
        written = []
        for rel, text in files.items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if rel.endswith(".sh"):
                os.chmod(path, 0o755)
            written.append(path)
        # redacted like everything v6kube writes: a secret must never reach a plan
        (out / "plan.json").write_text(redact(json.dumps(doc, indent=2)) + "\n", encoding="utf-8")
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise UsageError(f"--out {out}: cannot write the plan: {exc.strerror or exc}{where}",
                         hint="name a directory you can write to (it is created if missing)") from None
    return WrittenPlan([out / "plan.json", *written], doc, replaced, plan.cluster.name if replaced else None)


def _clear_plan_dir(out: Path, cluster: str) -> list[str]:
    """Refuse an `out` that is not a plan directory of `cluster`; remove an earlier plan of it from
    one that is. Returns the removed files, relative to `out`."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory",
                         hint="name a new directory, an empty one, or one that holds an earlier plan")
    if not out.exists() or not any(out.iterdir()):
        return []
    earlier = _earlier_cluster(out / "plan.json")
    if earlier is None:
        raise UsageError(f"--out {out}: the directory is not empty and holds no earlier plan (no plan.json, or not one v6kube wrote)",
                         hint="name a new or empty directory; v6kube replaces only an earlier plan")
    if earlier != cluster:
        raise UsageError(f"--out {out}: holds the plan of another cluster, {earlier!r}, not {cluster!r}",
                         hint="name another directory; v6kube replaces only an earlier plan of the same cluster")
    removed = ["plan.json"]
    for name in PLAN_DIRS:
        if (out / name).is_dir():
            removed += sorted(str(p.relative_to(out)) for p in (out / name).rglob("*") if not p.is_dir())
            shutil.rmtree(out / name)
    (out / "plan.json").unlink()
    return removed


def _earlier_cluster(path: Path) -> str | None:
    """The cluster name in an earlier plan.json, or None when there is no readable plan there."""
    try:
        if not path.is_file() or path.stat().st_size > 16 * 1024 * 1024:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = doc.get("cluster") if isinstance(doc, dict) else None
    return name if isinstance(name, str) else None
