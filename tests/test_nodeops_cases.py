"""The planner as data: raw fact outputs and a spec in, commands or no-op reasons out.

One case per file in tests/nodeops_cases/*.yaml:

    base: debian-12-prepared   # raw facts captured from a testbed node (nodeops_cases/facts/)
    facts: {routes: "..."}     # raw outputs that replace the base's, fact by fact
    spec: {gateway: "..."}     # changes to the default spec below
    expect:                    # per step; `rest` covers the steps not named
      peer-routes: {run: ["substring of a command", ...], because: "substring of the reason"}
      sysctls: {noop: "substring of the reason"}
      rest: noop               # or run
    error: {type: UnsupportedOS, message: "..."}   # instead of expect
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from v6kube import errors
from v6kube.nodes import Facts, PrepareSpec, plan_node

CASES = Path(__file__).parent / "nodeops_cases"
DEFAULT_SPEC = {
    "node": "n1",
    "os_id_hint": None,
    "kubernetes_minor": "1.33",
    "resolvers": ["2001:4860:4860::8888", "2001:4860:4860::8844"],
    "gateway": "fd6b:7636:1:1::1",
    "peers": ["fd6b:7636:1:ffff::e", "fd6b:7636:1:ffff::f"],
}
STEP_NAMES = ["swap-off", "kernel-modules", "sysctls", "resolvers-resolved", "resolvers-resolv-conf", "kubelet-resolvers",
              "networkd-keeps-routes", "peer-routes", "peer-routes-at-boot", "base-packages", "docker-repo",
              "kubernetes-repo", "packages", "packages-held", "containerd-config"]


def load_case(path: Path) -> dict:
    case = yaml.safe_load(path.read_text())
    raw = yaml.safe_load((CASES / "facts" / f"{case['base']}.yaml").read_text())
    raw.update(case.get("facts") or {})
    case["raw"] = raw
    case["spec"] = PrepareSpec(**{**DEFAULT_SPEC, **(case.get("spec") or {})})
    return case


def case_files() -> list[Path]:
    return sorted(CASES.glob("*.yaml"))


def test_there_are_cases():
    assert len(case_files()) >= 20


def test_step_names_are_what_the_cases_use():
    names = [r.step for r in plan_node(Facts.from_raw(load_case(CASES / "fresh-debian-12.yaml")["raw"]),
                                       PrepareSpec(**DEFAULT_SPEC))]
    assert names == STEP_NAMES


@pytest.mark.parametrize("path", case_files(), ids=lambda p: p.stem)
def test_case(path: Path):
    case = load_case(path)
    facts = Facts.from_raw(case["raw"])
    if "error" in case:
        error_type = getattr(errors, case["error"]["type"])
        with pytest.raises(error_type) as raised:
            plan_node(facts, case["spec"])
        assert case["error"]["message"] in str(raised.value)
        return

    expect = dict(case["expect"])
    rest = expect.pop("rest", None)
    unknown = set(expect) - set(STEP_NAMES)
    assert not unknown, f"unknown steps in the case: {unknown}"
    results = {r.step: r for r in plan_node(facts, case["spec"])}
    for name in STEP_NAMES:
        result = results[name]
        wanted = expect.get(name, {rest: True} if rest in ("noop", "run") else None)
        assert wanted is not None, f"the case says nothing about step {name} (add it, or `rest:`)"
        if "noop" in wanted:
            assert not result.changed, f"{name} should be a no-op but runs: {result.reason}"
            if isinstance(wanted["noop"], str):
                assert wanted["noop"] in result.reason, f"{name}: reason {result.reason!r}"
            continue
        assert result.changed, f"{name} should run but is a no-op: {result.reason}"
        expected_parts = wanted["run"] if isinstance(wanted["run"], list) else []
        script = "\n".join(result.commands)
        position = 0
        for part in expected_parts:
            found = script.find(part, position)
            assert found >= 0, f"{name}: {part!r} not in its commands (in order):\n{script}"
            position = found
        if "because" in wanted:
            assert wanted["because"] in result.reason, f"{name}: reason {result.reason!r}"
