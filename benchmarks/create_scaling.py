"""How `v6kube create` scales with the number of workers: 1 control plane and N = 1, 5, 20
workers on testbed nodes, wall time of the whole command and the ratio to N = 1 (target: N = 20
within 1.3x of N = 1, since servers are created, prepared and joined concurrently).

--provider packet (default) runs against the fake Metal API, whose devices boot as testbed nodes
after --provision-seconds (real bare metal takes minutes: scaled down); --provider static uses
the nodes as servers you own.

Every node's stubbed apt-get waits --apt-seconds per call, standing in for the downloads a real
server makes (real ones take tens of seconds, so waiting, not CPU, dominates as on real servers);
with 0 the run is pure CPU on this machine's 2 cores, shared by the N simulated servers.

    tests/run-in-netns .venv/bin/python benchmarks/create_scaling.py [--provider packet|static]
        [--workers 1 5 20] [--apt-seconds 2] [--provision-seconds 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lifecycle_helpers import (Boot, DownloadServer, cli_env, fake_metal_for, run_cli, static_cluster,  # noqa: E402
                               write_cluster)

TOKEN = "benchmark-token-0123456789abcdef"
from testbed.lab import Lab, missing_prerequisites  # noqa: E402


def measure(lab: Lab, workers: int, args: argparse.Namespace, work: Path) -> float:
    names = ["cp-0"] + [f"w-{i}" for i in range(workers)]
    nodes = {name: lab.add_node(name=f"b{workers}-{name}", os_name="ubuntu-24.04",
                                start_sshd=args.provider == "static") for name in names}
    for node in nodes.values():
        if args.apt_seconds:
            (node.state_dir / "apt-get.delay").write_text(f"{args.apt_seconds}\n")
    run_dir = work / f"n{workers}"
    run_dir.mkdir()
    server = DownloadServer(lab, run_dir / "www")
    api = boot = None
    try:
        env = cli_env(server.env(run_dir / "cache"))
        if args.provider == "static":
            document = static_cluster(lab, f"bench{workers}", list(nodes.values()))
        else:
            by_hostname = {f"b{workers}-{name}": node for name, node in nodes.items()}
            api = fake_metal_for(lab, by_hostname, TOKEN, durations={"provisioning": args.provision_seconds}).start()
            boot = Boot(lab, api, by_hostname)
            boot.start()
            document = {"name": f"bench{workers}", "provider": {"type": "packet", "project": api.project_id,
                                                                "operating_system": "ubuntu_24_04"},
                        "nodes": [{"name": f"b{workers}-{n}", "role": "control-plane" if n == "cp-0" else "worker"}
                                  for n in names],
                        "ssh": {"private_key": str(lab.client_key), "address_family": "ipv6"}}
            env.update({"METAL_AUTH_TOKEN": TOKEN, "METAL_API_URL": api.url, "V6KUBE_POLL_INTERVAL": "1"})
        path = write_cluster(run_dir / "cluster.yaml", document)
        started = time.monotonic()
        result = run_cli(["create", str(path), "--state-dir", str(run_dir / "state")], env, timeout=1800)
        seconds = time.monotonic() - started
    finally:
        if boot is not None:
            boot.stop.set()
        if api is not None:
            api.stop()
        server.close()
        for node in nodes.values():
            lab.remove_node(node)
    if result.returncode != 0:
        raise SystemExit(f"create failed for N = {workers}:\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--apt-seconds", type=float, default=2.0)
    parser.add_argument("--provider", choices=("packet", "static"), default="packet")
    parser.add_argument("--provision-seconds", type=float, default=5.0)
    args = parser.parse_args()
    problems = missing_prerequisites()
    if problems:
        raise SystemExit("cannot run: " + "; ".join(problems))
    work = Path(tempfile.mkdtemp(prefix="v6k-bench-create-"))
    lab = Lab.create()
    try:
        results = {n: measure(lab, n, args, work) for n in args.workers}
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    base = results[args.workers[0]]
    extra = f", servers active after {args.provision_seconds:g} s" if args.provider == "packet" else ""
    print(f"create, {args.provider} provider, apt-get {args.apt_seconds:g} s per call{extra}, "
          "1 control plane + N workers")
    print(f"{'N':>4} {'seconds':>9} {'ratio':>7}")
    for n, seconds in results.items():
        print(f"{n:>4} {seconds:>9.1f} {seconds / base:>7.2f}")


if __name__ == "__main__":
    main()
