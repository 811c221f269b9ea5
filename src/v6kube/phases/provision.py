"""provision and bgp: the servers and their BGP facts, from the provider (find-then-create)."""

from __future__ import annotations

from ipaddress import IPv6Network

from v6kube import console
from v6kube.phases.context import Run
from v6kube.providers.base import ServerSpec

def _specs(run: Run) -> list[ServerSpec]:
    """A spec per node; an API provider gets a host key generated here for each server it may
    create, pinned in the state before the server exists, so the first SSH contact is verified."""
    from v6kube.providers.hostkeys import generate_host_key

    recorded = run.state.fact("subnets") or {}
    subnets = tuple(IPv6Network(recorded[k]) for k in ("pods", "services") if k in recorded)
    specs = []
    for node in run.cluster.nodes:
        if run.provider.name == "static" or node.host_key:
            specs.append(ServerSpec(node.name, node.role, node.host_key, subnets=subnets))
            continue
        public, private = generate_host_key()
        specs.append(ServerSpec(node.name, node.role, public, private, subnets=subnets))
    return specs


def _replace_failed(run: Run) -> None:
    """A server that ended `failed` is deleted so that this run creates a new one."""
    failed = [s for s in run.provider.find_servers() if s.failed]
    if failed:
        for server in failed:
            console.warn(f"{server.hostname}: server {server.id} ended failed at the provider; replacing it")
            run.state.forget_server(server.hostname)
        run.provider.delete_servers(failed)
        run.state.forget_phases()  # its replacement needs every phase again
        run.state.save()


def provision(run: Run) -> None:
    _replace_failed(run)
    specs = _specs(run)
    recorded = {name: entry["id"] for name, entry in run.state.data["servers"].items() if entry.get("id")}
    servers = run.provider.ensure_servers(specs, recorded_ids=recorded)
    for server in servers:  # ids first: a run killed while waiting still knows what it created
        run.state.set_server(server.hostname, id=server.id, role=server.role)
        if server.host_public_key and run.state.host_key(server.hostname) != server.host_public_key \
                and run.provider.name != "static":
            run.state.pin_host_key(server.hostname, server.host_public_key, "provisioned")
    run.state.save()
    servers = run.provider.wait_servers(servers, run.timeouts.provision)
    for server in servers:
        run.state.set_server(server.hostname, id=server.id, role=server.role, state=server.state,
                             ipv6=server.ipv6, gateway=server.ipv6_gateway)
        console.progress("provision", server.hostname, f"{server.state}, {server.ipv6}")
    run.state.save()
    run.__dict__["servers"] = {s.hostname: s for s in servers}


def servers_active(run: Run) -> bool:
    found = {s.hostname: s for s in run.provider.find_servers()}
    return all(n.name in found and found[n.name].ready for n in run.cluster.nodes)


def bgp(run: Run) -> None:
    project = run.bgp_project
    neighbors = run.neighbors
    for name, neighbor in neighbors.items():
        peers = ", ".join(map(str, neighbor.peer_ips))
        console.progress("bgp", name, f"AS {neighbor.local_asn} -> {peers} (AS {neighbor.peer_asn})")
        run.state.set_server(name, peers=peers, peer_asn=neighbor.peer_asn, local_asn=neighbor.local_asn)
    console.progress("bgp", None, f"local AS {project.local_asn}, at most {project.max_prefix} prefixes per server, "
                                  f"MD5 password {'set' if project.password else 'none'}")
    addresses = run.plan.addresses  # the pod and service subnets, chosen once, kept in the state
    run.provider.record_subnets(list(run.servers.values()), [addresses.pod_subnet, addresses.service_subnet])
    run.state.save()


def bgp_known(run: Run) -> bool:
    return all(run.state.server(n.name) and run.state.server(n.name).get("peers") for n in run.cluster.nodes)
