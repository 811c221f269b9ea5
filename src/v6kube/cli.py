"""The v6kube command line. One short function per command; main() maps errors to exit codes.

Keep imports of paramiko, requests, jinja2 and pydantic inside the commands: `--help` must stay fast.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from v6kube import __version__, console
from v6kube.errors import Interrupted, UsageError, V6kubeError


class Options:
    """The global options, given before or after the command (see V6kubeGroup)."""

    state_dir: Optional[Path] = None


options = Options()
GLOBAL_HELP = "Global options, before or after the command: --debug, --state-dir DIR, -h/--help."


class V6kubeGroup(TyperGroup):
    """`--debug` and `--state-dir DIR` work before the command (the app callback) and after it (taken
    out of the command's arguments here, for every command, before it parses them): commands need
    nothing but `state_dir: Optional[Path] = StateDir` in their signature to get the value."""

    def __init__(self, **attrs):
        super().__init__(**attrs)
        for command in self.commands.values():
            command.epilog = f"{command.epilog}\n\n{GLOBAL_HELP}" if command.epilog else GLOBAL_HELP

    def parse_args(self, ctx, args):
        options.state_dir = None  # one invocation's options, also when called again in one process
        console.debug_enabled = False
        return super().parse_args(ctx, args)

    # help and usage text is printed while parsing (make_context), the command's output in invoke
    def make_context(self, *args, **kwargs):
        with _output_guard():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _output_guard():
            return super().invoke(ctx)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        return name, command, _take_global_options(rest)


@contextlib.contextmanager
def _output_guard():
    """A write to a closed stdout becomes console.OutputClosed, before click turns it into exit 1."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        if console.stdout_closed():
            raise console.OutputClosed() from None
        raise _CarriedPast(exc) from exc  # a socket's: click would end with exit 1 and no message


class _CarriedPast(Exception):
    """An EPIPE that is not stdout's (a socket's), carried past click to main(), which reports it."""


def _take_global_options(args: list[str]) -> list[str]:
    """`args` without --debug and --state-dir[=]DIR (up to a `--`), which are applied."""
    kept: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return kept + args[i:]
        if arg == "--debug":
            console.debug_enabled = True
        elif arg == "--state-dir" and i + 1 < len(args):
            options.state_dir = Path(args[i + 1])
            i += 1
        elif arg.startswith("--state-dir="):
            options.state_dir = Path(arg.split("=", 1)[1])
        else:
            kept.append(arg)
        i += 1
    return kept


def _state_dir_value(value: Optional[Path]) -> Optional[Path]:
    return value if value is not None else options.state_dir


app = typer.Typer(
    name="v6kube",
    cls=V6kubeGroup,
    help="IPv6-only Kubernetes on bare metal, announced to the internet over BGP.",
    epilog=GLOBAL_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # rich tracebacks would print local variables (secrets)
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ClusterFile = typer.Argument(..., help="The cluster file (YAML); - reads it from stdin.", show_default=False)
StateDir = typer.Option(None, "--state-dir", callback=_state_dir_value,
                        help="State directory [default: $XDG_STATE_HOME/v6kube/<cluster>].")


class Output(str, enum.Enum):
    text = "text"
    json = "json"


def _version(value: bool) -> None:
    if value:
        console.data(f"v6kube {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Verbose output and tracebacks on errors."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="State directory, for every command."),
) -> None:
    # after the command's own: V6kubeGroup has taken those out already and they must not be undone
    if debug:
        console.debug_enabled = True
    if state_dir is not None and options.state_dir is None:
        options.state_dir = state_dir


@app.command()
def plan(
    cluster_file: Path = ClusterFile,
    out: Optional[Path] = typer.Option(None, "--out", help="Write plan.json and every rendered file here."),
    block: Optional[str] = typer.Option(None, "--block", help="The project's IPv6 block (Packet: the /56)."),
    output: Output = typer.Option(Output.text, "--output", "-o", help="text: a summary; json: plan.json on stdout."),
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Show what create would build, offline: addressing, rendered files, phases and API calls."""
    from v6kube import config, planner

    cluster = config.load_cluster(cluster_file)
    source = "<stdin>" if str(cluster_file) == "-" else str(cluster_file)
    the_plan = planner.offline_plan(cluster, _parse_block(block, source, cluster), source)
    # written before anything is shown: a bad --out is a usage error with nothing on stdout
    written = planner.write_plan(the_plan, out) if out is not None else None
    if output == Output.json:
        console.data_json(written.document if written else planner.plan_document(the_plan))
    else:
        _show_plan(the_plan)
    if written:
        if written.replaced:
            console.info(f"replaced the earlier plan of cluster {written.replaced_cluster} in {out}: "
                         f"{', '.join(written.replaced)}")
        console.info(f"wrote {console.plural(len(written.paths), 'file')} to {out}")


def _parse_block(text: str | None, source: str, cluster):
    if text is None:
        return None
    from v6kube.config_values import FieldProblem, check_block, parse_ipv6_network
    from v6kube.errors import ConfigError, Problem

    try:
        # Packet gives each project a global /56 per metro; static labs may use a ULA
        static = cluster.provider.type == "static"
        return check_block(parse_ipv6_network(text), ula=static, longest=112 if static else 64)
    except FieldProblem as exc:
        raise ConfigError(source, [Problem("--block", str(exc), exc.hint)]) from None
    except ValueError as exc:
        raise ConfigError(source, [Problem("--block", str(exc), "the project's IPv6 block, e.g. 2604:1380:4641:c500::/56")]) from None


def _show_plan(the_plan) -> None:
    a, c = the_plan.addresses, the_plan.cluster
    console.data(f"cluster {c.name}: {console.plural(len(c.nodes), 'node')} on provider {c.provider.type}, "
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
        code = app(standalone_mode=False, prog_name="v6kube")
        sys.stdout.flush()  # here, not at exit: a closed pipe must be handled below
    except console.OutputClosed:
        _closed_pipe()
    except V6kubeError as exc:
        _fail(exc.message, exc.hint, exc.exit_code)
    except TyperException as exc:  # usage errors found by the parser: unknown option, missing file, ...
        show = getattr(exc, "show", None)
        show() if show else console.error(str(exc))
        sys.exit(UsageError.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", None, Interrupted.exit_code)
    except Exception as exc:  # a bug: say so without a traceback unless --debug
        if isinstance(exc, BrokenPipeError) and console.stdout_closed():  # the final flush
            _closed_pipe()
        exc = exc.__cause__ if isinstance(exc, _CarriedPast) else exc
        _fail(f"internal error: {type(exc).__name__}: {exc}", "run again with --debug for the traceback", 1)
    if code == Interrupted.exit_code:  # typer turns Ctrl-C into Exit(130)
        _fail("interrupted", None, Interrupted.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, hint: str | None, code: int) -> None:
    try:
        console.error(message, hint)
        if console.debug_enabled:
            console.traceback()
    except BrokenPipeError:  # stderr is gone too
        pass
    sys.exit(code)


def _closed_pipe() -> None:
    """The reader of stdout went away (`v6kube plan x.yaml | head`): stop quietly, like cat, with
    the status a shell gives a program ended by SIGPIPE. stdout is pointed at /dev/null so that
    Python's flush at exit does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(141)


if __name__ == "__main__":
    main()
