"""`v6kube plan` shows each provider's own phases and API calls (a static plan lists no Packet call)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def plan(example: str, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "plan"
    result = subprocess.run([sys.executable, "-m", "v6kube", "plan", str(ROOT / "examples" / example), "--out",
                             str(out), *extra], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "plan.json").read_text())


def test_a_static_plan_lists_its_own_phases_and_no_api_call(tmp_path):
    doc = plan("static.yaml", tmp_path)
    assert doc["provider_calls"] == []
    phases = {p["name"]: p["summary"] for p in doc["phases"]}
    assert "nothing is created" in phases["provision"]
    assert "project" not in phases["bgp"] and "session" not in phases["bgp"]


def test_a_packet_plan_lists_packet_phases_and_calls(tmp_path):
    doc = plan("packet.yaml", tmp_path, "--block", "2604:1380:4641:c500::/56")
    phases = {p["name"]: p["summary"] for p in doc["phases"]}
    assert "Local BGP" in phases["bgp"] and "metro" in phases["provision"]
    assert {c["path"] for c in doc["provider_calls"]} >= {"/projects/{project}/devices", "/devices/{id}/bgp/sessions"}


def test_a_phoenixnap_plan_lists_its_phases_calls_and_assumed_blocks(tmp_path):
    doc = plan("phoenixnap.yaml", tmp_path)
    phases = {p["name"]: p["summary"] for p in doc["phases"]}
    assert "BGP peer group of PHX" in phases["bgp"] and "/64 blocks" in phases["provision"]
    assert all("/projects/" not in c["path"] for c in doc["provider_calls"])
    assert {"block", "node_addresses", "bgp_peers"} <= set(doc["assumed"])
    assert doc["addressing"]["pod_subnet"] == "2001:db8:0:2a01::/64"


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_every_example_plans_offline(tmp_path, example):
    assert plan(example, tmp_path)["phases"]
