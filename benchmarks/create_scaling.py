"""How `v6kube create` scales with the number of workers: 1 control plane and N = 1, 5, 20
workers on testbed nodes (static provider), wall time of the whole command and the ratio to N = 1
(target: N = 20 within 1.3x of N = 1, since nodes are prepared and joined concurrently).

Every node's stubbed apt-get waits --apt-seconds per call, standing in for the downloads a real
server makes (real ones take tens of seconds, so waiting, not CPU, dominates as on real servers);
with 0 the run is pure CPU on this machine's 2 cores, shared by the N simulated servers.

    tests/run-in-netns .venv/bin/python benchmarks/create_scaling.py [--workers 1 5 20] [--apt-seconds 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lifecycle_helpers import DownloadServer, cli_env, run_cli, static_cluster, write_cluster  # noqa: E402
from testbed.lab import Lab, missing_prerequisites  # noqa: E402


def measure(lab: Lab, workers: int, apt_seconds: float, work: Path) -> float:
    nodes = [lab.add_node() for _ in range(workers + 1)]
    for node in nodes:
        if apt_seconds:
            (node.state_dir / "apt-get.delay").write_text(f"{apt_seconds}\n")
    run_dir = work / f"n{workers}"
    run_dir.mkdir()
    path = write_cluster(run_dir / "cluster.yaml", static_cluster(lab, f"bench{workers}", nodes))
    server = DownloadServer(lab, run_dir / "www")
    try:
        env = cli_env(server.env(run_dir / "cache"))
        started = time.monotonic()
        result = run_cli(["create", str(path), "--state-dir", str(run_dir / "state")], env, timeout=1800)
        seconds = time.monotonic() - started
    finally:
        server.close()
        for node in nodes:
            lab.remove_node(node)
    if result.returncode != 0:
        raise SystemExit(f"create failed for N = {workers}:\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--apt-seconds", type=float, default=2.0)
    args = parser.parse_args()
    problems = missing_prerequisites()
    if problems:
        raise SystemExit("cannot run: " + "; ".join(problems))
    work = Path(tempfile.mkdtemp(prefix="v6k-bench-create-"))
    lab = Lab.create()
    try:
        results = {n: measure(lab, n, args.apt_seconds, work) for n in args.workers}
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    base = results[args.workers[0]]
    print(f"create, static provider, apt-get {args.apt_seconds:g} s per call, 1 control plane + N workers")
    print(f"{'N':>4} {'seconds':>9} {'ratio':>7}")
    for n, seconds in results.items():
        print(f"{n:>4} {seconds:>9.1f} {seconds / base:>7.2f}")


if __name__ == "__main__":
    main()
