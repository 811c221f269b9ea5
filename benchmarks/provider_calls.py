"""API requests per server and wall time of provisioning, for N servers, on the fake APIs:
Packet (the Metal fake) and phoenixNAP (the phoenixNAP fake, OAuth token included).

Provisioning times are realistic ones scaled down 120 times: queued 30 s -> 0.25 s, provisioning
5 min -> 2.5 s, device poll interval 10 s -> 0.083 s, neighbour poll 5 s -> 0.042 s; neighbour data
appears on the second poll. The run: enable BGP, ensure the SSH key and servers, wait (one poll
loop), a BGP session and neighbours per server, the /56; then the same again (must create nothing).

    tests/run-in-netns .venv/bin/python benchmarks/provider_calls.py [N ...]    (default: 1 10 50)

phoenixNAP: creating 10 min -> 5 s, poll interval 15 s -> 0.125 s; the run makes the peer
group, the cluster's /64s, its public network, the SSH key and the servers, waits, checks the
servers are on the network; then the same again.

Targets: at most 8 requests per server outside the shared poll loop; wall time for 50 servers
within 1.3 times that of 1.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from fakes.metal_api import FakeMetal  # noqa: E402
from fakes.pnap_api import FakePnap  # noqa: E402

from v6kube.config import Cluster  # noqa: E402
from v6kube.providers import make_provider  # noqa: E402
from v6kube.providers.base import CONTROL_PLANE, WORKER, ServerSpec  # noqa: E402
from v6kube.providers.hostkeys import generate_host_key  # noqa: E402
from v6kube.providers.packet.client import MetalClient  # noqa: E402

SCALE = 1 / 120
TOKEN = "benchmark-token-0123456789abcdef"
LIST_DEVICES = r"/projects/[^/]+/devices"


def run(n: int) -> dict:
    names = ["cp-0"] + [f"w-{i}" for i in range(n - 1)]
    specs = [ServerSpec(name, CONTROL_PLANE if i == 0 else WORKER, *generate_host_key()) for i, name in enumerate(names)]
    with FakeMetal(token=TOKEN, durations={"queued": 30 * SCALE, "provisioning": 300 * SCALE},
                   neighbor_delay_polls=1) as api:
        cluster = Cluster.model_validate({"name": "bench", "provider": {"type": "packet", "project": api.project_id},
                                          "nodes": [{"name": s.name, "role": s.role} for s in specs]})
        provider = make_provider(cluster, client=MetalClient(TOKEN, api.url), environ={},
                                 ssh_public_key=generate_host_key()[0],
                                 poll_interval=10 * SCALE, neighbor_interval=5 * SCALE)
        started = time.monotonic()
        provider.ensure_bgp()
        servers = provider.ensure_servers(specs)
        before_wait = api.count()
        servers = provider.wait_servers(servers, timeout=3600 * SCALE)
        poll_loop = len([r for r in api.recorded()[before_wait:] if r.method == "GET" and re.fullmatch(LIST_DEVICES, r.path)])
        provider.ensure_bgp_sessions(servers)
        provider.find_block()
        wall = time.monotonic() - started
        total = api.count()
        per_device = sum(1 for r in api.recorded() if r.path.startswith("/devices/")
                         or (r.method == "POST" and re.fullmatch(LIST_DEVICES, r.path))
                         or ("hostname" in r.query and re.fullmatch(LIST_DEVICES, r.path)))

        api.clear_requests()
        rerun_started = time.monotonic()
        provider.ensure_bgp()
        again = provider.wait_servers(provider.ensure_servers(specs), timeout=60)
        provider.ensure_bgp_sessions(again)
        provider.find_block()
        rerun_wall = time.monotonic() - rerun_started
        assert len(api.project_devices()) == n
        return {"n": n, "total": total, "poll": poll_loop, "per_server": (total - poll_loop) / n,
                "per_device": per_device / n, "shared": total - poll_loop - per_device, "wall": wall,
                "rerun_requests": api.count(), "rerun_posts": api.count("POST"), "rerun_wall": rerun_wall}


def run_pnap(n: int) -> dict:
    names = ["cp-0"] + [f"w-{i}" for i in range(n - 1)]
    specs = [ServerSpec(name, CONTROL_PLANE if i == 0 else WORKER, *generate_host_key()) for i, name in enumerate(names)]
    with FakePnap("bench-id", "bench-secret-0123456789", durations={"creating": 600 * SCALE}) as api:
        cluster = Cluster.model_validate({"name": "bench", "provider": {"type": "phoenixnap"},
                                          "nodes": [{"name": s.name, "role": s.role} for s in specs]})
        provider = make_provider(cluster, api_url=api.url, auth_url=api.auth_url,
                                 environ={"PNAP_CLIENT_ID": "bench-id", "PNAP_CLIENT_SECRET": "bench-secret-0123456789"},
                                 ssh_public_key=generate_host_key()[0], poll_interval=15 * SCALE)
        started = time.monotonic()
        provider.ensure_bgp()
        servers = provider.ensure_servers(specs)
        before_wait = api.count()
        servers = provider.wait_servers(servers, timeout=3600 * SCALE)
        poll_loop = len([r for r in api.recorded()[before_wait:] if r.method == "GET" and r.path == "/bmc/v1/servers"])
        provider.ensure_bgp_sessions(servers)
        provider.find_blocks()
        wall = time.monotonic() - started
        total = api.count()
        per_device = sum(1 for r in api.recorded() if r.path.startswith("/bmc/v1/servers/")
                         or (r.method == "POST" and r.path == "/bmc/v1/servers"))
        api.requests.clear()
        rerun_started = time.monotonic()
        provider.ensure_bgp()
        again = provider.wait_servers(provider.ensure_servers(specs), timeout=60)
        provider.ensure_bgp_sessions(again)
        rerun_wall = time.monotonic() - rerun_started
        assert len(api.live()["servers"]) == n
        return {"n": n, "total": total, "poll": poll_loop, "per_server": (total - poll_loop) / n,
                "per_device": per_device / n, "shared": total - poll_loop - per_device, "wall": wall,
                "rerun_requests": api.count(), "rerun_posts": api.count("POST", r"/(bmc|ips|networks)/.*"),
                "rerun_wall": rerun_wall}


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [1, 10, 50]
    ok = True
    for name, runner in (("packet", run), ("phoenixnap", run_pnap)):
        print(f"== {name}")
        ok &= report([runner(n) for n in sizes])
    return 0 if ok else 1


def report(results: list[dict]) -> bool:
    print(f"{'N':>4} {'requests':>9} {'poll loop':>9} {'shared':>7} {'per server':>11} "
          f"{'device-scoped':>14} {'wall s':>7} {'rerun req':>10} {'rerun POST':>10} {'rerun s':>8}")
    for r in results:
        print(f"{r['n']:>4} {r['total']:>9} {r['poll']:>9} {r['shared']:>7} {r['per_server']:>11.2f} "
              f"{r['per_device']:>14.2f} {r['wall']:>7.2f} {r['rerun_requests']:>10} {r['rerun_posts']:>10} "
              f"{r['rerun_wall']:>8.2f}")
    print("per server = (requests - poll loop) / N; device-scoped = requests on /devices/{id}/... and the "
          "device POST, / N; shared = project-level requests made once per run")
    ok = True
    by_n = {r["n"]: r for r in results}
    worst = max(r["per_device"] for r in results)
    print(f"device-scoped requests per server: at most {worst:.2f} (target <= 8): {'ok' if worst <= 8 else 'MISSED'}")
    ok &= worst <= 8
    if 1 in by_n and 50 in by_n:
        ratio = by_n[50]["wall"] / by_n[1]["wall"]
        print(f"wall time 50 / 1: {ratio:.2f} (target <= 1.3): {'ok' if ratio <= 1.3 else 'MISSED'}")
        ok &= ratio <= 1.3
    polls = [r["poll"] for r in results]
    print(f"poll-loop requests by N: {polls} (target: not growing with N): "
          f"{'ok' if polls[-1] <= polls[0] + 2 else 'MISSED'}")
    ok &= polls[-1] <= polls[0] + 2
    ok &= all(r["rerun_posts"] == 0 for r in results)
    return ok


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
