"""A step and its result, and the helpers every step uses to compare facts with what is wanted.

A step (`Step`) is defined once: its shell commands, its shell-side check (true when nothing is
left to do) and, for steps that only apply sometimes, a shell condition. Each `ensure_*` function
decides the same thing in Python from parsed facts and returns a `StepResult`: the step's commands
with the reason they run, or a no-op with the reason it is one.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from v6kube.nodes.facts import Facts

q = shlex.quote


@dataclass(frozen=True)
class Step:
    name: str
    summary: str  # what holds once the step has run (also the no-op reason)
    check: str  # shell: true when there is nothing to do
    commands: tuple[str, ...]
    applies: str | None = None  # shell: false when the step is not for this node
    not_applicable: str = ""


@dataclass(frozen=True)
class StepResult:
    step: str
    commands: tuple[str, ...]  # empty: a no-op
    reason: str  # why the commands run, or why nothing needs to

    @property
    def changed(self) -> bool:
        return bool(self.commands)


def _call(function: str, *args: object) -> str:
    return " ".join([function, *(q(str(a)) for a in args)])


def _all(*checks: str) -> str:
    return " && ".join(checks)


def write_file(path: str, content: str, mode: str = "0644") -> tuple[str, ...]:
    """Commands that write a file atomically (a new name in the same directory, then rename).
    One command per line: under `set -e` a failure inside an && chain would not stop the script."""
    new = f"{path}.v6kube-new"
    directory = path.rsplit("/", 1)[0]
    return (f"install -d -m 0755 {q(directory)}",
            f"printf '%s' {q(content)} > {q(new)}",
            f"chmod {mode} {q(new)}",
            f"mv -f {q(new)} {q(path)}")


def _result(step: Step, problems: list[str]) -> StepResult:
    if problems:
        return StepResult(step.name, step.commands, "; ".join(problems))
    return StepResult(step.name, (), step.summary)


def _file_problem(facts: Facts, path: str, content: str) -> list[str]:
    current = facts.files.get(path)
    if current is None:
        return [f"{path} is missing"]
    if current != content:
        return [f"{path} differs from what v6kube writes"]
    return []


def _route_via(facts: Facts, destination: IPv6Network, gateway: IPv6Address) -> bool:
    return any(r.destination == destination and r.via == str(gateway) for r in facts.routes)


def _module_loaded(facts: Facts, module: str) -> bool:
    return module in facts.modules or module in facts.builtin_modules


def _package_installed(facts: Facts, package: str, prefix: str) -> bool:
    status, version = facts.packages.get(package, ("", ""))
    return status == "installed" and version.startswith(prefix)


def _resolved_in_use(facts: Facts) -> bool:
    return "run/systemd/resolve/" in facts.resolv_conf_link
