"""The v6kube command line. One short function per command; main() maps errors to exit codes.

Keep imports of paramiko, requests, jinja2 and pydantic inside the commands: `--help` must stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from v6kube import __version__, console
from v6kube.errors import Interrupted, UsageError, V6kubeError

app = typer.Typer(
    name="v6kube",
    help="IPv6-only Kubernetes on bare metal, announced to the internet over BGP.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # rich tracebacks would print local variables (secrets)
    rich_markup_mode=None,
)

ClusterFile = typer.Argument(..., help="The cluster file (YAML).", show_default=False)
StateDir = typer.Option(None, "--state-dir", help="State directory [default: $XDG_STATE_HOME/v6kube/<cluster>].")


def _version(value: bool) -> None:
    if value:
        console.data(f"v6kube {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Verbose output and tracebacks on errors."),
) -> None:
    console.debug_enabled = debug


@app.command()
def plan(
    cluster_file: Path = ClusterFile,
    out: Optional[Path] = typer.Option(None, "--out", help="Write plan.json and every rendered file here."),
    block: Optional[str] = typer.Option(None, "--block", help="The project's IPv6 block (Packet: the /56)."),
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Show what create would build, offline: addressing, rendered files, phases and API calls."""
    from v6kube import config, planner

    cluster = config.load_cluster(cluster_file)
    the_plan = planner.offline_plan(cluster, _parse_block(block, str(cluster_file)), str(cluster_file))
    # written before the summary is shown: a bad --out is a usage error with nothing on stdout
    written = planner.write_plan(the_plan, out) if out is not None else []
    _show_plan(the_plan)
    if written:
        console.info(f"wrote {len(written)} files to {out}")


def _parse_block(text: str | None, source: str):
    if text is None:
        return None
    from v6kube.config import parse_ipv6_network
    from v6kube.errors import ConfigError, Problem

    try:
        return parse_ipv6_network(text)
    except ValueError as exc:
        raise ConfigError(source, [Problem("--block", str(exc))]) from None


def _show_plan(the_plan) -> None:
    a, c = the_plan.addresses, the_plan.cluster
    console.data(f"cluster {c.name}: {len(c.nodes)} nodes on provider {c.provider.type}, "
                 f"Kubernetes {c.kubernetes.version}, Calico {c.calico.version}")
    console.table("Addressing", ["what", "value"], [
        ("announced block", a.block),
        ("servers' own /64", ", ".join(map(str, a.server_networks)) or "outside the block"),
        ("pod subnet (Calico pool)", a.pod_subnet),
        ("service subnet", a.service_subnet),
        ("API / DNS service IPs", f"{a.api_service_ip} / {a.dns_service_ip}"),
        ("node-cidr-mask-size-ipv6", f"/{a.node_cidr_mask} ({a.node_ranges} node ranges)"),
        ("Calico block size", f"/{a.block_size}"),
        ("prefixes per node (max)", f"{a.prefixes_per_node} of {a.max_prefix} allowed"),
        ("BGP", f"local AS {the_plan.bgp.local_asn} -> peers {', '.join(map(str, the_plan.bgp.peers))} "
                f"AS {the_plan.bgp.peer_asn}"),
        ("DNS resolvers", ", ".join(map(str, c.kubernetes.dns_resolvers))),
    ])
    console.table("Nodes", ["node", "role", "address", "gateway"],
                  [(n.name, n.role, f"{n.address}/{n.prefixlen}", n.gateway) for n in a.nodes])
    from v6kube.phases import CREATE_PHASES
    from v6kube.providers import plan_phases, planned_calls

    own = plan_phases(c)  # what provision and bgp do on this cluster's provider
    console.table("Phases of create", ["#", "phase", "what it does"],
                  [(i + 1, p.name, own.get(p.name, p.summary)) for i, p in enumerate(CREATE_PHASES)])

    calls = planned_calls(c)
    if calls:
        console.table("Provider API calls", ["method", "path", "purpose"],
                      [(x["method"], x["path"], x["purpose"]) for x in calls])
    from v6kube.downloads import planned_downloads

    console.table("Downloads on this machine (checksummed, cached, uploaded over SFTP)", ["url", "checked against"],
                  [(a.url, a.sums_url or "SHA-256 kept in the cache") for a in planned_downloads(c.calico.version)])
    if the_plan.assumed:
        console.table("Assumed (offline; create reads these from the provider)", ["fact", "assumed value"],
                      list(the_plan.assumed.items()))


CREATE_HELP = """Build the cluster: servers, BGP, node preparation, kubeadm, Calico, workers. Resumable:
run it again after any failure; finished phases are confirmed, not redone.

Phases, in order (--only PHASE, --skip-phases A,B):

\b
  provision      find or create the servers, wait until active
  bgp            project BGP, a session per server, the neighbours
  prepare        every node over SSH, in parallel
  control-plane  kubeadm init with the exact kubeadm version
  kubeconfig     the admin kubeconfig into the state directory
  calico         Tigera operator and Calico, wait until Available
  calico-bgp     calicoctl, then BGPConfiguration, BGPPeers, Secret
  workers        kubeadm join of every worker, in parallel
  announce       the service addresses Calico advertises
"""


def _load(cluster_file: Path):
    from v6kube import config

    return config.load_cluster(cluster_file)


@app.command(help=CREATE_HELP)
def create(
    cluster_file: Path = ClusterFile,
    state_dir: Optional[Path] = StateDir,
    only: Optional[str] = typer.Option(None, "--only", help="Run only this phase."),
    skip_phases: str = typer.Option("", "--skip-phases", help="Comma-separated phases to skip."),
    merge_kubeconfig: bool = typer.Option(False, "--merge-kubeconfig",
                                          help="Merge the admin context into $KUBECONFIG or ~/.kube/config."),
) -> None:
    from v6kube import lifecycle

    lifecycle.create(_load(cluster_file), str(cluster_file), state_dir, only=only,
                     skip=tuple(skip_phases.split(",")) if skip_phases else (), merge_kubeconfig=merge_kubeconfig)


@app.command("join-worker")
def join_worker(
    cluster_file: Path = ClusterFile,
    state_dir: Optional[Path] = StateDir,
    count: Optional[int] = typer.Option(None, "--count", help="Have N workers beyond the cluster file's (new ones "
                                        "named on from the existing ones; again with the same N adds nothing)."),
    node: Optional[str] = typer.Option(None, "--node", help="Add this worker of the cluster file (static)."),
) -> None:
    """Add workers to a running cluster (the same phases, for the new nodes only)."""
    from v6kube import lifecycle

    lifecycle.join_worker(_load(cluster_file), str(cluster_file), state_dir, count=count, node=node)


@app.command()
def kubeconfig(
    cluster_file: Path = ClusterFile,
    state_dir: Optional[Path] = StateDir,
    merge: bool = typer.Option(False, "--merge", help="Merge into $KUBECONFIG (first file) or ~/.kube/config."),
) -> None:
    """Print the admin kubeconfig's path, or merge it into your kubeconfig."""
    from v6kube import lifecycle

    path = lifecycle.kubeconfig_path(_load(cluster_file), state_dir, merge=merge)
    console.data(str(path))


@app.command()
def destroy(
    cluster_file: Path = ClusterFile,
    state_dir: Optional[Path] = StateDir,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Delete every server the cluster owns (static: reset each node), then its state."""
    from v6kube import lifecycle

    cluster = _load(cluster_file)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("destroy needs --yes when there is no terminal to ask on")
        what = "reset every node of" if cluster.provider.type == "static" else "delete every server of"
        if not typer.confirm(f"This will {what} cluster {cluster.name}. Continue?", default=False, err=True):
            raise UsageError("destroy cancelled")
    lifecycle.destroy(cluster, str(cluster_file), state_dir)


@app.command("announce-services")
def announce_services(
    cluster_file: Path = ClusterFile,
    state_dir: Optional[Path] = StateDir,
    cluster_ips: bool = typer.Option(True, "--cluster-ips/--no-cluster-ips", help="Announce the service subnet."),
    external_ips: list[str] = typer.Option([], "--external-ips", help="An external IP range to announce (repeatable)."),
    load_balancer_ips: list[str] = typer.Option([], "--load-balancer-ips",
                                                help="A LoadBalancer range (repeatable; 'auto': a free /64 of the block)."),
    local: list[str] = typer.Option([], "--local", help="NAMESPACE/SERVICE to make externalTrafficPolicy Local."),
) -> None:
    """Choose which service addresses Calico announces over BGP (idempotent)."""
    from v6kube import announce, lifecycle

    options = announce.parse_options(cluster_ips=cluster_ips, external_ips=external_ips,
                                     load_balancer_ips=load_balancer_ips, local=local)
    lifecycle.announce_services(_load(cluster_file), str(cluster_file), state_dir, options)


@app.command()
def status(
    cluster_file: Path = ClusterFile,
    state_dir: Optional[Path] = StateDir,
    output: str = typer.Option("table", "--output", help="table or json."),
    watch: bool = typer.Option(False, "--watch", help="Show it again every --interval seconds until Ctrl-C."),
    interval: float = typer.Option(10.0, "--interval", help="Seconds between two reports with --watch."),
) -> None:
    """Servers, nodes, BGP sessions and prefixes, expected against seen. Exit 1 when degraded."""
    from v6kube import lifecycle

    if output not in ("table", "json"):
        raise UsageError(f"--output {output}: use table or json")
    code = lifecycle.status(_load(cluster_file), str(cluster_file), state_dir, as_json=output == "json",
                            watch=watch, interval=interval)
    raise typer.Exit(code)


def main() -> None:
    """Entry point: run the app and turn errors into exit codes (DESIGN section 4)."""
    from typer.exceptions import TyperException

    try:
        code = app(standalone_mode=False)
    except V6kubeError as exc:
        console.error(exc.message, exc.hint)
        if console.debug_enabled:
            console.traceback()
        sys.exit(exc.exit_code)
    except TyperException as exc:  # usage errors found by the parser: unknown option, missing file, ...
        show = getattr(exc, "show", None)
        show() if show else console.error(str(exc))
        sys.exit(UsageError.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(Interrupted.exit_code)
    except Exception as exc:  # a bug: say so without a traceback unless --debug
        console.error(f"internal error: {type(exc).__name__}: {exc}", "run again with --debug for the traceback")
        if console.debug_enabled:
            console.traceback()
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
