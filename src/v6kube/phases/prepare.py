"""prepare: every node of this run prepared over SSH, in parallel (facts, then steps)."""

from __future__ import annotations

from v6kube.phases.context import Run


def _specs(run: Run) -> dict:
    from v6kube import planner

    return {name: planner.prepare_spec(run.plan, run.plan.addresses.node(name)) for name in run.node_names}


def prepare(run: Run) -> None:
    from v6kube.nodes import prepare_nodes

    prepare_nodes(run.connections(), _specs(run), phase="prepare")


def nodes_prepared(run: Run) -> bool:
    """Every node's facts say nothing is left to do (one read-only command per node)."""
    from v6kube.nodes import gather_facts, plan_node

    connections, specs = run.connections(), _specs(run)

    def converged(name: str) -> bool:
        results = plan_node(gather_facts(connections[name], phase="prepare"), specs[name])
        return not any(r.changed for r in results)

    return all(run.on_nodes(list(specs), converged).values())


def inputs(run: Run) -> dict:
    return {name: repr(spec) for name, spec in _specs(run).items()}
