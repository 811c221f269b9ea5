"""How long `v6kube plan` takes to refuse each hostile cluster file of tests/hostile_files.py
(target: each within 2 s, Python start-up included). Prints one line per file and the slowest.

    .venv/bin/python benchmarks/hostile_files.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hostile_files import CASES, run_case  # noqa: E402


def main() -> None:
    times = []
    for name, make, _words in CASES:
        with tempfile.TemporaryDirectory() as directory:
            result, _shown, seconds = run_case(make, Path(directory))
        times.append((seconds, name))
        print(f"{name:30s} exit {result.returncode}  {seconds:5.2f} s")
    slowest, name = max(times)
    print(f"{len(times)} files; slowest {name} {slowest:.2f} s; target 2 s each: "
          f"{'met' if slowest <= 2.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
