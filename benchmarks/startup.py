#!/usr/bin/env python3
"""CLI start-up: wall time of `v6kube --help` and `v6kube plan examples/packet.yaml` against a bare
interpreter start, over repeated runs. Prints medians and ratios. Target: --help within 8x of
`python -c pass` on the same machine.

    python benchmarks/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(argv: list[str], runs: int) -> float:
    subprocess.run(argv, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    py = sys.executable
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "v6kube --help": [py, "-m", "v6kube", "--help"],
        "v6kube plan examples/packet.yaml": [py, "-m", "v6kube", "plan", str(ROOT / "examples" / "packet.yaml")],
    }
    base = None
    print(f"{'command':<36} {'median':>9} {'ratio':>7}   ({runs} runs each)")
    for name, argv in cases.items():
        seconds = median_seconds(argv, runs)
        base = base or seconds
        print(f"{name:<36} {seconds * 1000:>7.1f}ms {seconds / base:>6.1f}x")


if __name__ == "__main__":
    main()
