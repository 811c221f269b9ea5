"""Running the plan over SSH: each step's commands under the node's step lock, several nodes at once,
facts read again afterwards to verify."""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

from v6kube import console
from v6kube.errors import NodeNotConverged, RemoteCommandFailed, UsageError
from v6kube.nodes.facts import gather_facts
from v6kube.nodes.managed import STEP_LOCK
from v6kube.nodes.plan import plan_node
from v6kube.nodes.spec import PrepareSpec
from v6kube.nodes.step import Step, StepResult
from v6kube.render import render

q = shlex.quote


def step_script(result: StepResult) -> str:
    """A step's commands as one remote command under the node's step lock; `set -e` stops at the
    first failing command."""
    script = "set -eu\n" + "\n".join(result.commands)
    return f"flock -o -w 900 {STEP_LOCK} sh -c {q(script)}"


def check_script(step: Step) -> str:
    """A step's shell check as a script (helpers included): exit 0 when there is nothing to do,
    3 when the step does not apply, 1 otherwise."""
    condition = f"if {step.applies}; then :; else exit 3; fi\n" if step.applies else ""
    return render("node/helpers.sh") + condition + f"if {step.check}; then exit 0; fi\nexit 1\n"


def apply(conn: Any, results: Sequence[StepResult], *, phase: str = "prepare") -> None:
    """Run the commands of the steps that have any; report the no-ops with their reasons."""
    node = conn.node
    for result in results:
        if not result.changed:
            console.progress(phase, node, f"{result.step}: ok ({result.reason})")
            continue
        console.progress(phase, node, f"{result.step}: {result.reason}")
        try:
            # Steps are safe to repeat, so a dropped connection just runs the step again.
            conn.run(step_script(result), phase=phase, idempotent=True)
        except RemoteCommandFailed as exc:  # name the step, not its whole script (that is in the log)
            raise RemoteCommandFailed(node, f"step {result.step}", exc.exit_status, exc.output) from None


def _verify(conn: Any, spec: PrepareSpec, phase: str) -> None:
    left = [r for r in plan_node(gather_facts(conn, phase=phase), spec) if r.changed]
    if left:
        details = "; ".join(f"{r.step}: {r.reason}" for r in left)
        raise NodeNotConverged(f"{spec.node}: still not as wanted after preparing: {details}",
                               hint="see the node's log in the state directory's logs/")


def prepare_nodes(connections: Mapping[str, Any], specs: Mapping[str, PrepareSpec], *,
                  phase: str = "prepare") -> dict[str, list[StepResult]]:
    """Prepare several nodes at once (one thread and one connection per node).

    Facts are read and planned on every node before anything changes anywhere, so an unsupported
    OS on one node stops the run with nothing changed. If a node fails, the others still finish;
    then the first failure (in the specs' order) is raised.
    """
    missing = [name for name in specs if name not in connections]
    if missing:
        raise UsageError(f"no connection for node(s): {', '.join(missing)}")
    names = list(specs)
    if not names:
        return {}
    workers = min(32, len(names))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool:
        planned = _on_every_node(pool, names, lambda n: plan_node(gather_facts(connections[n], phase=phase), specs[n]))

        def run(name: str) -> list[StepResult]:
            apply(connections[name], planned[name], phase=phase)
            if any(r.changed for r in planned[name]):  # nothing ran: the facts just read are still true
                _verify(connections[name], specs[name], phase)
            console.progress(phase, name, "prepared")
            return planned[name]

        return _on_every_node(pool, names, run)


def _on_every_node(pool: ThreadPoolExecutor, names: list[str], work: Callable[[str], Any]) -> dict[str, Any]:
    futures = {name: pool.submit(work, name) for name in names}
    results, errors = {}, []
    for name in names:
        try:
            results[name] = futures[name].result()
        except Exception as exc:  # all nodes finish; the first failure is raised below
            errors.append((name, exc))
    for name, exc in errors[1:]:
        console.error(str(exc))
    if errors:
        raise errors[0][1]
    return results
