"""The preparation script `v6kube plan` writes to nodes/<node>/prepare.sh: the same steps as
`create` runs, each guarded by its check."""

from __future__ import annotations

from dataclasses import dataclass

from v6kube.nodes.managed import DOWNLOAD_HOSTS
from v6kube.nodes.plan import steps_for
from v6kube.nodes.spec import SUPPORTED_OS, OSRelease, PrepareSpec, os_key
from v6kube.nodes.step import Step
from v6kube.render import render


@dataclass(frozen=True)
class _Block:
    name: str
    summary: str
    step: Step | None = None
    by_os: tuple[tuple[str, Step], ...] = ()


def render_prepare_script(spec: PrepareSpec) -> str:
    """The bash script `v6kube plan` writes to nodes/<node>/prepare.sh: the same steps, each
    guarded by its check. For one OS when the spec names it, else for every supported OS."""
    keys = [os_key(spec.os_id_hint)] if spec.os_id_hint else list(SUPPORTED_OS)
    per_os = [steps_for(spec, OSRelease.from_key(key)) for key in keys]
    blocks = []
    for variants in zip(*per_os):
        first = variants[0]
        if all(v == first for v in variants):
            blocks.append(_Block(first.name, first.summary, step=first))
        else:
            blocks.append(_Block(first.name, "depends on the operating system", by_os=tuple(zip(keys, variants))))
    return render("node/prepare.sh.j2", spec=spec, oses=keys, blocks=blocks, helpers=render("node/helpers.sh"),
                  download_hosts=DOWNLOAD_HOSTS)
