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
    if the_plan.assumed:
        console.table("Assumed (offline; create reads these from the provider)", ["fact", "assumed value"],
                      list(the_plan.assumed.items()))


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
