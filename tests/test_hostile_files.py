"""Hostile cluster files: each exits 2 with the file named and words a user reads, never a
traceback, "internal error" or a hang. How long each takes is printed by benchmarks/hostile_files.py
(and shown here with -s); timing is measured, not asserted."""

from __future__ import annotations

import pytest

from hostile_files import CASES, run_case


def test_at_least_twenty_hostile_files():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_file_exits_2_naming_the_file(case, tmp_path):
    name, make, words = case
    result, shown, seconds = run_case(make, tmp_path)
    err = result.stderr.decode("utf-8", "replace")
    print(f"{name}: exit {result.returncode} in {seconds:.2f} s")
    assert result.returncode == 2, err
    assert result.stdout == b""
    assert f"error: {shown}" in err, err  # the file named first
    assert words in err, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(err) < 20_000, len(err)  # thousands of problems are summarised


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    from hostile_files import VALID

    from v6kube.config import load_cluster

    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_cluster(path).name == "seed"
