"""How node preparation scales: prepare N = 1 and N = 10 fresh testbed nodes at once and print the
wall-time ratio (target: within 1.5x, since the nodes are prepared concurrently).

Each measurement opens the SSH connections and runs prepare_nodes (facts, plan, apply, verify)
on fresh nodes; building the nodes is not timed. Two settings:

- as is: the testbed has no network latency and its stubbed apt-get returns at once, so all the
  work is CPU (sshd, shells, the commands, paramiko) shared by this machine's cores: N nodes cost
  about N/cores times one node, however concurrent the code is. The CPU figures show that, and
  how much of it is v6kube's own process (the rest is the simulated servers' work, which real
  servers do on their own CPUs).
- with apt latency: the apt-get stub sleeps --apt-seconds per call (a real `apt-get update` and
  install of containerd and the Kubernetes packages take tens of seconds, so 1 s and 3 s are
  still far below real servers), where waiting, not CPU, dominates. Here concurrency is what the
  ratio measures.

Needs root and the testbed's tools; run it where nothing can leave the machine:

    tests/run-in-netns .venv/bin/python benchmarks/prepare_scaling.py [--rounds 3] [--apt-seconds 1 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from testbed.lab import Lab, missing_prerequisites, target_for  # noqa: E402
from v6kube.nodes import PrepareSpec, prepare_nodes  # noqa: E402
from v6kube.ssh import SSHOptions, open_connections  # noqa: E402

OSES = ("debian-12", "ubuntu-22.04", "ubuntu-24.04")


def cpu_seconds() -> float:
    """CPU time used by the whole machine so far (user + system, all processes)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def own_cpu_seconds() -> float:
    """CPU time used by this process (v6kube's side: paramiko, planning, threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(lab: Lab, count: int, options: SSHOptions, apt_seconds: float) -> tuple[float, float, float, float]:
    """Seconds to prepare `count` fresh nodes, to run again on them (all no-ops), and the CPU
    seconds the first run cost: the whole machine's and v6kube's own."""
    nodes = [lab.add_node(os_name=OSES[i % len(OSES)], resolved=OSES[i % len(OSES)] == "ubuntu-24.04")
             for i in range(count)]
    if apt_seconds:
        for node in nodes:
            (node.state_dir / "apt-get.delay").write_text(f"{apt_seconds}\n")
    specs = {n.name: PrepareSpec(node=n.name, os_id_hint=n.os, kubernetes_minor="1.33",
                                 resolvers=("2001:4860:4860::8888", "2001:4860:4860::8844"),
                                 gateway=lab.gateway, peers=lab.peers) for n in nodes}
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the progress lines
            started, cpu, own = time.perf_counter(), cpu_seconds(), own_cpu_seconds()
            connections = open_connections([target_for(n) for n in nodes], options)
            prepare_nodes(connections, specs)
            first, cpu, own = time.perf_counter() - started, cpu_seconds() - cpu, own_cpu_seconds() - own
            started = time.perf_counter()
            prepare_nodes(connections, specs)
            again = time.perf_counter() - started
        for conn in connections.values():
            conn.close()
    finally:
        for node in nodes:
            lab.remove_node(node)
    return first, again, cpu, own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--apt-seconds", type=float, nargs="*", default=[1.0, 3.0],
                        help="apt-get stub latencies per call to measure besides none (default: 1 3)")
    args = parser.parse_args()
    problems = missing_prerequisites()
    if problems:
        print("cannot run the testbed here: " + "; ".join(problems), file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    print(f"{cores} CPU cores; median of {args.rounds} rounds; each N: open connections + prepare_nodes")
    with Lab.create() as lab:
        options = SSHOptions(private_key=lab.client_key, connect_timeout=30)
        settings = [("as is (no latency)", 0.0)] + [(f"apt-get {s:g} s per call", s) for s in args.apt_seconds]
        for label, apt_seconds in settings:
            results: dict[int, list[tuple[float, float, float, float]]] = {1: [], 10: []}
            for _ in range(args.rounds):
                for count in results:
                    results[count].append(measure(lab, count, options, apt_seconds))
            median = {count: [statistics.median(r[i] for r in rows) for i in range(4)] for count, rows in results.items()}
            (one, one_again, one_cpu, one_own), (ten, ten_again, ten_cpu, ten_own) = median[1], median[10]
            print(f"\n{label}:")
            print(f"  N=1:  {one:5.2f} s  (machine CPU {one_cpu:4.2f} s, of which v6kube {one_own:4.2f} s; "
                  f"second run, all no-ops: {one_again:.2f} s)")
            print(f"  N=10: {ten:5.2f} s  (machine CPU {ten_cpu:4.2f} s = {ten_cpu / cores:.2f} s per core, "
                  f"of which v6kube {ten_own:4.2f} s; second run: {ten_again:.2f} s)")
            print(f"  ratio N=10 / N=1: {ten / one:.2f}x   (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
