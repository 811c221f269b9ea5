"""The commands that change a cluster, as plain functions: create, join-worker, destroy, kubeconfig.

Each loads the cluster file, takes the state lock, builds a `Run` and hands a literal list of
phases to the runner. cli.py only parses options and calls these.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from v6kube import console
from v6kube.config import Cluster
from v6kube.errors import StateError, UsageError
from v6kube.phases.context import Run, Timeouts, with_added_nodes
from v6kube.state import State, default_state_dir, load_state, locked


@contextmanager
def open_run(cluster: Cluster, source: str, command: str, state_dir: Path | None, *, must_exist: bool = False,
             provider_options: Mapping[str, Any] | None = None, timeouts: Timeouts | None = None,
             environ: Mapping[str, str] | None = None, read_only: bool = False,
             bgp_password: bool = True) -> Iterator[Run]:
    from v6kube.providers import make_provider

    directory = default_state_dir(cluster.name, state_dir)
    if must_exist and not (directory / "state.json").exists():
        raise StateError(f"no state for cluster {cluster.name!r} in {directory}",
                         hint="run 'v6kube create' first, or pass the right --state-dir")
    env = os.environ if environ is None else environ
    check_credentials(cluster, env, provider_options or {}, bgp_password=bgp_password and not read_only)
    with locked(directory):
        state = load_state(directory, cluster.name, cluster.provider.type, must_exist=must_exist)
        cluster = with_added_nodes(cluster, state)
        timeouts = timeouts or Timeouts()
        options = dict(provider_options or {})
        if cluster.provider.type != "static" and "V6KUBE_POLL_INTERVAL" in env:
            options.setdefault("poll_interval", timeouts.poll)
        provider = make_provider(cluster, environ=env, **options)
        run = Run(cluster, state, provider, source, command, timeouts=timeouts, read_only=read_only)
        try:
            yield run
        finally:
            run.close()
            state.save()


def check_credentials(cluster: Cluster, environ: Mapping[str, str], provider_options: Mapping[str, Any],
                      *, bgp_password: bool = True) -> None:
    """Secrets the run will need are there before anything is called (exit 2 otherwise).
    status and destroy render nothing, so they need no BGP password."""
    from v6kube.providers.base import password_from_env

    if bgp_password:
        password_from_env(getattr(cluster.provider, "bgp_password_env", None), environ)
    if "client" in provider_options or "clients" in provider_options:
        return
    from v6kube.errors import ProviderError

    try:
        if cluster.provider.type == "packet":
            from v6kube.providers.packet.client import token_from_env

            token_from_env(environ)
        elif cluster.provider.type == "phoenixnap":
            from v6kube.providers.phoenixnap.client import credentials_from_env

            credentials_from_env(environ)
    except ProviderError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def create(cluster: Cluster, source: str, state_dir: Path | None = None, *, only: str | None = None,
           skip: tuple[str, ...] = (), merge_kubeconfig: bool = False, **options: Any) -> State:
    from v6kube.phases import CREATE_PHASES
    from v6kube.workflow import run_phases

    with open_run(cluster, source, f"create {source}", state_dir, **options) as run:
        run_phases(CREATE_PHASES, run, command=f"create {source}", only=only, skip=skip)
        if merge_kubeconfig:
            merge_into_user_config(run.state)
        summary(run)
        return run.state


def summary(run: Run) -> None:
    path = run.local_path("kubeconfig")
    servers = run.servers
    console.table(f"Cluster {run.cluster.name}", ["node", "role", "address"],
                  [(n.name, n.role, servers[n.name].ipv6 or n.address) for n in run.cluster.nodes])
    if path.exists():
        console.info(f"kubeconfig: {path}")
        console.info(f"try: kubectl --kubeconfig {path} get nodes -o wide")


# --- join-worker -------------------------------------------------------------------------------


def next_worker_names(names: list[str], count: int) -> list[str]:
    """Names for `count` new workers, numbered on from the existing ones ("worker-2" -> "worker-3")."""
    pattern = re.compile(r"^(.*?)(\d+)$")
    numbered = [(m.group(1), int(m.group(2))) for m in map(pattern.match, names) if m]
    prefix = numbered[-1][0] if numbered else "worker-"
    start = max((n for p, n in numbered if p == prefix), default=-1) + 1
    return [f"{prefix}{i}" for i in range(start, start + count)]


def join_worker(cluster: Cluster, source: str, state_dir: Path | None = None, *, count: int | None = None,
                node: str | None = None, **options: Any) -> list[str]:
    """Add workers: `count` new ones named on (API providers), or the named node from the file.
    Returns the nodes the run worked on. Running it twice adds nothing."""
    from v6kube.phases import JOIN_PHASES
    from v6kube.workflow import run_phases

    if (count is None) == (node is None):
        raise UsageError("give either --count N or --node NAME")
    command = f"join-worker {source} " + (f"--node {node}" if node else f"--count {count}")
    with open_run(cluster, source, command, state_dir, must_exist=True, **options) as run:
        if node is not None:
            roles = {n.name: n.role for n in run.cluster.nodes}
            if roles.get(node) != "worker":
                raise UsageError(f"--node {node}: no worker of that name in {source}",
                                 hint="add it to the cluster file's nodes (role: worker) first")
            new = [node]
        else:
            if cluster.provider.type == "static":
                raise UsageError("--count needs a provider that creates servers; with static, add the "
                                 "server to the cluster file and use --node NAME")
            if count is None or count < 1:
                raise UsageError("--count must be at least 1")
            # Declarative, so running it again adds nothing: N workers beyond the cluster file's.
            # A run killed half-way left its names in "joining": those are finished first.
            added = [n["name"] for n in run.state.added_nodes()]
            pending = run.state.fact("joining") or []
            missing = max(0, count - len(added))
            new = pending or next_worker_names([n.name for n in run.cluster.nodes if n.role == "worker"], missing)
            if not new:
                console.info(f"the cluster already has {len(added)} worker(s) beyond {source}: "
                             f"{', '.join(added)}; nothing to add")
            run.state.set_fact("joining", new)
            for name in new:
                run.state.add_node(name, "worker")
            run.state.save()
            run.cluster = with_added_nodes(cluster, run.state)
        if not new:
            return []
        run.only_nodes = tuple(new)
        for phase in ("prepare", "workers", "calico-bgp"):
            run.state.data["phases_done"].pop(phase, None)  # they must now cover the new nodes
        run_phases(JOIN_PHASES, run, command=command)
        run.state.set_fact("joining", [])
        summary(run)
        return new


# --- kubeconfig --------------------------------------------------------------------------------


def merge_into_user_config(state: State, environ: Mapping[str, str] | None = None) -> Path:
    from v6kube import kubeconfig

    source = state.directory / "kubeconfig"
    if not source.exists():
        raise StateError(f"no kubeconfig in {state.directory}", hint="run 'v6kube create' first")
    target = kubeconfig.default_target(dict(os.environ if environ is None else environ))
    backup = kubeconfig.merge(source.read_text(encoding="utf-8"), target)
    state.set_fact("merged_kubeconfig", str(target))
    state.save()
    console.info(f"merged context {state.data['cluster']} into {target}" +
                 (f" (backup: {backup})" if backup else ""))
    return target


def kubeconfig_path(cluster: Cluster, state_dir: Path | None = None, *, merge: bool = False) -> Path:
    directory = default_state_dir(cluster.name, state_dir)
    path = directory / "kubeconfig"
    if not path.exists():
        raise StateError(f"no kubeconfig for cluster {cluster.name!r} in {directory}",
                         hint="run 'v6kube create' first, or pass the right --state-dir")
    if merge:
        with locked(directory):
            return merge_into_user_config(load_state(directory, cluster.name, cluster.provider.type, must_exist=True))
    return path


# --- destroy -----------------------------------------------------------------------------------


def destroy(cluster: Cluster, source: str, state_dir: Path | None = None, **options: Any) -> None:
    """Delete the cluster's servers (API providers: state ids and a tag search) or reset static
    nodes; then remove the merged context and the state."""
    from v6kube import kubeconfig
    from v6kube.phases.teardown import destroy as teardown

    directory = default_state_dir(cluster.name, state_dir)
    if not (directory / "state.json").exists():
        console.info(f"no state for {cluster.name} in {directory}: going by {source} and the provider's tags")
    with open_run(cluster, source, f"destroy {source}", state_dir, bgp_password=False, **options) as run:
        teardown(run)
        merged = run.state.fact("merged_kubeconfig")
        if merged and kubeconfig.unmerge(cluster.name, Path(merged)):
            console.info(f"removed context {cluster.name} from {merged}")
    shutil.rmtree(directory, ignore_errors=True)
    console.info(f"cluster {cluster.name} destroyed; state {directory} removed")


# --- announce-services and status ----------------------------------------------------------------


def announce_services(cluster: Cluster, source: str, state_dir: Path | None, options: Any, **run_options: Any) -> list[str]:
    from v6kube.phases.announce import apply

    with open_run(cluster, source, f"announce-services {source}", state_dir, must_exist=True, **run_options) as run:
        changes = apply(run, options)
        announced = run.state.fact("announce")
        for line in changes or ["nothing changed"]:
            console.info(line)
        console.data(f"announced: cluster IPs {'on' if announced['cluster_ips'] else 'off'}; "
                     f"external IPs {', '.join(announced['external_ips']) or 'none'}; "
                     f"LoadBalancer IPs {', '.join(announced['load_balancer_ips']) or 'none'}; "
                     f"Local services {', '.join(announced['local']) or 'none'}")
        return changes


def status(cluster: Cluster, source: str, state_dir: Path | None, *, as_json: bool = False, watch: bool = False,
           interval: float = 10.0, **run_options: Any) -> int:
    """Print the report (tables or JSON); returns its exit code (0 healthy, 1 degraded)."""
    import time

    from v6kube.status import print_report
    from v6kube.status.gather import collect

    with open_run(cluster, source, f"status {source}", state_dir, must_exist=True, read_only=True,
                  **run_options) as run:
        run.connect_timeout = min(run.cluster.ssh.connect_timeout, 20.0)  # report an unreachable node, don't wait
        while True:
            report = collect(run)
            if as_json:
                console.data_json(report.as_dict())
            else:
                print_report(report)
            if not watch:
                return report.exit_code
            time.sleep(interval)
