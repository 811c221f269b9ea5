"""A BGP speaker on a testbed node, configured the way calico-node would configure its BIRD from the
BGPConfiguration / BGPPeer / Secret objects v6kube renders (planner.render_bgp, parsed with yaml):
the local AS from the BGPConfiguration, one session per BGPPeer of the node (peer address, peer AS,
the MD5 password read from the Secret the peer names, the node's address as source), multihop, and
static blackhole routes for the node's pod blocks and every announced service range, exported to
the peers. Calico's names are kept: a node-specific peer fd00::e is protocol `Node_fd00__e`.

Timers are short (testbed.md §2) so sessions come up and recover within seconds.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network, ip_address
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from testbed.lab import Lab, Node, _run


def protocol_name(peer: IPv6Address) -> str:
    """calico-node's name for a node-specific peer's BIRD protocol."""
    return "Node_" + str(peer).replace(":", "_").replace(".", "_")


def speaker_config(bgp_yaml: str, node: Node, *, blocks: Sequence[IPv6Network], multihop: bool = True,
                   extra_routes: Iterable[IPv6Network] = (), router_id: str | None = None) -> str:
    """BIRD 2 configuration for `node` from rendered YAML: create's bgp.yaml, optionally followed by
    announce-services' objects (whose BGPConfiguration, applied later, replaces the first)."""
    docs = [d for d in yaml.safe_load_all(bgp_yaml) if d]
    config = [d for d in docs if d["kind"] == "BGPConfiguration"][-1]["spec"]  # the last applied wins
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    peers = [d["spec"] for d in docs if d["kind"] == "BGPPeer" and d["spec"].get("node") == node.name]
    if not peers:
        raise ValueError(f"bgp.yaml has no BGPPeer for node {node.name}")
    services = [IPv6Network(item["cidr"]) for key in ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs")
                for item in config.get(key) or []]
    routes = [*blocks, *services, *extra_routes]
    rid = router_id or f"192.0.2.{100 + int(node.address) % 100}"
    lines = [f"router id {rid};", f'log "{node.dir}/bird.log" all;', "protocol device { scan time 2; }",
             "protocol static announced {", "  ipv6;"]
    lines += [f"  route {net} blackhole;" for net in routes]
    lines += ["}",
              "filter calico_export_to_bgp_peers {",
              "  if ( source = RTS_STATIC ) then accept;",
              "  reject;",
              "}",
              "template bgp bgp_template {",
              f"  local {node.address} as {config['asNumber']};",
              "  multihop;" if multihop else "  direct;",
              "  connect delay time 1; connect retry time 2; error wait time 1, 4;",
              "  hold time 9; keepalive time 3;",
              "  ipv6 { import none; export filter calico_export_to_bgp_peers; };",
              "}"]
    for peer in peers:
        address = ip_address(peer["peerIP"])
        lines.append(f"protocol bgp {protocol_name(address)} from bgp_template {{")
        lines.append(f"  neighbor {address} as {peer['asNumber']};")
        ref = (peer.get("password") or {}).get("secretKeyRef")
        if ref:
            secret = secrets[ref["name"]]
            lines.append(f"  password {_bird_string(secret['stringData'][ref['key']])};")
        lines.append("}")
    return "\n".join(lines) + "\n"


def _bird_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Speaker:
    lab: Lab
    node: Node
    conf: Path
    ctl: Path
    proc: subprocess.Popen

    def birdc(self, *args: str) -> str:
        return birdc(self.ctl, *args)

    def reconfigure(self, text: str) -> None:
        """New configuration, applied live (`birdc configure`), as calico-node's confd does."""
        _check_config(text, self.conf)
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise RuntimeError(f"{self.node.name}: birdc configure: {out}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def _check_config(text: str, path: Path) -> None:
    path.write_text(text)
    result = _run(["bird", "-p", "-c", str(path)])
    if result.returncode != 0:
        raise RuntimeError(f"BIRD rejects {path}: {result.stderr.strip()}")


def start_speaker(lab: Lab, node: Node, text: str) -> Speaker:
    """Route the peers via the gateway (as the node preparation does) and start BIRD in the node."""
    for peer in lab.peers:
        lab.node_exec(node, f"ip -6 route replace {peer}/128 via {lab.gateway} dev eth0")
    conf, ctl = node.dir / "bird.conf", node.dir / "bird.ctl"
    _check_config(text, conf)
    proc = lab.popen_in(node, ["bird", "-f", "-c", str(conf), "-s", str(ctl), "-P", str(node.dir / "bird.pid")])
    deadline = time.monotonic() + 10
    while not ctl.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{node.name}: BIRD did not start: {(node.dir / 'bird.log').read_text() if (node.dir / 'bird.log').exists() else ''}")
        time.sleep(0.02)
    return Speaker(lab, node, conf, ctl, proc)


def birdc(ctl: Path, *args: str) -> str:
    result = _run(["birdc", "-s", str(ctl), *args], timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"birdc {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def router_ctls(lab: Lab) -> list[Path]:
    """The control sockets of the router's BIRDs (one per peer address, fd..::e then ::f)."""
    return [lab.root / f"bird-{name}.ctl" for name in ("e", "f")]


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"testbed: {what} not true after {timeout} s")
        time.sleep(interval)


def lab_cluster_yaml(lab: Lab, nodes: Sequence[Node], *, name: str = "lab", block_size: int = 122,
                     password_env: str | None = "V6KUBE_TESTBED_BGP_PASSWORD", extra: str = "") -> str:
    """A static cluster file for the lab's nodes: the block is the lab's /56 (its LAN is the servers'
    /64), the peers and AS numbers are the lab router's."""
    block = IPv6Network((lab.lan.network_address, 56), strict=False)
    lines = [f"name: {name}", "provider:", "  type: static", f'  block: "{block}"',
             "  local_asn: 65000", "  peer_asn: 65530", "  peers:"]
    lines += [f'    - "{p}"' for p in lab.peers]
    lines += ["  multihop: true"] + ([f"  bgp_password_env: {password_env}"] if password_env else [])
    lines += ["nodes:"]
    for i, node in enumerate(nodes):
        lines += [f"  - name: {node.name}", f"    role: {'control-plane' if i == 0 else 'worker'}",
                  f'    address: "{node.address}"', f'    gateway: "{lab.gateway}"']
    lines += ["calico:", f"  block_size: {block_size}"]
    return "\n".join(lines) + "\n" + extra


def nth_block(subnet: IPv6Network, block_size: int, index: int) -> IPv6Network:
    """The index-th Calico block of `subnet` (no listing: a /64 holds 2^58 /122s)."""
    return IPv6Network((int(subnet.network_address) + index * 2 ** (128 - block_size), block_size))
